"""The driver's per-program clean-up: no leftover of one program ever meets the next.

Part of the driver program (standard library only, nothing from the project): it is not
imported inside the container but joined, as text, in front of `driver.py` by
`sandbox.container` (`DRIVER_PARTS`) and run with it as one `python3 -s -P -c <text>`.

What it guards against: a program that leaves something behind for the next program in its
slot or fights its own clean-up — background children (in other sessions, double-forked,
orphaned), files in /tmp, a process that tries to signal or ptrace the cleaner. How:
- the clean-up is forked by the root driver while the program runs (`start_cleaner`), out
  of the program's reach, and waits for one byte (`trigger`) before it acts;
- it runs with real/saved uid `cleaner_uid` and effective uid `uid` (`clean_slot`): it may
  signal every process of `uid` and delete its files, while no process of `uid` may signal
  or ptrace it (the kernel compares against its real/saved uid);
- `kill(-1, SIGKILL)` repeats until no process of `uid` is alive (`live_processes`), then
  everything in /tmp is removed;
- the driver reaps it (`reap`) before the next program drops to `uid` and execs; a cleaner
  that did not exit 0 is reported on the driver's stderr (no program may signal it).
"""
import os
import shutil
import signal
import sys
import time


def start_cleaner(uid, cleaner_uid):
    """Fork the clean-up now, as root (out of the program's reach); it starts on one byte.
    Returns (pid, trigger write end, pidfd)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(w)
            if os.read(r, 1):
                clean_slot(uid, cleaner_uid)
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


def untriggered(cleaner):
    """True while the cleaner has not been triggered yet (its pipe is still open)."""
    try:
        os.fstat(cleaner[1])
        return True
    except OSError:
        return False


def reap(cleaner):
    pid, _, pidfd = cleaner
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    if status != 0:  # not a program's doing: no program may signal the cleaner
        sys.stderr.write(f"driver: clean-up exited with wait status {status}\n")
        sys.stderr.flush()


def clean_slot(uid, cleaner_uid):
    os.setgroups([])
    os.setresgid(cleaner_uid, uid, cleaner_uid)
    os.setresuid(cleaner_uid, uid, cleaner_uid)
    for _ in range(100000):
        try:
            os.kill(-1, signal.SIGKILL)  # all processes we may signal, except ourselves
        except ProcessLookupError:
            break
        if not live_processes(uid):
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


def live_processes(uid):
    """Pids running as `uid` (other than the caller) that are not zombies yet."""
    alive = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
            if int(pid) != os.getpid() and state != b"Z" and os.stat(f"/proc/{pid}").st_uid == uid:
                alive.append(int(pid))
        except (OSError, IndexError):
            continue
    return alive
