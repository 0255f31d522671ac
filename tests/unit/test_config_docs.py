"""`rewardkit train --help` lists every config field with its default and docstring (rewardkit/config_docs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from rewardkit.cli import main
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
