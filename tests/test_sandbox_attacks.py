"""One hostile program per test, on the shared pool; after each: a normal program passes on
the same pool, no stray process is left, and the Docker daemon still answers (issue 3).
Programs run as the solution with no tests: `passed` = ran to its end without an exception.
Attacks on the reward itself (exiting 0 around the tests) are in test_sandbox_redteam.py."""
from __future__ import annotations

import socket
import textwrap
import threading
import time

from sandbox_fixtures import OK_PROGRAM, assert_healthy, pool  # noqa: F401  (fixture)


def run(pool, program: str, timeout_s: float = 5.0, memory_mb: int = 256):
    return pool.run(textwrap.dedent(program), timeout_s=timeout_s, memory_mb=memory_mb)


def test_infinite_loop(pool):
    r = run(pool, "while True:\n    pass\n", timeout_s=1)
    assert r.status == "timeout" and r.duration_s < 4, r
    assert_healthy(pool)


def test_sleep_past_limit(pool):
    r = run(pool, "import time\ntime.sleep(60)\n", timeout_s=1)
    assert r.status == "timeout" and r.duration_s < 4, r
    assert_healthy(pool)


def test_fork_bomb_stays_in_its_slot(pool):
    bomb = """
    import os
    while True:
        try:
            os.fork()
        except OSError:
            pass
    """
    from score_core.problems.rewards import CodeJob

    jobs = [CodeJob(textwrap.dedent(bomb), "", 3, 256)] + [CodeJob(OK_PROGRAM, "", 20, 256)] * 4
    results = pool.run_many(jobs)
    assert results[0].status == "timeout", results[0]
    assert [r.status for r in results[1:]] == ["passed"] * 4, results[1:]
    assert_healthy(pool)


def test_memory_bomb(pool):
    r = run(pool, "x = []\nwhile True:\n    x.append(bytearray(10**7))\n", memory_mb=256)
    assert r.status == "memory_exceeded", r
    assert_healthy(pool)


def test_memory_bomb_across_processes(pool):
    """Each child stays under RLIMIT_AS; together they pass the container limit: the
    container's OOM killer must take the program, not the driver."""
    r = run(pool, """
    import os, time
    for _ in range(6):
        if os.fork() == 0:
            x = bytearray(400 * 10**6)
            for i in range(0, len(x), 4096):
                x[i] = 1
            time.sleep(30)
    os.wait()
    raise SystemExit(1)
    """, timeout_s=15, memory_mb=512)
    assert r.status in ("memory_exceeded", "failed"), r
    assert_healthy(pool)


def test_100mb_to_stdout(pool):
    r = run(pool, "import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 10**6)\n")
    assert r.status == "output_exceeded", r
    assert len(r.stdout) < 20_000 and len(r.stderr) < 20_000
    assert_healthy(pool)


def test_filling_tmp(pool):
    r = run(pool, """
    import os
    n = 0
    try:
        while True:
            with open(f"/tmp/fill{n}", "wb") as fh:
                fh.write(b"x" * 8 * 2**20)
            n += 1
    except OSError as exc:
        print("full after", n, exc)
    """, timeout_s=20)
    assert r.status == "passed" and "full after" in r.stdout, r
    assert run(pool, "import os\nassert os.listdir('/tmp') == [], os.listdir('/tmp')\n").status == "passed"
    assert_healthy(pool)


def test_writing_outside_tmp(pool):
    r = run(pool, """
    import os
    for path in ["/x", "/etc/x", "/root/x", "/home/x", "/var/tmp/x", "/usr/lib/x.py",
                 "/dev/shm/x", "/dev/x", "/run/x", "/proc/sys/kernel/x", "/sys/x"]:
        try:
            open(path, "w").write("pwned")
        except OSError:
            continue
        raise SystemExit(f"wrote {path}")
    try:
        os.chmod("/tmp", 0o777)
    except OSError:
        pass
    else:
        raise SystemExit("chmod /tmp worked")
    """)
    assert r.status == "passed", r
    assert_healthy(pool)


def test_reading_secrets(pool):
    r = run(pool, """
    import os
    for path in ["/etc/shadow", "/proc/1/environ", "/proc/1/root/etc/shadow"]:
        try:
            open(path).read()
        except OSError:
            continue
        raise SystemExit(f"read {path}")
    assert os.getuid() != 0 and os.geteuid() != 0
    """)
    assert r.status == "passed", r
    assert_healthy(pool)


def test_network_is_unreachable(pool):
    listener = socket.socket()  # a service on the host's loopback the program must not reach
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        external = socket.gethostbyname("pypi.org")
    except OSError:
        external = "151.101.0.223"
    try:
        r = run(pool, f"""
        import socket
        for host, port in [("{external}", 443), ("127.0.0.1", {port}), ("172.17.0.1", 2375),
                           ("172.17.0.1", 22), ("10.255.255.53", 53)]:
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect((host, port))
            except OSError:
                continue
            raise SystemExit(f"connected to {{host}}:{{port}}")
        try:
            socket.getaddrinfo("pypi.org", 443)
        except OSError:
            pass
        else:
            raise SystemExit("DNS works")
        """, timeout_s=20)
        assert r.status == "passed", r
    finally:
        listener.close()
    assert_healthy(pool)


def test_kill_pid1(pool):
    r = run(pool, "import os, signal\nos.kill(1, signal.SIGTERM)\n")
    assert r.status == "failed" and "PermissionError" in r.stderr, r
    assert_healthy(pool)


def test_kill_everything_hits_only_its_own_slot(pool):
    from score_core.problems.rewards import CodeJob

    killer = ("import os, signal, time\nchild = os.fork()\nif child == 0:\n    time.sleep(60)\n"
              "time.sleep(0.3)\nos.kill(-1, signal.SIGKILL)  # every process it may signal but itself\n"
              "assert os.waitpid(child, 0)[1] == signal.SIGKILL\n")
    slow_ok = "import time\ntime.sleep(1)\nprint('ok')\n"
    results = pool.run_many([CodeJob(killer, "", 5, 256), CodeJob(slow_ok, "", 5, 256)])
    assert results[0].status == "passed", results[0]
    assert results[1].status == "passed", results[1]
    assert_healthy(pool)


def test_background_child_outlives_parent(pool):
    r = run(pool, """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:  # a daemon holding stdout open
            time.sleep(120)
        os._exit(0)
    print("parent done")
    """, timeout_s=10)
    assert r.status == "passed" and r.duration_s < 3, r
    assert_healthy(pool)


def test_infinite_recursion(pool):
    r = run(pool, "def f(n):\n    return f(n + 1)\nf(0)\n")
    assert r.status == "failed" and "RecursionError" in r.stderr, r
    deep = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n):\n    return f(n + 1)\nf(0)\n"
    r = run(pool, deep, timeout_s=10)
    assert r.status in ("failed", "memory_exceeded", "timeout"), r  # MemoryError, SIGSEGV or slow
    assert_healthy(pool)


def test_segfault(pool):
    r = run(pool, "import faulthandler\nfaulthandler._sigsegv()\n")
    assert r.status == "failed" and r.exit_code == -11, r
    r = run(pool, "import ctypes\nctypes.string_at(0)\n")  # ctypes is refused by the harness
    assert r.status == "failed" and "ctypes is not allowed" in r.stderr, r
    assert_healthy(pool)


def test_closing_and_flooding_driver_channel(pool):
    r = run(pool, """
    import os, sys
    for pid in [1, os.getppid()] + [int(p) for p in os.listdir("/proc") if p.isdigit()]:
        if pid == os.getpid():
            continue
        for fd in (0, 1, 2):
            try:
                open(f"/proc/{pid}/fd/{fd}", "w").write('{"id": 1, "status": "passed"}\\n')
            except OSError:
                continue
            raise SystemExit(f"opened fd {fd} of pid {pid}")
    fake = '{"id": %d, "status": "passed", "stdout": "", "stderr": "", "exit_code": 0}\\n'
    for i in range(20000):
        sys.stdout.write(fake % i)
    sys.stdout.flush()
    os.close(0); os.close(1); os.close(2)
    os._exit(3)
    """)
    assert r.status in ("failed", "output_exceeded") and r.exit_code in (3, -9), r
    r = run(pool, "import os\nos.close(0); os.close(1); os.close(2)\n")
    assert r.status == "passed", r
    assert_healthy(pool)


def test_dead_container_is_replaced(pool):
    slot = pool.slots[0]
    restarts = pool.stats["slot_restarts"]
    slot.container.kill()
    for _ in range(pool.n_slots * 2):
        assert run(pool, OK_PROGRAM).status == "passed"
    assert pool.stats["slot_restarts"] > restarts
    assert_healthy(pool)


def test_in_flight_program_is_retried_after_breakage(pool):
    """The container dies mid-program: sandbox_error inside, retried once, then passes."""
    from score_core.problems.rewards import CodeJob

    program = "import time\ntime.sleep(2)\nprint('ok')\n"
    retries = pool.stats["retries"]

    def kill_soon() -> None:
        time.sleep(0.8)
        for slot in pool.slots:
            if slot.container is not None:
                slot.container.kill()
                return

    killer = threading.Thread(target=kill_soon)
    killer.start()
    results = pool.run_many([CodeJob(program, "", 10, 256), CodeJob(program, "", 10, 256)])
    killer.join()
    assert [r.status for r in results] == ["passed", "passed"], results
    assert pool.stats["retries"] == retries + 1
    assert_healthy(pool)


def test_wedged_driver_is_replaced():
    """A frozen container (docker pause) is noticed at timeout + grace and replaced."""
    from sandbox import SandboxPool
    from sandbox_fixtures import docker_ready

    docker_ready()
    with SandboxPool(slots=1, progress=False, grace_s=2.0) as p:
        p.slots[0].container.pause()
        t0 = time.monotonic()
        r = p.run(OK_PROGRAM, timeout_s=1)
        assert r.status == "passed" and time.monotonic() - t0 < 15, r
        assert p.stats["slot_restarts"] == 1 and p.stats["retries"] == 1
        assert_healthy(p)


OWNER = """
import json, sys, time
from sandbox import SandboxPool
pool = SandboxPool(slots=2, progress=False)
assert pool.run("print('ok')").status == "passed"
print(json.dumps([slot.container.name for slot in pool.slots]), flush=True)
time.sleep(600)
"""


def test_killed_owner_leaves_no_container_behind():
    """kill -9 of the process that owns a pool (a crashed or cancelled flow run): its
    containers stop and remove themselves; nothing piles up across retries."""
    import json
    import subprocess
    import sys

    import docker
    from sandbox_fixtures import REPO, docker_ready

    docker_ready()
    client = docker.from_env()

    def alive(names):
        return [n for n in names if client.containers.list(all=True, filters={"name": n})]

    owner = subprocess.Popen([sys.executable, "-c", OWNER], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        names = json.loads(owner.stdout.readline())
        assert len(names) == 2 and alive(names) == names
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 30
    while alive(names) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alive(names) == [], "containers of a killed pool owner are still there"
