"""The warm start (sandbox/driver_fork.py): each program runs in a fork of the slot's driver.

The oracle is the other path of the same driver: `SlotLimits(fresh_interpreter=True)` execs
a new `python3 -s -P -c <harness>` per program. What a program can observe of its interpreter
must be the same both ways, the driver's state must not leak from one program into the
next, and nothing the driver keeps for itself (the set-up failure pipe, the clean-up's
pidfd) may be reachable. Real Docker engine, real image (tests/sandbox_fixtures.py).
"""
from __future__ import annotations

import json
import textwrap

import pytest

from sandbox_fixtures import docker_ready, shared_pool

# What a program can see of its interpreter, printed as one JSON line. Fd numbers of the
# secret and decoys are random per program, so only their count is compared.
PROBE = textwrap.dedent("""
    import json, os, signal, sys
    main = sys.modules["__main__"]
    print(json.dumps({
        "modules": sorted(sys.modules),
        "argv": sys.argv,
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "sigpipe": str(signal.getsignal(signal.SIGPIPE)),
        "sigxfsz": str(signal.getsignal(signal.SIGXFSZ)),
        "sigint": str(signal.getsignal(signal.SIGINT)),
        "main_names": {k: repr(v) for k, v in vars(main).items() if k.startswith("__")},
        "n_fds": len(os.listdir("/proc/self/fd")),
        "uid": os.getuid() != 0 and os.geteuid() != 0,
        "stdout": [sys.stdout.encoding, sys.stdout.errors, sys.stdout.line_buffering],
        "stderr": [sys.stderr.encoding, sys.stderr.errors],
        "stdin": sys.stdin.read(),
        "flags_isolated": sys.flags.isolated,
    }))
""")


@pytest.fixture(scope="module")
def fresh_pool():
    docker_ready()
    from sandbox import SandboxPool
    from sandbox.container import SlotLimits

    with SandboxPool(slots=1, progress=False, limits=SlotLimits(fresh_interpreter=True)) as pool:
        yield pool


@pytest.fixture(scope="module")
def one_slot_pool():
    docker_ready()
    from sandbox import SandboxPool

    with SandboxPool(slots=1, progress=False) as pool:
        yield pool


def probe(pool) -> dict:
    r = pool.run(PROBE, timeout_s=20)
    assert r.status == "passed", r
    return json.loads(r.stdout)


def test_forked_program_sees_what_a_new_python3_shows(fresh_pool):
    warm = probe(shared_pool())
    fresh = probe(fresh_pool)
    assert warm == fresh, {k: (warm[k], fresh[k]) for k in warm if warm[k] != fresh.get(k)}
    assert "random" not in warm["modules"] and "json" in warm["modules"]  # the probe's own import


def test_nothing_of_one_program_reaches_the_next(one_slot_pool):
    """Each program is a fork of the driver, never of the program before it: what one
    program changes in the modules it shares with the driver (os, builtins, sys) is gone
    for the next one in the same slot, and two programs draw different random numbers."""
    plant = one_slot_pool.run(textwrap.dedent("""
        import builtins, os, sys, random
        os.planted = builtins.planted = 1
        sys.path.insert(0, "/tmp/planted")
        print(random.getrandbits(64))
    """), timeout_s=10)
    look = one_slot_pool.run(textwrap.dedent("""
        import builtins, os, sys, random
        assert not hasattr(os, "planted") and not hasattr(builtins, "planted")
        assert "/tmp/planted" not in sys.path
        print(random.getrandbits(64))
    """), timeout_s=10)
    assert plant.status == "passed" and look.status == "passed", (plant, look)
    assert plant.stdout != look.stdout


def test_program_cannot_reach_the_drivers_own_fds(one_slot_pool):
    """fd 1000 is the set-up failure pipe (writing to it would turn this failed program into
    an unscored sandbox error) and fd 1001 the previous clean-up's pidfd: both are closed
    before the harness starts."""
    r = one_slot_pool.run(textwrap.dedent("""
        import os
        reached = []
        for fd in (1000, 1001):
            try:
                os.write(fd, b"RuntimeError: forged set-up failure")
                reached.append(fd)
            except OSError:
                pass
        print("reached", reached)
        assert False, "a wrong answer"
    """), timeout_s=10)
    assert "reached []" in r.stdout, r
    assert r.status == "failed", r  # scored as the wrong answer it is, not sandbox_error
    again = one_slot_pool.run("print('ok')\n", timeout_s=10)
    assert again.status == "passed" and again.stdout == "ok\n", again


def test_harness_guards_hold_in_the_fork(one_slot_pool):
    """The completion proof still decides: exiting 0 before the tests is failed, a passing
    program passes, frame walking is refused — in the forked process."""
    early = one_slot_pool.run("import os\nos._exit(0)\n", "assert False\n", timeout_s=10)
    assert early.status == "failed", early
    frames = one_slot_pool.run("import sys\nsys._getframe(1)\n", "pass\n", timeout_s=10)
    assert frames.status == "failed" and "sys._getframe is not allowed" in frames.stderr, frames
    ok = one_slot_pool.run("def f(x):\n    return x + 1\n", "assert f(1) == 2\n", timeout_s=10)
    assert ok.status == "passed", ok
