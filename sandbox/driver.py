"""The driver: one long-lived process per sandbox container, standard library only.

Sent into the container as `python3 -s -P -c <text>` by `sandbox.container` and run as root
with only CAP_SETUID/CAP_SETGID. The text is `sandbox.container.DRIVER_PARTS` joined in order:
`driver_proof.py` (secret, decoys, proof pipe: `draw_numbers`, `fill_secret_pipes`,
`proof_verdict`, `read_now`, `PROOF_CAP`), `driver_cleanup.py` (the per-program clean-up:
`start_cleaner`, `trigger`, `untriggered`, `reap`), `driver_fork.py` (the warm start:
`preload`, `run_harness_here`), then this file, which uses their names
without importing them (nothing is installed in the image) and calls `main()` last.
It reads one JSON job per line on stdin ({id, code, tests, entry_point, timeout_s,
memory_mb}) and writes one JSON result per line on stdout; nothing else ever touches its
stdin/stdout. Each job runs the harness (`sandbox/harness.py`) in a process forked from
this driver (the warm start, `driver_fork.py`: it looks like a new `python3 -s -P -c <harness>`;
config `fresh_interpreter` execs a new python3 instead) that is:
- given the solution and the tests as two texts in an anonymous memfd (no file on disk, no
  argv size limit), stdin = /dev/null; the harness compiles and runs them separately;
- run as the slot's uid UID (never root, never the uid of PID 1 or of this driver), in its own
  session, with rlimits: address space (memory), NPROC (fork bombs stay in the slot), FSIZE,
  CPU, NOFILE, no core files; oom_score_adj 1000 so the OOM killer takes it first;
- killed at the deadline or when stdout+stderr pass `max_output_bytes` (the cap is applied
  here, inside the container, so the host never reads more than a few kB per program);
- followed by a clean-up: `kill(-1, SIGKILL)` until no process of UID is alive (this catches
  background children in other sessions), then its files in /tmp are removed.
The clean-up process runs with real/saved uid CLEANER_UID and effective uid UID: it may
signal every UID process and delete UID's files, while no UID process may signal or ptrace
it (the kernel compares against its real/saved uid). It is forked, as root, while the program
runs; for a program that exited by itself the reply goes out first and the clean-up runs in
the background — the next program's process waits (as root) for it to exit before it drops
to UID and starts, so no leftover of one program ever meets the next.

What `passed` means — the completion proof (threat model: the solution is written by a
policy that searches for any way to be scored `passed`):
- Per job the driver draws a secret from os.urandom (here, inside the container, after
  forking the program's process, never sent to the host nor written into the program text,
  argv, environment or the program's memory) and puts it in a pipe
  whose read end the harness inherits at a random fd number; the write end is closed. More
  pipes at random numbers hold decoy secrets. The harness gets a proof pipe (random number
  too) that only this driver reads.
- Only after `exec(tests)` returned normally does the harness move the secret to the proof
  pipe and call os._exit(0). `passed` iff exit status 0 AND the proof pipe holds exactly
  b"pass:" + secret AND the secret pipe is empty AND every decoy is untouched. Exit 0 in any
  other way (sys.exit / os._exit / SystemExit / an atexit hook / a signal handler / a thread,
  before, inside or instead of the tests) is `failed`; so is printing anything that looks
  like a proof (stdout is not the proof channel) and reading fds blindly (a decoy trips).
- The solution cannot swallow the tests (separate compilation), cannot change the builtins
  the tests see (pristine copy; builtin names it shadows are restored unless they are the
  entry point), cannot trace/profile, walk frames or the gc heap, load ctypes or open
  /proc/*/mem (an audit hook armed before it runs; signal handlers get no frame).
Residual risk (not closed): the harness runs in the solution's process, so a program
written against this harness that finds a way around the audit-hook screen (a CPython bug,
an unaudited path to the harness's frame) can learn the secret's fd number and forge the
proof; a solution can monkeypatch stdlib modules the tests use (e.g. `math.isclose`) or
hide a lying object inside a builtin iterator nested in a returned value. Values that lie in
comparisons (`__eq__` always True, `__sub__` → 0, …) are refused: every value a solution
callable returns to the tests must be built from builtin/stdlib value types
(`harness._honesty_checker`, applied by `harness._wrapper`, whose references a solution
cannot rebind). A complete fix runs the tests in a separate process with the
solution behind an RPC boundary, at the cost of changed semantics.
"""
import json
import os
import resource
import select
import shutil
import signal
import sys
import time

CONFIG = json.loads(sys.argv[1])
UID = int(CONFIG["uid"])
CLEANER_UID = int(CONFIG["cleaner_uid"])
MAX_OUTPUT = int(CONFIG["max_output_bytes"])
KEEP = int(CONFIG["return_bytes"])
HARNESS = CONFIG["harness"]  # sandbox/harness.py: runs solution + tests, then writes the proof
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
ENV = CONFIG["env"]  # container.py's PROGRAM_ENV: the whole environment of every program
PY_FLAGS = CONFIG["py_flags"]  # `-I` less its `-E`, which would drop PYTHONHASHSEED
if dict(os.environ) != ENV:  # the driver runs as its programs do (container.py's DRIVER_ARGV)
    raise SystemExit(f"driver: environment {sorted(os.environ)} is not the programs' {sorted(ENV)}")
if CONFIG.get("fresh_interpreter"):  # one new python3 per program (the slower, older path)
    HARNESS_CODE = FRESH_MODULES = None
else:  # the warm start (driver_fork.py): programs run in forks of this process
    HARNESS_CODE = compile(HARNESS, "<string>", "exec")  # the name `python3 -c` gives it
    FRESH_MODULES = preload(CONFIG["preload"], [PYTHON, *PY_FLAGS], ENV)


def child_setup(job, wait_fd):
    """In the forked child, still root: wait for the previous clean-up, set limits, drop to UID."""
    if wait_fd is not None:
        select.select([wait_fd], [], [])  # pidfd: readable once the cleaner has exited
    os.setsid()
    os.chdir("/tmp")
    mem = int(job["memory_mb"]) * 1024 * 1024
    cpu = int(float(job["timeout_s"])) + 1
    for name, value in (("AS", mem), ("NPROC", CONFIG["nproc"]), ("FSIZE", CONFIG["fsize"]),
                        ("CPU", cpu), ("NOFILE", 256), ("CORE", 0)):
        limit = getattr(resource, "RLIMIT_" + name)
        resource.setrlimit(limit, (value, value + 1 if name == "CPU" else value))
    with open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")  # before dropping root: after setuid the file is not ours
    os.setgroups([])
    os.setresgid(UID, UID, UID)
    os.setresuid(UID, UID, UID)  # real/effective/saved: every capability is gone from here


def spawn(job, wait_fd):
    """fork the program's process and start the harness in it without waiting (no round trip
    on the critical path): run in the fork itself (`run_harness_here`) or, with
    `fresh_interpreter`, exec'd as a new python3. A set-up failure is written to a pipe the
    program never sees. The secret and decoys are drawn after the fork. Returns (pid,
    stdout, stderr, set-up failure, proof read end, secret, secret read end,
    [(decoy read end, decoy)])."""
    code = job["code"].encode("utf-8", "surrogatepass")
    tests = job["tests"].encode("utf-8", "surrogatepass")
    secret_no, proof_no, decoy_nos = draw_numbers()
    entry = str(job.get("entry_point") or "")
    memfd = os.memfd_create("job", 0)
    os.write(memfd, f"{secret_no} {proof_no} {len(code)} {entry}\n".encode() + code + tests)
    os.lseek(memfd, 0, os.SEEK_SET)
    secret_pipes = [os.pipe() for _ in range(1 + len(decoy_nos))]  # [secret, *decoys], empty yet
    proof_r, proof_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fail_r, fail_w = os.pipe()  # O_CLOEXEC by default
    pid = os.fork()
    if pid == 0:
        try:
            fail_w = os.dup2(fail_w, 1000, inheritable=False)
            if wait_fd is not None:
                wait_fd = os.dup2(wait_fd, 1001, inheritable=False)
            null = os.open("/dev/null", os.O_RDONLY)
            moves = [(null, 0), (out_w, 1), (err_w, 2), (memfd, 3), (proof_w, proof_no)] + [
                (r, no) for (r, _), no in zip(secret_pipes, [secret_no] + decoy_nos)]
            staged = [(os.dup2(src, 1100 + i, inheritable=False), dst) for i, (src, dst) in enumerate(moves)]
            for src, dst in staged:  # two steps: a source number may be another's target
                os.dup2(src, dst)
            low = 3
            for dst in sorted(dst for _, dst in moves if dst >= 3):
                os.closerange(low, dst)
                low = dst + 1
            os.closerange(low, 1000)  # the secret pipes' write ends too
            os.closerange(1002, 65536)
            child_setup(job, wait_fd)
            if HARNESS_CODE is None:
                os.execve(PYTHON, [PYTHON, *PY_FLAGS, "-c", HARNESS], ENV)
            run_harness_here(HARNESS_CODE, FRESH_MODULES, ENV, [fd for fd in (fail_w, wait_fd) if fd is not None])
        except BaseException as exc:
            os.write(fail_w, repr(exc).encode()[:2000])
        finally:
            os._exit(127)
    for fd in (memfd, out_w, err_w, fail_w, proof_w):
        os.close(fd)
    secret, *decoys = fill_secret_pipes([w for _, w in secret_pipes])
    secret_r, decoy_rs = secret_pipes[0][0], [r for r, _ in secret_pipes[1:]]
    return pid, out_r, err_r, fail_r, proof_r, secret, secret_r, list(zip(decoy_rs, decoys))


def oom_kills():
    """The container's OOM-kill counter (cgroup v1 or v2), or None when unreadable."""
    for path in ("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"):
        try:
            with open(path) as fh:
                for line in fh:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            continue
    return None


def clip(data):
    if len(data) <= 2 * KEEP:
        return data.decode("utf-8", "replace")
    cut = len(data) - 2 * KEEP
    return (data[:KEEP].decode("utf-8", "replace") + f"\n...[{cut} bytes cut]...\n"
            + data[-KEEP:].decode("utf-8", "replace"))


def collect(pid, fds, deadline):
    """Read stdout/stderr until the program exits, the deadline passes or output overflows."""
    pidfd = os.pidfd_open(pid)
    bufs = {fd: bytearray() for fd in fds}
    for fd in fds:
        os.set_blocking(fd, False)
    open_fds, verdict, total = list(fds), None, 0
    while verdict is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            verdict = "timeout"
            break
        ready, _, _ = select.select(open_fds + [pidfd], [], [], remaining)
        for fd in ready:
            if fd == pidfd:
                verdict = "exited"
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.remove(fd)
                continue
            total += len(chunk)
            bufs[fd] += chunk[: max(0, MAX_OUTPUT + 1 - len(bufs[fd]))]
            if total > MAX_OUTPUT:
                verdict = "output_exceeded"
    os.close(pidfd)
    return verdict, bufs[fds[0]], bufs[fds[1]]


def drain(fd, buf, until):
    """Read what is left in a pipe: until EOF or `until`; with until=None only what is there."""
    while len(buf) <= MAX_OUTPUT:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            if until is None or time.monotonic() > until:
                return
            time.sleep(0.001)
            continue
        if not chunk:
            return
        buf += chunk[: max(0, MAX_OUTPUT + 1 - len(buf))]


def classify(verdict, code, err, oom, proof_ok):
    """`passed` needs exit status 0 AND the harness's proof; exit 0 without it is `failed`."""
    if verdict in ("timeout", "output_exceeded"):
        return verdict
    if code == 0:
        return "passed" if proof_ok else "failed"
    tail = err[-400:].decode("utf-8", "replace").rstrip().splitlines()[-1:]
    if tail and tail[0].startswith("MemoryError"):
        return "memory_exceeded"  # RLIMIT_AS
    if oom or (oom is None and code == -signal.SIGKILL):
        return "memory_exceeded"  # the container's OOM killer struck during this program
    if code == -signal.SIGXCPU:
        return "timeout"
    return "failed"


def run_job(job, previous):
    """Run one program. `previous`: the last program's clean-up, maybe still running (the
    new process waits for it). Returns (result, cleaner still to trigger after the reply)."""
    t0 = time.monotonic()
    ooms = oom_kills()
    pid, out_r, err_r, fail_r, proof_r, secret, secret_r, decoys = spawn(
        job, previous[2] if previous else None)
    if previous:
        reap(previous)
    cleaner = start_cleaner(UID, CLEANER_UID)
    try:
        verdict, out, err = collect(pid, (out_r, err_r), t0 + float(job["timeout_s"]))
        if verdict != "exited":
            trigger(cleaner)
            reap(cleaner)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        until = None if verdict == "exited" else time.monotonic() + 1.0
        drain(out_r, out, until)
        drain(err_r, err, until)
        failure = os.read(fail_r, 4096)
        proof = read_now(proof_r)[:PROOF_CAP]
        proof_ok, detail = proof_verdict(proof, secret, secret_r, decoys)
    except BaseException:
        if untriggered(cleaner):
            trigger(cleaner)
            reap(cleaner)
        raise
    finally:
        for fd in (out_r, err_r, fail_r, proof_r, secret_r, *(fd for fd, _ in decoys)):
            os.close(fd)
    if failure:
        raise RuntimeError(f"program set-up failed: {failure.decode(errors='replace')}")
    if verdict == "exited" and len(out) + len(err) > MAX_OUTPUT:
        verdict = "output_exceeded"
    oom = None if ooms is None else oom_kills() != ooms  # None: counter unreadable
    status = classify(verdict, code, err, oom, proof_ok)
    if status in ("timeout", "output_exceeded", "memory_exceeded"):
        detail = {"timeout": "killed at the time limit", "output_exceeded": "stdout+stderr over the cap",
                  "memory_exceeded": "out of memory"}[status]
    elif code != 0 and not detail.startswith("the tests do not compile"):
        detail = f"exit status {code}: an error or a failed test (see stderr)"
    result = {"status": status, "stdout": clip(out), "stderr": clip(err), "exit_code": code,
              "duration_s": time.monotonic() - t0, "detail": detail}
    return result, (cleaner if verdict == "exited" else None)


def read_lines(previous):
    """Yield job lines from stdin; meanwhile reap the running clean-up as soon as it ends."""
    buf = b""
    while True:
        while b"\n" not in buf:
            fds = [0] + ([previous[0][2]] if previous[0] else [])
            ready, _, _ = select.select(fds, [], [])
            if previous[0] and previous[0][2] in ready:
                reap(previous[0])
                previous[0] = None
            if 0 in ready:
                chunk = os.read(0, 1 << 20)
                if not chunk:
                    return
                buf += chunk
        line, buf = buf.split(b"\n", 1)
        if line.strip():
            yield line


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    previous = [None]  # a triggered clean-up not reaped yet (shared with read_lines)
    for line in read_lines(previous):
        job = json.loads(line)
        try:
            result, cleaner = run_job(job, previous[0])
        except Exception as exc:  # infrastructure trouble inside the container
            result, cleaner = {"status": "sandbox_error", "stdout": "", "exit_code": None,
                               "stderr": f"driver: {exc!r}", "duration_s": 0.0,
                               "detail": "infrastructure failure inside the container"}, None
            if previous[0] is not None:
                try:
                    reap(previous[0])
                except OSError:
                    pass
        previous[0] = None
        result["id"] = job["id"]
        out.write(json.dumps(result).encode() + b"\n")
        out.flush()
        if cleaner is not None:
            trigger(cleaner)  # runs while the reply travels; the next program waits for it
            previous[0] = cleaner
    # stdin ended: the pool closed this slot, or its owner died (kill -9, a cancelled flow
    # run). Stop the container: PID 1 (docker-init) forwards SIGTERM to `sleep` and exits;
    # the container was started with auto_remove, so nothing is left behind on the host.
    try:
        if previous[0] is not None:
            reap(previous[0])
    finally:  # the container stops even if the last clean-up cannot be reaped
        os.kill(1, signal.SIGTERM)


main()
