"""Config fields and their docstrings as text, for ``--help``: the docstring under a dataclass field is the
field's documentation (as in torchtitan and TRL), read from the source so it is written once."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from functools import cache


@cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: the string literal right after its annotation in the class body} ("" where none)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for node, nxt in zip(body, body[1:] + [None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = (nxt.value.value if isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str) else "")
            docs[node.target.id] = " ".join(text.split())
    return docs


def _nested(tp) -> type | None:
    """The config dataclass inside ``tp`` (``X``, ``X | None``), or None for a plain value."""
    for arg in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def config_fields(cls: type, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, doc) for every leaf field of the config dataclass ``cls``, nested sections
    flattened (``train.lr``), in declaration order."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rows = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        inner = _nested(hints[f.name])
        if inner is not None:
            rows += config_fields(inner, key + ".")
            continue
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        rows.append((key, default, docs.get(f.name, "")))
    return rows


def config_help(cls: type, width: int = 100) -> str:
    """The fields of ``cls`` as an argparse epilog: one key per entry, default and doc indented below it."""
    lines = []
    for key, default, doc in config_fields(cls):
        lines.append(f"  {key} (default {default})")
        if doc:
            lines += textwrap.wrap(doc, width, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)
