"""The warm start: each program runs in a fork of this (already started) driver instead of a
new `python3 -s -P -c <harness>` process — the interpreter start and the harness's imports
(≈ 45–60 ms of CPU per program, most of a short program's cost) are paid once per slot.

Part of the driver program (standard library only, nothing from the project): it is not
imported inside the container but joined, as text, in front of `driver.py` by
`sandbox.container` (`DRIVER_PARTS`) and run with it as one `python3 -s -P -c <text>`.

What the forked process looks like to the program — as a new `python3 -s -P -c <harness>`,
except where noted:
- `sys.modules` holds only what a new `python3 -s -P` holds after importing the harness's
  modules (`preload` measures that set by starting one such interpreter); everything else
  the driver imported (json, random, select, subprocess, ...) is dropped, so a program that
  imports `random` gets a fresh module with a fresh seed, not the driver's state;
- `__main__` is a new module, `sys.argv` is `['-c']`, the environment is the driver's `ENV`,
  SIGPIPE and SIGXFSZ are ignored again (Python's start-up does that; the driver restores
  SIGPIPE's default for itself), every fd but the ones it is given is closed — the set-up
  failure pipe and the clean-up's pidfd too, so a program cannot report an infrastructure
  failure or see its slot's clean-up;
- it never held a secret: the driver draws the secret and the decoys after the fork
  (`fill_secret_pipes`) and writes them into pipes; the program only has the read ends;
- the string-hash seed is the driver's, 0 (PYTHONHASHSEED=0, as for a new `python3` here:
  every container and run gives a program the same set order, so the same verdict);
- different by construction: after dropping root the process is not dumpable, so
  /proc/self/mem, ptrace of itself and core files are closed to it by the kernel (stricter
  than a new process).
The driver's own objects (its functions, the current job's text) stay in the copied heap,
reachable only through frames or the gc heap, which the harness's audit hook refuses — the
same screen that keeps the harness's own locals from the solution.
`fresh_interpreter: true` in the driver's config restores one new `python3` per program.
"""
import os
import signal
import subprocess
import sys
import types


def preload(modules, python_argv, env):
    """Import the harness's `modules` into this driver, once; return the names a new
    interpreter (`python_argv`, the program's own flags) has in sys.modules after importing
    the same modules (measured)."""
    for name in modules:
        __import__(name)
    code = "".join(f"import {name}\n" for name in ("sys", *modules)) + "print(' '.join(sys.modules))"
    out = subprocess.run([*python_argv, "-c", code], env=env, capture_output=True, check=True,
                         stdin=subprocess.DEVNULL, timeout=60)
    return frozenset(out.stdout.decode().split())


def run_harness_here(harness_code, fresh_modules, env, close_fds):
    """In the program's forked process, already the slot's uid with its limits: make the
    interpreter look like a new `python3 -s -P -c <harness>` and run the harness. Never
    returns: the harness ends with os._exit; anything else exits 1 (a failed program)."""
    try:
        for fd in close_fds:
            os.close(fd)
        for name in [name for name in sys.modules if name not in fresh_modules]:
            del sys.modules[name]
        main = types.ModuleType("__main__")  # what `python3 -c` starts with
        main.__loader__, main.__annotations__ = sys.modules["__main__"].__loader__, {}
        main.__builtins__ = sys.modules["builtins"]
        sys.modules["__main__"] = main
        sys.argv[:] = ["-c"]
        os.environ.clear()
        os.environ.update(env)
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_IGN)
        exec(harness_code, main.__dict__)
    finally:
        os._exit(1)
