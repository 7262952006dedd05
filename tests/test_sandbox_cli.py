"""`sandbox build|exec` through the stand-alone sandbox CLI, `bench sandbox` through `score`
(it builds HumanEval's programs with the project's code; the sandbox imports none) — real Docker."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

from sandbox_fixtures import DATA, REPO, docker_ready

CLI = [sys.executable, "-m", "sandbox.cli"]
SCORE = [sys.executable, "-m", "score"]


def cli(*args: str, timeout: float = 300, prog: list[str] = CLI) -> subprocess.CompletedProcess:
    return subprocess.run([*prog, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_help_texts():
    for args in (["--help"], ["sandbox", "--help"], ["sandbox", "exec", "--help"],
                 ["sandbox", "build", "--help"]):
        out = cli(*args)
        assert out.returncode == 0 and "usage:" in out.stdout, (args, out.stderr)
    bench_help = cli("bench", "sandbox", "--help", prog=SCORE)
    assert bench_help.returncode == 0 and "usage:" in bench_help.stdout, bench_help.stderr
    help_text = cli("sandbox", "exec", "--help").stdout
    assert "--memory-mb" in help_text and "compiled SEPARATELY" in help_text
    assert "every test ran to" in help_text and "completion and passed" in help_text


def test_build_reports_the_path():
    docker_ready()
    out = cli("sandbox", "build")
    assert out.returncode == 0, out.stderr
    assert "path=present" in out.stdout


def test_exec_prints_one_json_object(tmp_path):
    docker_ready()
    code, tests = tmp_path / "sol.py", tmp_path / "tests.py"
    code.write_text("def sq(x):\n    return x * x\n")
    tests.write_text("assert sq(3) == 9\nprint('all good')\n")
    out = cli("sandbox", "exec", "--code", str(code), "--tests", str(tests), "--timeout", "5")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"status", "stdout", "stderr", "exit_code", "duration_s", "detail"}
    assert result["status"] == "passed" and result["stdout"] == "all good\n"

    code.write_text("import sys\ndef sq(x):\n    return None\nsys.exit(0)\n")  # exit 0 before the tests
    out = cli("sandbox", "exec", "--code", str(code), "--tests", str(tests), "--timeout", "5")
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "failed"
    code.write_text('def sq(x):\n    return x * x\nx = """\n')  # would swallow appended tests
    out = cli("sandbox", "exec", "--code", str(code), "--tests", str(tests), "--timeout", "5")
    assert out.returncode == 1 and "SyntaxError" in json.loads(out.stdout)["stderr"]
    code.write_text("def sq(x):\n    return x * x\n")

    tests.write_text("assert sq(3) == 10\n")
    result = json.loads(cli("sandbox", "exec", "--code", str(code), "--tests", str(tests)).stdout)
    assert result["status"] == "failed" and "AssertionError" in result["stderr"]

    code.write_text("import time\ntime.sleep(30)\n")
    out = cli("sandbox", "exec", "--code", str(code), "--timeout", "1")
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "timeout"


def test_bench_sandbox_three_ways(tmp_path):
    docker_ready()
    with gzip.open(DATA / "humaneval.jsonl.gz", "rt") as fh:
        rows = [next(fh) for _ in range(4)]
    data = tmp_path / "he4.jsonl"
    data.write_text("".join(rows))
    out = cli("bench", "sandbox", "--json", "--data", str(data), "--slots", "2", "--rounds", "2", prog=SCORE)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for key, n in (("host", 8), ("pool", 8), ("docker_run", 4)):  # host/pool: 2 rounds
        assert report[key]["passed"] == report[key]["n"] == n
        assert report[key]["programs_per_s"] > 0
    assert len(report["pool_vs_host_per_round"]) == 2
    assert report["pool_vs_host"] > 0 and report["pool_vs_docker_run"] > 0
