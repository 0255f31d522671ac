"""Checks on parsed JSON before it becomes a record: text that is not valid Unicode, and repeated keys.

* A JSON ``"\\ud800"`` escape without its pair decodes to a lone surrogate: a Python ``str`` that no tokenizer
  accepts (a raw ``TypeError`` deep in a run) and that cannot be written back as UTF-8.
  :func:`lone_surrogate` finds the first one and where it is, so the reader can name the field.
* ``{"chosen": "a", "chosen": "b"}`` is valid JSON whose last value silently wins; :func:`unique_keys` (an
  ``object_pairs_hook``) refuses it naming the key.
"""

from __future__ import annotations

import re

from .errors import DataError

_SURROGATE = re.compile("[\ud800-\udfff]")


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(f"duplicated key {key!r}")
        self.key = key


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads(..., object_pairs_hook=unique_keys)``: a dict, or DuplicateKey for a repeated key."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise DuplicateKey(k)
            seen.add(k)
    return out


def duplicate_key_error(err: DuplicateKey, source: str, line: int | None) -> DataError:
    return DataError(source, line, err.key, "the key appears more than once in one object; JSON readers keep only "
                     "the last value, so remove the repeated key", "duplicate_key")


def lone_surrogate(obj: object) -> tuple[str, int, str] | None:
    """(field path such as ``chosen[1].content``, character index, the surrogate) of the first lone surrogate
    in a parsed JSON value, else None. Iterative: nesting depth cannot recurse too deep."""
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        path, x = stack.pop()
        if isinstance(x, str):
            m = _SURROGATE.search(x)
            if m:
                return path, m.start(), m.group()
        elif isinstance(x, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(x.items())))
            stack.extend((f"{path}.<key>" if path else "<key>", k) for k in x)
        elif isinstance(x, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(x))))
    return None


def surrogate_error(obj: object, source: str, line: int | None) -> DataError | None:
    """A DataError naming the field that holds a lone surrogate, or None when the text is valid Unicode."""
    found = lone_surrogate(obj)
    if found is None:
        return None
    path, index, char = found
    return DataError(source, line, path or None, f"text holds a lone surrogate (\\u{ord(char):04x} at character "
                     f"{index}), which is not valid Unicode; it comes from a \\u escape without its pair: fix the "
                     "text at its source", "invalid_text")
