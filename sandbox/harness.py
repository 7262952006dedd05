"""The test harness: trusted code that runs ONE solution and its tests in one `python3 -I`
process inside the sandbox, and proves to the driver that every test ran to completion.

The driver (`driver.py`) runs this file's text as `python3 -I -c <text>` (standard library
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
   what the tests call).
5. only if the tests returned normally: flush stdout/stderr, move the secret from its pipe to
   the proof pipe in one expression (it never sits in a Python variable), `os._exit(0)`:
   no atexit hook, thread or finaliser can run after the proof.
Any exception (SystemExit included) in 3 or 4 closes the secret and proof fds first, then
prints the traceback (the interpreter's C printer, the audit hook stays armed) and exits 1:
no proof can be written after a failure.

What a solution can still do (residual risk, see the driver's threat model): monkeypatch
attributes of modules the tests import (e.g. `math.isclose`); return objects that lie in
comparisons (`__eq__` always True); and, written against this harness's internals, look for
a hole in the audit-hook screen (e.g. frames reached some way not listed above) to find the
secret's fd number and forge the proof. It cannot learn the secret from the program text,
argv, the environment or memory before the tests ran: it is only in the pipe.
"""


def _harness():
    import builtins
    import os
    import sys
    import types  # noqa: F401  (its import reads tb_frame: load it before the audit hook)
    import _signal

    _exec, _compile, _dict, _str, _type, _tuple = exec, compile, dict, str, type, tuple
    _frozenset, _callable, _BaseException, _SyntaxError = frozenset, callable, BaseException, SyntaxError
    _bytes, _int, _fspath = bytes, int, os.fspath
    _read, _write, _close, _exit, _realpath = os.read, os.write, os.close, os._exit, os.path.realpath
    image_python = ("/usr/lib/python3", "/usr/local/lib/python3")  # read-only: no symlinks of the solution
    _modules, _module_type = sys.modules, _type(sys)
    stderr, _excepthook = sys.stderr, sys.__excepthook__
    _flush_out, _flush_err = sys.stdout.flush, sys.stderr.flush
    builtin_items = _tuple(builtins.__dict__.items())  # immutable snapshot, before any solution code
    builtin_names = _frozenset(builtins.__dict__)

    chunks = []
    while True:
        chunk = _read(3, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    _close(3)
    header, _, body = b"".join(chunks).partition(b"\n")
    del chunks
    secret_fd, proof_fd, n_code, entry_point = header.decode().split(" ", 3)
    secret_fd, proof_fd, n_code = int(secret_fd), int(proof_fd), int(n_code)
    code = body[:n_code].decode("utf-8", "surrogatepass")
    tests = body[n_code:].decode("utf-8", "surrogatepass")
    del body, header

    def report(what, exc):
        """After a failure: no proof can follow (both fds closed first), then the traceback
        (printed by the interpreter's own C routine: no frames handed to Python code)."""
        for fd in (secret_fd, proof_fd):
            try:
                _close(fd)
            except OSError:
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

    try:
        tests_code = _compile(tests, "<tests>", "exec", dont_inherit=True)
    except (_SyntaxError, ValueError) as exc:  # ValueError: NUL bytes
        try:
            _write(proof_fd, b"tests_syntax_error")
        except OSError:
            pass
        report("the tests do not compile (a dataset bug, not the solution's fault)", exc)
    try:
        solution_code = _compile(code, "<solution>", "exec", dont_inherit=True)
    except (_SyntaxError, ValueError) as exc:
        report("the solution does not compile", exc)

    blocked_imports = _frozenset(("ctypes", "_ctypes", "_testcapi", "_testinternalcapi",
                                  "_testbuffer", "_testmultiphase", "_xxsubinterpreters",
                                  "_xxinterpchannels", "_signal"))
    frame_attrs = _frozenset(("tb_frame", "gi_frame", "cr_frame", "ag_frame"))
    refused = _frozenset(("sys.settrace", "sys.setprofile", "sys._current_frames",
                          "gc.get_objects", "gc.get_referrers", "gc.get_referents",
                          "cpython.PyInterpreterState_Clear", "cpython.run_interactivehook"))

    def audit(event, args):
        if event in refused or event.startswith("ctypes."):
            raise RuntimeError(f"sandbox: {event} is not allowed in solutions")
        if event == "sys._getframe":
            raise ValueError("sandbox: sys._getframe is not allowed in solutions")
        if event == "object.__getattr__" and args[1] in frame_attrs:
            raise AttributeError(f"sandbox: {args[1]} is not allowed in solutions")
        if event == "import" and args[0] in blocked_imports:
            raise ImportError(f"sandbox: importing {args[0]} is not allowed in solutions")
        if event == "open" and _type(args[0]) is not _int:
            path = _fspath(args[0])
            path = path if _type(path) is _str else _bytes(path).decode("utf-8", "replace")
            if path.rsplit("/", 1)[-1] == "mem" or (
                    (".." in path or not path.startswith(image_python))  # imports: no realpath
                    and _realpath(path).rsplit("/", 1)[-1] == "mem"):
                raise PermissionError(f"sandbox: opening {path} is not allowed in solutions")

    real_signal = _signal.signal

    def signal(signalnum, handler):
        if _callable(handler):
            user = handler
            handler = lambda signum, frame: user(signum, None)  # noqa: E731  (no frames)
        return real_signal(signalnum, handler)

    _signal.signal = signal
    sys.addaudithook(audit)

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
                tns[key] = value
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


if __name__ == "__main__":
    _harness()
