"""Docker sandbox for untrusted, model-written Python: rewards for HumanEval / MBPP.

Threat model
------------
Programs are hostile: they may loop, fork-bomb, allocate without bound, flood output, fill
disk, probe the network, signal other processes, read secrets, or try to break the driver
that runs them. What is isolated, and how:
- Host and other programs: each slot is its own container (namespaces, cgroup) with network
  "none" (loopback only, no DNS), read-only root, /tmp the only writable place (small tmpfs,
  noexec, cleaned after every program), no /dev/shm (ipc "none"), memory = memory+swap
  limit, pids limit, cap_drop ALL except SETUID/SETGID for the root driver,
  no-new-privileges, docker-init as PID 1 reaping orphans.
- Programs never run as root, and never as the uid of PID 1 or of the driver (both 0): each
  slot has its own uid (`uid_base + i`, a random block per pool), so `kill(1)`, `kill(-1)`
  and ptrace reach only the program's own processes; root-only files such as /etc/shadow
  stay unreadable; after a setuid from 0 the program holds no capabilities and cannot regain
  any. The per-program clean-up runs with a real/saved uid no program has, so no program can
  signal or ptrace it.
- Per program (rlimits set by the driver): address space = memory_mb (MemoryError), NPROC
  (fork bombs), FSIZE, CPU, NOFILE, no core files; wall-clock deadline; stdout+stderr capped
  inside the container; afterwards every process of the slot uid is SIGKILLed (background
  children included). Each program's process is a fork of the slot's warm driver made to
  look like a new `python3 -s -P` (`driver_fork.py`; `SlotLimits(fresh_interpreter=True)` execs
  one instead): it never holds a secret, and what one program changes dies with its process.
- The reward itself (the policy searches for holes): solution and tests are compiled and
  run separately by a trusted harness (`harness.py`) that proves the tests ran to completion
  with a per-program secret; `passed` needs that proof AND exit status 0, so exiting 0
  before, instead of or around the tests is `failed` (details and residual risk: `driver.py`).
- Infrastructure failure is not a wrong answer: a dead or wedged container is replaced, the
  program is retried once, then reported as `sandbox_error` (reward None, not 0).
Not isolated / out of scope: the host kernel is shared (a kernel exploit escapes — use gVisor
or a VM for adversaries with 0-days); CPU time is not partitioned between slots beyond the
deadline; timing side channels; programs see the (read-only) image contents and the
standard library; a program can read what earlier programs left in /tmp only if the clean-up
failed (then the slot is replaced). The Docker daemon is trusted and must be root-owned.
"""
from .container import SlotLimits
from .image import DEFAULT_IMAGE, BuildReport, build_image, image_exists
from .pool import SandboxPool, remove_leftover_containers
from .result import STATUSES, ExecutionResult, Status

__all__ = [
    "DEFAULT_IMAGE", "STATUSES", "BuildReport", "ExecutionResult", "SandboxPool", "SlotLimits",
    "Status", "build_image", "image_exists", "remove_leftover_containers",
]
