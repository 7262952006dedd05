"""Honest values: the harness's check that what a solution's callable returns to the tests
cannot lie in comparisons (the AlwaysEqual hack), and the wrapper that applies it.

Part of the harness program (standard library only): not imported inside the container but
joined, as text, in front of `harness.py` by `sandbox.container` (`HARNESS_PARTS`) and run
with it as one `python3 -s -P -c <text>`. Both functions are called before any solution code
runs and capture every reference they use then.
"""


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


def _wrapper(honest_value, _callable, _type, _issubclass, _TypeError):
    """wrap(value, name, is_entry_point): what the tests get for one of the solution's names.
    Every callable but a class (a class too when it is the entry point) is wrapped so that
    what it returns must be honest (`_honesty_checker`); an iterator or generator is checked
    item by item as the tests consume it. Built before any solution code; reads no global
    name (a solution cannot rebind what it calls through `sys.modules["__main__"]`)."""
    is_lazy = honest_value.is_lazy

    def checked_items(iterator, name):
        for item in iterator:
            why = honest_value(item)
            if why is not None:
                raise _TypeError(f"sandbox: {name} yielded an item that is {why}")
            yield item

    def wrap(value, name, is_entry_point):
        if not _callable(value) or (_issubclass(_type(value), _type) and not is_entry_point):
            return value  # data, modules, and classes the tests build values with

        def run(*args, **kwargs):
            result = value(*args, **kwargs)
            if is_lazy(result):
                return checked_items(result, name)
            why = honest_value(result)
            if why is not None:
                raise _TypeError(f"sandbox: {name} returned {why}")
            return result

        run.__name__, run.__qualname__, run.__wrapped__ = name, name, value
        return run

    return wrap
