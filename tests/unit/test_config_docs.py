"""`rewardkit train --help` lists every config field with its default and docstring (rewardkit/config_docs.py);
the other commands' options are dataclass fields, their docstrings the help (rewardkit/cli_options.py)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Literal

import pytest

from rewardkit.cli import main
from rewardkit.cli_options import EvalOptions, add_options, option, positional
from rewardkit.config_docs import config_fields, field_docs


@dataclass
class _Inner:
    depth: int = 3
    """How   deep,
    in layers."""


@dataclass
class _Outer:
    name: str
    """What it is called."""
    inner: _Inner | None = None
    tags: list[str] = field(default_factory=list)


def test_field_docstrings_are_read_from_the_class_body_and_nested_sections_are_flattened():
    assert field_docs(_Inner) == {"depth": "How deep, in layers."}
    assert config_fields(_Outer) == [("name", "required", "What it is called."),
                                     ("inner.depth", "3", "How deep, in layers."), ("tags", "[]", "")]


def test_train_help_lists_config_fields_with_defaults_and_docs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "model.name (default required)" in out and "A built-in name" in out
    assert "train.lr (default 2e-05)" in out and "loss.name (default 'bradley_terry')" in out
    assert "model.lora.r (default 8)" in out


@dataclass(kw_only=True)
class _Throwaway:
    path: str = positional()
    """Where it is."""
    level: Literal["low", "high"] = "low"
    """How high."""
    count: int | None = option(None, metavar="N")
    """How many."""
    colour: bool = True
    """Paint it."""


def test_command_options_come_from_dataclass_fields_with_their_docstrings_as_help(capsys):
    p = add_options(argparse.ArgumentParser(), _Throwaway)
    a = p.parse_args(["x", "--level", "high", "--count", "3", "--no-colour"])
    assert (a.path, a.level, a.count, a.colour) == ("x", "high", 3, False)
    assert (p.parse_args(["y"]).count, p.parse_args(["y"]).colour) == (None, True)
    with pytest.raises(SystemExit):
        p.parse_args(["x", "--level", "middle"])  # Literal -> choices
    help_text = " ".join(p.format_help().split())
    assert "How high." in help_text and "--count N How many." in help_text and "--no-colour Paint it." in help_text

    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse re-wraps (also at hyphens): compare without spaces
    for name, doc in field_docs(EvalOptions).items():
        assert "".join(doc.split()) in out, name  # every field is an option of `rewardkit eval`, its docstring the help
