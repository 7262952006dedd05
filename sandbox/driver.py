"""The driver: one long-lived process per sandbox container, standard library only.

Sent into the container as `python3 -c <this file>` by `sandbox.container` and run as root
with only CAP_SETUID/CAP_SETGID. It reads one JSON job per line on stdin and writes one JSON
result per line on stdout; nothing else ever touches its stdin/stdout. Each program runs in a
fresh `python3 -I` process that is:
- read from an anonymous memfd (no file on disk, no argv size limit), stdin = /dev/null;
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
to UID and execs, so no leftover of one program ever meets the next.
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
PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
       "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


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
    """fork + exec without waiting for the exec (no round trip on the critical path).
    A set-up failure is written to a close-on-exec pipe the program never sees."""
    memfd = os.memfd_create("program", 0)
    os.write(memfd, job["program"].encode("utf-8", "surrogatepass"))
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
            for src, dst in ((null, 0), (out_w, 1), (err_w, 2), (memfd, 3)):
                os.dup2(src, dst)
            os.closerange(4, 1000)
            os.closerange(1002, 65536)
            child_setup(job, wait_fd)
            os.execve(PYTHON, [PYTHON, "-I", "/dev/fd/3"], ENV)
        except BaseException as exc:
            os.write(fail_w, repr(exc).encode()[:2000])
        finally:
            os._exit(127)
    for fd in (memfd, out_w, err_w, fail_w):
        os.close(fd)
    return pid, out_r, err_r, fail_r


def start_cleaner():
    """Fork the clean-up now, as root (out of the program's reach); it starts on one byte."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(w)
            if os.read(r, 1):
                clean_slot()
                code = 0
        except BaseException:
            pass
        finally:
            os._exit(code)
    os.close(r)
    return pid, w, os.pidfd_open(pid)


def trigger(cleaner):
    os.write(cleaner[1], b"x")
    os.close(cleaner[1])


def reap(cleaner):
    pid, _, pidfd = cleaner
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    if status != 0:  # not a program's doing: no program may signal the cleaner
        sys.stderr.write(f"driver: clean-up exited with wait status {status}\n")
        sys.stderr.flush()


def clean_slot():
    os.setgroups([])
    os.setresgid(CLEANER_UID, UID, CLEANER_UID)
    os.setresuid(CLEANER_UID, UID, CLEANER_UID)
    for _ in range(100000):
        try:
            os.kill(-1, signal.SIGKILL)  # all processes we may signal, except ourselves
        except ProcessLookupError:
            break
        if not live_processes():
            break
        time.sleep(0.0002)
    else:
        raise RuntimeError("processes of the slot uid survive SIGKILL")
    for name in os.listdir("/tmp"):
        path = os.path.join("/tmp", name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def live_processes():
    """Pids running as UID (other than the caller) that are not zombies yet."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if int(pid) != os.getpid() and state != b"Z" and os.stat(f"/proc/{pid}").st_uid == UID:
                alive.append(int(pid))
        except (OSError, IndexError):
            continue
    return alive


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


def classify(verdict, code, err, oom):
    if verdict in ("timeout", "output_exceeded"):
        return verdict
    if code == 0:
        return "passed"
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
    pid, out_r, err_r, fail_r = spawn(job, previous[2] if previous else None)
    if previous:
        reap(previous)
    cleaner = start_cleaner()
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
    except BaseException:
        if untriggered(cleaner):
            trigger(cleaner)
            reap(cleaner)
        raise
    finally:
        for fd in (out_r, err_r, fail_r):
            os.close(fd)
    if failure:
        raise RuntimeError(f"program set-up failed: {failure.decode(errors='replace')}")
    if verdict == "exited" and len(out) + len(err) > MAX_OUTPUT:
        verdict = "output_exceeded"
    oom = None if ooms is None else oom_kills() != ooms  # None: counter unreadable
    result = {"status": classify(verdict, code, err, oom), "stdout": clip(out), "stderr": clip(err),
              "exit_code": code, "duration_s": time.monotonic() - t0}
    return result, (cleaner if verdict == "exited" else None)


def untriggered(cleaner):
    """True while the cleaner has not been triggered yet (its pipe is still open)."""
    try:
        os.fstat(cleaner[1])
        return True
    except OSError:
        return False


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
                               "stderr": f"driver: {exc!r}", "duration_s": 0.0}, None
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


main()
