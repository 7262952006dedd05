"""The harness's run and every function it can call after the solution ran read no global
name: a solution can reach the harness's module (`sys.modules["__main__"]`) and rebind its
globals or patch `builtins`, so what runs after it must hold every reference in a closure.
Oracle: the bytecode itself (no LOAD_GLOBAL / LOAD_NAME anywhere in the code objects reachable
from the run's closure). The behaviour is checked on the real sandbox in
tests/test_sandbox_redteam.py (`rebinds_the_harness_globals`, ...)."""
import builtins
import dis
import os
import stat
import sys
import types

from sandbox import harness, harness_values

GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL", "STORE_NAME", "DELETE_NAME"}


def _global_reads(fn, seen=None):
    """(function qualname, opcode, name) for every global access in fn, the code nested in
    it, and every function reachable through its closure cells."""
    seen = set() if seen is None else seen
    if id(fn) in seen:
        return []
    seen.add(id(fn))
    found, codes = [], [fn.__code__]
    while codes:
        code = codes.pop()
        found += [(code.co_qualname, i.opname, i.argval) for i in dis.get_instructions(code) if i.opname in GLOBAL_OPS]
        codes += [k for k in code.co_consts if isinstance(k, types.CodeType)]
    for cell in fn.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, types.FunctionType):
            found += _global_reads(value, seen)
    return found


def _captured():
    c = harness._captured(builtins, os, stat, sys)
    c["honest_value"] = harness_values._honesty_checker(type, frozenset, tuple)
    c["wrap"] = harness_values._wrapper(c["honest_value"], callable, type, issubclass, TypeError)
    c["report"] = harness._reporter(98, 99, c)
    return c


def test_the_run_and_all_it_calls_read_no_global_name():
    c = _captured()
    run = harness._runner(compile("", "<solution>", "exec"), compile("", "<tests>", "exec"), "f", 98, 99, c)
    reads = _global_reads(run)
    assert reads == []
    # the walk reaches what the run calls: the report, the wrapper and the honesty checker
    names = {fn.__code__.co_qualname for fn in _reachable(run)}
    assert {"_runner.<locals>.run", "_reporter.<locals>.report", "_wrapper.<locals>.wrap",
            "_honesty_checker.<locals>.honest_value", "_honesty_checker.<locals>.honest_type"} <= names


def test_the_audit_hook_and_the_signal_wrapper_read_no_global_name():
    assert _global_reads(harness._audit_hook(_captured())) == []
    assert _global_reads(harness._frameless_signal(lambda *a: None, callable)) == []


def test_what_the_wrapper_returns_reads_no_global_name():
    wrap = _captured()["wrap"]
    def gen():
        yield 1

    wrapped = wrap(gen, "gen", False)
    assert wrapped is not gen and _global_reads(wrapped) == []
    assert list(wrapped()) == [1]


def test_the_walk_finds_a_global_read():
    """The check above can fail: a closure that reads a global is reported."""
    def outer():
        def inner():
            return len([])  # `len`: a global (builtin) read
        return inner
    assert _global_reads(outer()) == [("test_the_walk_finds_a_global_read.<locals>.outer.<locals>.inner",
                                       "LOAD_GLOBAL", "len")]


def _reachable(fn, seen=None):
    seen = {} if seen is None else seen
    if id(fn) not in seen:
        seen[id(fn)] = fn
        for cell in fn.__closure__ or ():
            if isinstance(cell.cell_contents, types.FunctionType):
                _reachable(cell.cell_contents, seen)
    return list(seen.values())


def test_the_audit_hooks_realpath_agrees_with_os_path_realpath(tmp_path):
    """The C-calls-only resolver against os.path.realpath (the oracle) on symlink chains,
    relative links, `..` and missing parts."""
    realpath = harness._resolver(_captured())
    (tmp_path / "d").mkdir()
    os.symlink("/proc/self/mem", tmp_path / "m")
    os.symlink("m", tmp_path / "rel")
    os.symlink("../rel", tmp_path / "d" / "up")
    os.symlink(tmp_path / "d", tmp_path / "dl")
    for p in ["/proc/self/mem", f"{tmp_path}/m", f"{tmp_path}/rel", f"{tmp_path}/d/up", f"{tmp_path}/dl/up",
              f"{tmp_path}/dl/../m", f"{tmp_path}/nope/x", "/", "/usr/lib/python3", f"{tmp_path}/./d/"]:
        assert realpath(p) == os.path.realpath(p), p
    assert realpath(f"{tmp_path}/d/up").rsplit("/", 1)[-1] == "mem"


def test_the_harness_program_is_both_parts_without_docstrings():
    from sandbox.container import HARNESS_IMPORTS, HARNESS_SOURCE

    assert HARNESS_SOURCE.index("def _honesty_checker") < HARNESS_SOURCE.index("def _harness")
    assert HARNESS_SOURCE.rstrip().endswith("_harness()") and '"""The test harness' not in HARNESS_SOURCE
    compile(HARNESS_SOURCE, "<harness>", "exec")
    assert {"os", "sys", "stat", "collections", "fractions"} <= set(HARNESS_IMPORTS)
