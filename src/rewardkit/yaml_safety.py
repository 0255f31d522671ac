"""YAML bombs and huge values in config errors.

YAML's safe loader builds an alias (``*a``) as a reference to the anchored value, so a "billion laughs"
document loads quickly into a small graph, but anything that walks it as a tree (rendering a value into an
error message, dumping ``config.yaml``) expands it exponentially: one such file ran for 60 s at 2.8 GB.
:func:`check_expansion` counts the values the graph expands to (linear time: each shared node is counted
once, with its expanded size) and refuses a config beyond :data:`MAX_VALUES`, or one that refers to itself.
:func:`brief` quotes a value in an error message at bounded length.
"""

from __future__ import annotations

import reprlib

MAX_VALUES = 100_000
"""More values than any real config holds (a few hundred), far fewer than a bomb expands to."""

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = 8
_REPR.maxlevel = 3


def brief(value: object) -> str:
    """``repr(value)``, cut to about 80 characters and a few items and levels (bounded work on any value)."""
    return _REPR.repr(value)


class ExpansionError(ValueError):
    pass


def check_expansion(obj: object, limit: int = MAX_VALUES) -> int:
    """The number of values ``obj`` expands to; ExpansionError above ``limit`` or for a cycle."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (container, children still to visit)
    stack: list[tuple[object, list]] = []

    def children(x: object) -> list:
        if isinstance(x, dict):
            return [*x.keys(), *x.values()]
        return list(x) if isinstance(x, list) else []

    def size_of(x: object) -> int | None:
        if not isinstance(x, (dict, list)):
            return 1
        return sizes.get(id(x))

    if not isinstance(obj, (dict, list)):
        return 1
    stack.append((obj, children(obj)))
    on_path.add(id(obj))
    while stack:
        node, todo = stack[-1]
        while todo:
            child = todo[-1]
            if size_of(child) is not None:
                todo.pop()
                continue
            if id(child) in on_path:
                raise ExpansionError("an alias refers to a value that contains it (a recursive structure)")
            on_path.add(id(child))
            stack.append((child, children(child)))
            break
        else:
            stack.pop()
            on_path.discard(id(node))
            total = 1 + sum(size_of(c) for c in children(node))
            if total > limit:
                raise ExpansionError(f"its aliases (*name) expand to more than {limit} values")
            sizes[id(node)] = total
    return sizes[id(obj)]
