"""`score_core.tools.wall_clock`: an ablation's wall time summed over its invocations, including
one that was SIGKILLed (a real child process, killed for real) and one that failed. The oracle
is the test's own clock around each invocation, not the module's arithmetic."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from score_core.tools.wall_clock import FILE, WallClock, read_invocations, totals

BEAT = 0.2  # seconds between the killed child's writes: what a kill may lose at most


def _killed_invocation(out_dir, run_s: float) -> float:
    """Start a child that runs a WallClock on `out_dir`, SIGKILL it after ≈ run_s; return the
    wall time from the child's first write to the kill, as this process measured it."""
    code = textwrap.dedent(f"""
        import time
        from score_core.tools.wall_clock import WallClock
        with WallClock({str(out_dir)!r}, every_s={BEAT}):
            print("started", flush=True)
            time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=os.path.dirname(os.path.dirname(__file__)))
    assert child.stdout.readline().strip() == "started"
    t0 = time.perf_counter()
    time.sleep(run_s)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    return time.perf_counter() - t0


def test_a_killed_invocation_keeps_its_time_up_to_its_last_beat(tmp_path):
    killed_s = _killed_invocation(tmp_path, 1.5)
    (record,) = read_invocations(tmp_path)
    assert record["ended"] is None  # never finished: nothing wrote "finished"/"failed"
    assert killed_s - BEAT - 0.3 <= record["wall_s"] <= killed_s + 0.3
    t0 = time.perf_counter()
    with WallClock(tmp_path, every_s=BEAT) as clock:  # the resumed invocation
        time.sleep(0.5)
        wall_s, invocations = clock.totals()
    resumed_s = time.perf_counter() - t0
    assert invocations == 2
    assert record["wall_s"] + 0.5 <= wall_s <= record["wall_s"] + resumed_s + 0.05
    first, second = read_invocations(tmp_path)
    assert first == record and second["ended"] == "finished"
    assert 0.5 <= second["wall_s"] <= resumed_s + 0.05


def test_a_failed_invocation_is_recorded_as_failed_with_its_time(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(RuntimeError, match="cell failed"):
        with WallClock(tmp_path, every_s=60):
            time.sleep(0.4)
            raise RuntimeError("cell failed")
    elapsed = time.perf_counter() - t0
    (record,) = read_invocations(tmp_path)
    assert record["ended"] == "failed" and 0.4 <= record["wall_s"] <= elapsed + 0.05


def test_a_directory_from_before_wall_json_starts_from_its_old_meta(tmp_path):
    with WallClock(tmp_path, legacy={"wall_s": 600.0, "invocations": 2}) as clock:
        wall_s, invocations = clock.totals()
    assert invocations == 3 and 600.0 <= wall_s < 601.0
    assert totals(read_invocations(tmp_path))[1] == 3
    with WallClock(tmp_path, legacy={"wall_s": 9999.0, "invocations": 7}) as clock:  # wall.json wins now
        assert clock.totals()[1] == 4
    assert json.loads((tmp_path / FILE).read_text())["invocations"][0]["ended"] == "before wall.json"
