"""The test harness: trusted code that runs ONE solution and its tests in one `python3 -s -P`
process inside the sandbox, and proves to the driver that every test ran to completion.

The driver (`driver.py`) runs this file's text as `python3 -s -P -c <text>` (standard library
only, Python >= 3.8 for audit hooks) with:
- fd 3: a memfd holding `"<secret_fd> <proof_fd> <code bytes> <entry point>\\n" + code + tests`,
  read and closed here before any solution code runs;
- fd <secret_fd> (a random number per program): the read end of a pipe holding a 32-hex-digit
  secret the driver drew from os.urandom for this program only; the write end is closed;
- fd <proof_fd> (random too): the write end of a pipe only the driver reads;
- more read ends at random numbers: decoys holding other random secrets; the driver fails
  the program if any of them was read (a blind "read every fd" program trips them).

Order of work, every step before the solution runs done with references captured here, so a
solution that rebinds `builtins.exec`, `os.write`, `os._exit`, ... changes nothing:
1. compile the tests as "<tests>" (a SyntaxError is a dataset bug: reported on the proof
   pipe as `tests_syntax_error`, exit 1) and the solution as "<solution>" (SyntaxError:
   exit 1). Two compilations: the solution cannot swallow or comment out the tests (an
   unterminated triple quote, a trailing backslash or `if False:` is a SyntaxError of the
   solution alone).
2. arm an audit hook (it cannot be removed) that refuses, from here on: sys.settrace /
   sys.setprofile (a tracer could jump over asserts or rewrite the harness's locals),
   sys._getframe / sys._current_frames / traceback, generator and coroutine frames, gc
   object walks, ctypes and the C test modules, a new load of `_signal`, opening
   /proc/*/mem. Python signal handlers get `frame=None` (a wrapper on `_signal.signal`).
3. exec the solution in the namespace of a fresh module `solution` (so
   `if __name__ == "__main__":` blocks do not run, as in the official HumanEval harness).
4. exec the tests in their own globals: the solution's top-level names, except names that
   shadow a builtin (restored to the real builtin unless it is the problem's entry point,
   e.g. MBPP 126 tests a function called `sum`), with a pristine copy of the builtins
   taken in step 1 (a solution that patches `builtins.abs` or `isinstance` does not change
   what the tests call). Every callable the solution's names hold — functions however they
   were made (`exec`, decorators, `lru_cache`), callable instances, and a class too when it is
   the entry point — is handed to the tests wrapped (`_wrapper`): a returned value must be
   built from builtin/stdlib value types, so an object that lies in comparisons
   (AlwaysEqual) is a failed test, not a pass. Classes other than the entry point are not
   wrapped (tests build values with them, e.g. MBPP's `Pair`).
Everything that runs after the solution started (`_runner`'s run, the report, the wrapper,
the honesty checker, the audit hook and its C-calls-only realpath) holds every reference
in a closure and reads no global name, so a solution that rebinds this module's globals
through `sys.modules["__main__"]` or patches `builtins`/`posixpath` changes none of it
(tests/test_harness_reads_no_globals.py checks the bytecode).
5. only if the tests returned normally: flush stdout/stderr, move the secret from its pipe to
   the proof pipe in one expression (it never sits in a Python variable), `os._exit(0)`:
   no atexit hook, thread or finaliser can run after the proof.
Any exception (SystemExit included) in 3 or 4 closes the secret and proof fds first, then
prints the traceback (the interpreter's C printer, the audit hook stays armed) and exits 1:
no proof can be written after a failure.

What a solution can still do (residual risk, see the driver's threat model): monkeypatch
attributes of modules the tests import (e.g. `math.isclose`); hide a lying object inside a
builtin iterator nested in a returned value (a returned value of its own type — `__eq__`
always True, the AlwaysEqual hack — is refused by `_wrapper`'s check); return a lying
instance from a class that is not the entry point when the tests call that class directly;
and, written against this harness's internals, look for
a hole in the audit-hook screen (e.g. frames reached some way not listed above) to find the
secret's fd number and forge the proof. It cannot learn the secret from the program text,
argv, the environment or memory before the tests ran: it is only in the pipe.
"""


def _harness():
    """Every reference the run needs is captured (`_prepare`) before any solution code runs;
    the run itself (`_runner`) and everything it calls read no global name."""
    _prepare()()


def _prepare():
    import builtins
    import os
    import stat  # (os imported it: nothing new is loaded)
    import sys
    import types  # noqa: F401  (its import reads tb_frame: load it before the audit hook)
    import _signal

    c = _captured(builtins, os, stat, sys)
    c["honest_value"] = _honesty_checker(type, frozenset, tuple)
    c["wrap"] = _wrapper(c["honest_value"], callable, type, issubclass, TypeError)
    secret_fd, proof_fd, code, tests, entry_point = _read_job(c["read"], c["close"])
    c["report"] = report = _reporter(secret_fd, proof_fd, c)
    try:
        tests_code = compile(tests, "<tests>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        try:
            os.write(proof_fd, b"tests_syntax_error")
        except OSError:
            pass
        report("the tests do not compile (a dataset bug, not the solution's fault)", exc)
    try:
        solution_code = compile(code, "<solution>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        report("the solution does not compile", exc)
    run = _runner(solution_code, tests_code, entry_point, secret_fd, proof_fd, c)
    real_signal = _signal.signal
    _signal.signal = _frameless_signal(real_signal, callable)
    sys.addaudithook(_audit_hook(c))
    return run


def _captured(builtins, os, stat, sys):
    """The references the run uses, taken before any solution code runs."""
    return {"exec": exec, "compile": compile, "dict": dict, "str": str, "type": type, "tuple": tuple,
         "frozenset": frozenset, "callable": callable, "issubclass": issubclass, "BaseException": BaseException,
         "OSError": OSError, "TypeError": TypeError, "bytes": bytes, "int": int, "fspath": os.fspath,
         "read": os.read, "write": os.write, "close": os.close, "exit": os._exit, "lstat": os.lstat,
         "readlink": os.readlink, "getcwd": os.getcwd, "S_ISLNK": stat.S_ISLNK, "modules": sys.modules, "module_type": type(sys), "sys": sys, "stderr": sys.stderr,
         "excepthook": sys.__excepthook__, "flush_out": sys.stdout.flush, "flush_err": sys.stderr.flush,
         "builtin_items": tuple(builtins.__dict__.items()),  # immutable snapshot, before any solution code
         "builtin_names": frozenset(builtins.__dict__)}


def _read_job(_read, _close):
    """fd 3 → (secret fd, proof fd, solution code, tests, entry point); fd 3 is closed."""
    chunks = []
    while True:
        chunk = _read(3, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _close(3)
    header, _, body = b"".join(chunks).partition(b"\n")
    secret_fd, proof_fd, n_code, entry_point = header.decode().split(" ", 3)
    n_code = int(n_code)
    code = body[:n_code].decode("utf-8", "surrogatepass")
    tests = body[n_code:].decode("utf-8", "surrogatepass")
    return int(secret_fd), int(proof_fd), code, tests, entry_point


def _reporter(secret_fd, proof_fd, c):
    """report(what, exc) for after a failure: no proof can follow (both fds closed first),
    then the traceback (printed by the interpreter's own C routine: no frames handed to
    Python code), exit 1. Reads no global name."""
    _close, _exit, _write, _type, _OSError = c["close"], c["exit"], c["write"], c["type"], c["OSError"]
    _BaseException, sys, stderr, _excepthook = c["BaseException"], c["sys"], c["stderr"], c["excepthook"]
    _flush_out, _flush_err = c["flush_out"], c["flush_err"]

    def report(what, exc):
        for fd in (secret_fd, proof_fd):
            try:
                _close(fd)
            except _OSError:
                pass
        try:
            _flush_out()
        except _BaseException:
            pass
        try:
            sys.stderr = stderr
            stderr.write(f"harness: {what}\n")
            _excepthook(_type(exc), exc, exc.__traceback__)
            _flush_err()
        except _BaseException:
            try:
                _write(2, f"harness: {what}\n{_type(exc).__name__}: {exc}\n".encode("utf-8", "replace"))
            except _BaseException:
                pass
        _exit(1)

    return report


def _runner(solution_code, tests_code, entry_point, secret_fd, proof_fd, c):
    """run(): exec the solution in a fresh module `solution`, then the tests in their own
    globals (see the module docstring, steps 3–5). Reads no global name."""
    _exec, _dict, _str, _type, _tuple, _BaseException = c["exec"], c["dict"], c["str"], c["type"], c["tuple"], \
        c["BaseException"]
    _modules, _module_type, report, wrap = c["modules"], c["module_type"], c["report"], c["wrap"]
    builtin_items, builtin_names = c["builtin_items"], c["builtin_names"]
    _flush_out, _flush_err, _write, _read, _exit = c["flush_out"], c["flush_err"], c["write"], c["read"], c["exit"]

    def run():
        module = _module_type("solution")
        ns = module.__dict__
        _modules["solution"] = module
        try:
            _exec(solution_code, ns)
        except _BaseException as exc:
            report("the solution raised before the tests ran", exc)
        tns = {}
        try:
            for key, value in _tuple(ns.items()):
                if _type(key) is _str and (key not in builtin_names or key == entry_point):
                    tns[key] = wrap(value, key, key == entry_point)  # what the tests get back is checked
            tns["__name__"], tns["__builtins__"] = "solution", _dict(builtin_items)
            _exec(tests_code, tns)
        except _BaseException as exc:
            report("a test failed", exc)
        try:
            _flush_out()
        except _BaseException:
            pass
        try:
            _flush_err()
        except _BaseException:
            pass
        _write(proof_fd, b"pass:" + _read(secret_fd, 64))
        _exit(0)

    return run


def _frameless_signal(real_signal, _callable):
    """`_signal.signal` for the solution: Python handlers get `frame=None`."""
    def signal(signalnum, handler):
        if _callable(handler):
            user = handler
            handler = lambda signum, frame: user(signum, None)  # noqa: E731  (no frames)
        return real_signal(signalnum, handler)

    return signal


def _audit_hook(c):
    """The audit hook armed before the solution runs (it cannot be removed); refuses what
    the module docstring's step 2 lists. Reads no global name."""
    _type, _int, _str, _bytes, _fspath = c["type"], c["int"], c["str"], c["bytes"], c["fspath"]
    _realpath = _resolver(c)
    _RuntimeError, _ValueError, _AttributeError, _ImportError, _PermissionError = (
        RuntimeError, ValueError, AttributeError, ImportError, PermissionError)
    image_python = ("/usr/lib/python3", "/usr/local/lib/python3")  # read-only: no symlinks of the solution
    blocked_imports = frozenset(("ctypes", "_ctypes", "_testcapi", "_testinternalcapi", "_testbuffer",
                                 "_testmultiphase", "_xxsubinterpreters", "_xxinterpchannels", "_signal"))
    frame_attrs = frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame"))
    refused = frozenset(("sys.settrace", "sys.setprofile", "sys._current_frames", "gc.get_objects",
                         "gc.get_referrers", "gc.get_referents", "cpython.PyInterpreterState_Clear",
                         "cpython.run_interactivehook"))

    def audit(event, args):
        if event in refused or event.startswith("ctypes."):
            raise _RuntimeError(f"sandbox: {event} is not allowed in solutions")
        if event == "sys._getframe":
            raise _ValueError("sandbox: sys._getframe is not allowed in solutions")
        if event == "object.__getattr__" and args[1] in frame_attrs:
            raise _AttributeError(f"sandbox: {args[1]} is not allowed in solutions")
        if event == "import" and args[0] in blocked_imports:
            raise _ImportError(f"sandbox: importing {args[0]} is not allowed in solutions")
        if event == "open" and _type(args[0]) is not _int:
            path = _fspath(args[0])
            path = path if _type(path) is _str else _bytes(path).decode("utf-8", "replace")
            if path.rsplit("/", 1)[-1] == "mem" or (
                    (".." in path or not path.startswith(image_python))  # imports: no realpath
                    and _realpath(path).rsplit("/", 1)[-1] == "mem"):
                raise _PermissionError(f"sandbox: opening {path} is not allowed in solutions")

    return audit


def _resolver(c):
    """realpath(path) from C calls only (lstat, readlink, getcwd), so that a solution that
    patches `posixpath` or `os` cannot make a symlink to /proc/self/mem look harmless to the
    audit hook. Reads no global name."""
    _lstat, _readlink, _getcwd, _S_ISLNK, _OSError = c["lstat"], c["readlink"], c["getcwd"], c["S_ISLNK"], \
        c["OSError"]

    def realpath(path):
        if not path.startswith("/"):
            path = _getcwd() + "/" + path
        todo, parts, hops = path.split("/")[::-1], [], 0
        while todo:
            part = todo.pop()
            if part == "" or part == ".":
                continue
            if part == "..":
                parts = parts[:-1]
                continue
            here = "/" + "/".join(parts + [part])
            try:
                is_link = _S_ISLNK(_lstat(here).st_mode) and hops < 40
            except _OSError:
                is_link = False
            if not is_link:
                parts = parts + [part]
                continue
            hops += 1
            target = _readlink(here)
            if target.startswith("/"):
                parts = []
            todo = todo + target.split("/")[::-1]
        return "/" + "/".join(parts)

    return realpath


if __name__ == "__main__":
    _harness()
