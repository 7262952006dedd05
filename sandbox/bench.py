"""`score bench sandbox`: HumanEval canonical programs four ways, in one run.

1. pool     — `SandboxPool` (long-lived containers, one driver each), full isolation, the
   harness (solution and tests compiled separately, completion proof checked), each program
   in a fork of the warm driver (the default);
2. pool, new python3 — the same pool with `SlotLimits(fresh_interpreter=True)`: one new
   `python3 -s -P` per program (the path before the warm start; the baseline for its gain);
3. host     — plain `python3 -I` subprocesses on the host running solution + tests as one
   script, exit status only: no isolation, no proof (the speed target);
4. docker-run — one `docker run` per program with the same limits (the naive sandbox).
All four use the same concurrency (slots) and timeout. Container start-up of the pool is
timed separately; throughput counts only the programs. Timings on a shared machine are
noisy: compare the ratios within one run. CPU per program (host: the subprocesses' rusage;
pool: the containers' cgroup CPU, i.e. driver + programs + clean-up) is the load-robust
measure of the sandbox's overhead.
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

def default_host_python() -> str:
    """The system interpreter (same Debian python3.11 as the offline image) when present:
    `python3` on PATH may be a pyenv shim (a shell script, ~0.3 s per start)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else os.path.realpath(sys.executable)


def _host_one(python: str, program, timeout_s: float) -> str:
    """The naive baseline: code + tests as ONE script, judged by its exit status."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(program.code + "\n\n" + program.tests)
    try:
        out = subprocess.run([python, "-I", fh.name], capture_output=True, timeout=timeout_s,
                             stdin=subprocess.DEVNULL)
        return "passed" if out.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        return "timeout"
    finally:
        os.unlink(fh.name)


def _docker_run_one(client, image: str, program, timeout_s: float) -> str:
    import docker

    script = program.code + "\n\n" + program.tests
    c = client.containers.run(
        image, ["timeout", "-s", "KILL", str(timeout_s), "python3", "-I", "-c", script],
        detach=True, init=True, network_mode="none", read_only=True, ipc_mode="none",
        tmpfs={"/tmp": "rw,size=64m,mode=1777,nosuid,nodev,noexec"}, mem_limit="704m",
        memswap_limit="704m", pids_limit=256, cap_drop=["ALL"], user="52999:52999",
        security_opt=["no-new-privileges"], log_config={"type": "json-file", "config": {"max-size": "1m"}},
    )
    try:
        code = c.wait(timeout=timeout_s + 30)["StatusCode"]
        return "passed" if code == 0 else "failed"
    except docker.errors.DockerException:
        return "sandbox_error"
    finally:
        c.remove(force=True)


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def container_cpu_s(container_id: str) -> Optional[float]:
    """CPU seconds used so far by a container's cgroup (v1 cpuacct or v2), None if unknown."""
    v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage")
    v2 = Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")
    try:
        if v1.exists():
            return int(v1.read_text()) / 1e9
        if v2.exists():
            usage = next(line for line in v2.read_text().splitlines() if line.startswith("usage_usec"))
            return int(usage.split()[1]) / 1e6
    except (OSError, ValueError, StopIteration):
        pass
    return None


def _timed(run: Callable[[str], str], programs: Sequence[str], workers: int) -> dict:
    t0, cpu0 = time.perf_counter(), _children_cpu_s()
    with ThreadPoolExecutor(workers) as ex:
        statuses = list(ex.map(run, programs))
    seconds, cpu = time.perf_counter() - t0, _children_cpu_s() - cpu0
    return {"seconds": round(seconds, 3), "programs_per_s": round(len(programs) / seconds, 2),
            "passed": statuses.count("passed"), "n": len(programs),
            "cpu_ms_per_program": round(1e3 * cpu / len(programs), 2) if cpu > 0 else None}


def _pool_round(pool, programs: Sequence[str], timeout_s: float) -> dict:
    from .pool import SandboxJob

    ids = [slot.container.id for slot in pool.slots]
    cpu0, restarts0 = [container_cpu_s(cid) for cid in ids], pool.stats["slot_restarts"]
    t0 = time.perf_counter()
    results = pool.run_many([SandboxJob(p.code, p.tests, timeout_s, 512, p.entry_point) for p in programs])
    seconds = time.perf_counter() - t0
    cpu1 = [container_cpu_s(cid) for cid in ids]
    known = None not in cpu0 + cpu1 and pool.stats["slot_restarts"] == restarts0
    cpu = sum(b - a for a, b in zip(cpu0, cpu1)) if known else 0.0
    return {"seconds": seconds, "passed": sum(r.status == "passed" for r in results),
            "n": len(programs), "cpu_s": cpu if known else None}


def _total(rounds: list[dict]) -> dict:
    """Sum rounds: throughput = all programs / all seconds."""
    n, seconds = sum(r["n"] for r in rounds), sum(r["seconds"] for r in rounds)
    cpus = [r.get("cpu_s") for r in rounds]
    cpu = None if None in cpus else sum(cpus)
    return {"seconds": round(seconds, 3), "programs_per_s": round(n / seconds, 2),
            "passed": sum(r["passed"] for r in rounds), "n": n,
            "cpu_ms_per_program": round(1e3 * cpu / n, 2) if cpu else None}


def run_bench(programs: Sequence, slots: int, timeout_s: float, image: str, skip_docker_run: bool,
              host_python: str, rounds: int = 3) -> dict:
    """Host, pool and pool with a new python3 per program take turns (the order rotates each
    round) over `rounds` passes so load drift hits all alike; docker run goes once at the end
    (it is ~10x slower)."""
    from .container import SlotLimits
    from .pool import SandboxPool

    # programs: objects with .code, .tests, .entry_point (the CLI builds HumanEval's)
    report: dict = {"programs": len(programs), "rounds": rounds, "slots": slots,
                    "timeout_s": timeout_s, "cpus": os.cpu_count(), "image": image,
                    "host_python": host_python, "load_avg_1m_before": round(os.getloadavg()[0], 2)}
    runs: dict = {"host": [], "pool": [], "pool_fresh": []}
    t0 = time.perf_counter()
    with SandboxPool(slots=slots, image=image, progress=False) as pool, \
            SandboxPool(slots=slots, image=image, progress=False,
                        limits=SlotLimits(fresh_interpreter=True)) as pool_fresh:
        startup = time.perf_counter() - t0
        order = ["host", "pool", "pool_fresh"]
        for r in range(rounds):
            for which in order[r % 3:] + order[:r % 3]:
                if which == "host":
                    c0 = _children_cpu_s()
                    x = _timed(lambda p: _host_one(host_python, p, timeout_s), programs, slots)
                    runs["host"].append({**x, "cpu_s": _children_cpu_s() - c0})
                else:
                    runs[which].append(_pool_round(pool if which == "pool" else pool_fresh, programs, timeout_s))
        stats = dict(pool.stats)
    report["host"] = _total(runs["host"])
    report["pool"] = {**_total(runs["pool"]), "startup_s": round(startup, 3), "stats": stats}
    report["pool_fresh"] = _total(runs["pool_fresh"])
    report["pool_vs_host_per_round"] = [
        round(h["seconds"] / p["seconds"], 3) for h, p in zip(runs["host"], runs["pool"])]
    report["pool_vs_pool_fresh_per_round"] = [
        round(f["seconds"] / p["seconds"], 3) for f, p in zip(runs["pool_fresh"], runs["pool"])]
    if not skip_docker_run:
        import docker

        client = docker.from_env(timeout=120)
        report["docker_run"] = _timed(lambda p: _docker_run_one(client, image, p, timeout_s),
                                      programs, slots)
    for other in ("host", "pool_fresh", "docker_run"):
        if other in report:
            report[f"pool_vs_{other}"] = round(
                report["pool"]["programs_per_s"] / report[other]["programs_per_s"], 3)
    return report


def format_report(r: dict) -> str:
    lines = [f"HumanEval canonical programs: {r['programs']} x {r['rounds']} rounds (host and pool "
             f"and pool with a new python3 per program rotating; docker run once), slots/workers: {r['slots']}, "
             f"cpus: {r['cpus']}, image: {r['image']}",
             f"host python: {r['host_python']}, 1-min load average before: {r['load_avg_1m_before']}"]
    for key, label in (("host", "host subprocess (no isolation)"), ("pool", "sandbox pool"),
                       ("pool_fresh", "sandbox pool, new python3 each"),
                       ("docker_run", "docker run per program")):
        if key in r:
            x = r[key]
            cpu = x.get("cpu_ms_per_program")
            lines.append(f"  {label:32s} {x['programs_per_s']:7.2f} programs/s  "
                         f"({x['seconds']:.2f} s, {x['passed']}/{x['n']} passed"
                         + (f", {cpu:.1f} ms CPU/program" if cpu else "") + ")")
    lines.append(f"  pool start-up, both pools (not counted above): {r['pool']['startup_s']:.2f} s")
    lines.append(f"  pool / host       = {r['pool_vs_host']:.3f}x  (goal >= 0.9x); per round: "
                 f"{r['pool_vs_host_per_round']}")
    lines.append(f"  pool / pool with a new python3 each = {r['pool_vs_pool_fresh']:.3f}x  (the warm start's "
                 f"gain); per round: {r['pool_vs_pool_fresh_per_round']}")
    if "pool_vs_docker_run" in r:
        lines.append(f"  pool / docker run = {r['pool_vs_docker_run']:.3f}x")
    return "\n".join(lines)
