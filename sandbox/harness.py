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
   what the tests call). Every function the solution defined is handed to the tests wrapped
   (`_checked`): a returned value must be built from builtin/stdlib value types, so an
   object that lies in comparisons (AlwaysEqual) is a failed test, not a pass.
5. only if the tests returned normally: flush stdout/stderr, move the secret from its pipe to
   the proof pipe in one expression (it never sits in a Python variable), `os._exit(0)`:
   no atexit hook, thread or finaliser can run after the proof.
Any exception (SystemExit included) in 3 or 4 closes the secret and proof fds first, then
prints the traceback (the interpreter's C printer, the audit hook stays armed) and exits 1:
no proof can be written after a failure.

What a solution can still do (residual risk, see the driver's threat model): monkeypatch
attributes of modules the tests import (e.g. `math.isclose`); hide a lying object inside a
builtin iterator nested in a returned value (a returned value of its own type — `__eq__`
always True, the AlwaysEqual hack — is refused by `_checked`, which wraps every solution
function the tests get); and, written against this harness's internals, look for
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
    _function_type = _type(_harness)
    stderr, _excepthook = sys.stderr, sys.__excepthook__
    _flush_out, _flush_err = sys.stdout.flush, sys.stderr.flush
    builtin_items = _tuple(builtins.__dict__.items())  # immutable snapshot, before any solution code
    builtin_names = _frozenset(builtins.__dict__)
    honest_value = _honesty_checker(_type, _frozenset, _tuple)  # before any solution code

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
        for key, value in _tuple(tns.items()):  # what the tests get back is checked (_checked)
            if _type(value) is _function_type and value.__code__.co_filename == "<solution>":
                tns[key] = _checked(value, honest_value)
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


# Dunders a subclass of an honest type may define without changing what comparisons and
# arithmetic on its values mean (namedtuple defines these).
_NEUTRAL = frozenset(("__module__", "__doc__", "__slots__", "__new__", "__repr__", "__getnewargs__",
                      "__match_args__", "__qualname__", "__dict__", "__weakref__", "__annotations__",
                      "__orig_bases__", "__parameters__", "__init_subclass__", "__class_getitem__",
                      "__firstlineno__", "__static_attributes__", "__init__"))


def _honesty_checker(_type, _frozenset, _tuple):
    """value → None, or why it is not an honest value. Honest: built from the builtin and
    stdlib value types (int, str, list, dict, Counter, Fraction, …) or subclasses of them
    that define no dunder beyond `_NEUTRAL`, element by element. This blocks the AlwaysEqual
    hack: a solution's own type with `__eq__`, `__sub__`, `__bool__`, … overridden would make
    `assert candidate(x) == y` pass whatever it computed. Built before any solution code
    runs (every builtin it calls is captured here); the stdlib types' dunders are
    snapshotted, so patching `collections.Counter.__eq__` is caught too."""
    import collections
    import decimal
    import fractions
    import types

    _sorted, _id, _any, _next, _keys, _values = sorted, id, any, next, dict.keys, dict.values
    generator_type = types.GeneratorType
    plain = (int, float, complex, bool, str, bytes, bytearray, _type(None), list, tuple, dict, set,
             frozenset, range, slice, collections.Counter, collections.OrderedDict,
             collections.defaultdict, collections.deque, fractions.Fraction, decimal.Decimal,
             types.FunctionType, types.BuiltinFunctionType, _type(Ellipsis), _type(NotImplemented))
    plain_set, neutral = _frozenset(plain), _NEUTRAL

    def dunders(t):
        return _tuple(_sorted((k, _id(v)) for k, v in t.__dict__.items() if k.startswith("__")))

    snapshot = {t: dunders(t) for t in plain}
    containers = _frozenset((list, tuple, set, frozenset, collections.deque))
    mappings = _frozenset((dict, collections.Counter, collections.OrderedDict, collections.defaultdict))
    lazy = _frozenset(_type(x) for x in (iter([]), iter(()), iter(""), iter({}), iter(set()), map(abs, []),
                                         filter(None, []), zip(), enumerate([]), reversed([]),
                                         iter(range(0)), iter({}.items()), iter({}.values())))
    lazy = lazy | {generator_type}

    def honest_type(t):
        if t in plain_set:
            return dunders(t) == snapshot[t]
        base = _next((b for b in t.__mro__[1:] if b in plain_set), None)
        if base is None:
            return False
        for klass in t.__mro__:
            if klass is base:
                return honest_type(base)
            if _any(k.startswith("__") and k not in neutral for k in klass.__dict__):
                return False
        return False

    def honest_value(value):
        todo, budget = [value], 100_000
        while todo and budget > 0:  # very large values: the rest is not inspected (bounded cost)
            budget -= 1
            v = todo.pop()
            t = _type(v)
            if t in lazy:
                continue  # a builtin iterator nested in a value: its items are not inspected
            if not honest_type(t):
                return f"a value of type {t.__name__!r} defined by the solution (it could lie in comparisons)"
            mro = t.__mro__
            if _any(b in containers for b in mro):
                todo.extend(v)
            elif _any(b in mappings for b in mro):
                todo.extend(_keys(v))  # the base class's own views: an override cannot hide items
                todo.extend(_values(v))
        return None

    honest_value.is_lazy = lambda value: _type(value) in lazy
    return honest_value


def _checked(fn, honest_value):
    """`fn` as the tests see it: its return value must be honest (`_honesty_checker`); an
    iterator or generator is checked item by item as the tests consume it."""
    is_lazy, name = honest_value.is_lazy, fn.__name__

    def run(*args, **kwargs):
        value = fn(*args, **kwargs)
        if is_lazy(value):
            return _checked_items(value, honest_value)
        why = honest_value(value)
        if why is not None:
            raise TypeError(f"sandbox: {name} returned {why}")
        return value

    run.__name__, run.__qualname__, run.__doc__, run.__wrapped__ = fn.__name__, fn.__qualname__, fn.__doc__, fn
    return run


def _checked_items(iterator, honest_value):
    for item in iterator:
        why = honest_value(item)
        if why is not None:
            raise TypeError(f"sandbox: a yielded item is {why}")
        yield item


if __name__ == "__main__":
    _harness()
