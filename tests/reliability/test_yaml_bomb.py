"""A YAML bomb or a huge value in a config is refused quickly, with an error message of bounded length."""

from __future__ import annotations

import time

import pytest

from rewardkit.config import ConfigError, load_config
from rewardkit.yaml_safety import brief, check_expansion


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines)


def test_billion_laughs_in_a_string_field_is_refused_fast_with_a_short_message(tmp_path):
    cfg = tmp_path / "bomb.yaml"
    # the anchors live under an unknown top-level key's sibling: the bomb is the value of model.name
    cfg.write_text("x: &x\n" + "\n".join("  " + line for line in _bomb().splitlines()) +
                   "\nmodel: {name: *x}\ndata: {train: t.jsonl}\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert time.perf_counter() - t0 < 5  # it ran for 60 s at 2.8 GB before
    assert "expand to more than 100000 values" in str(info.value) and len(str(info.value)) < 300


def test_bomb_in_a_command_line_override_is_refused():
    with pytest.raises(ConfigError, match=r"override --model\.name: its aliases"):
        load_config(None, ["--model.name", "{" + _bomb().replace("\n", ", ") + "}", "--data.train", "t.jsonl"])


def test_a_recursive_alias_is_refused(tmp_path):
    cfg = tmp_path / "loop.yaml"
    cfg.write_text("model: &m {name: x, lora: *m}\ndata: {train: t.jsonl}\n")
    with pytest.raises(ConfigError, match="refers to a value that contains it"):
        load_config(cfg)


def test_error_messages_quote_a_huge_value_briefly(tmp_path):
    cfg = tmp_path / "big.yaml"
    cfg.write_text("model: {name: x}\ndata: {train: t.jsonl}\ntrain: {scheduler: '" + "z" * 1_000_000 + "'}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert "train.scheduler" in str(info.value) and len(str(info.value)) < 400
    deep = [[[[[[list(range(1000))]]]]]]
    with pytest.raises(ConfigError) as info:
        load_config(None, None, base={"model": {"name": deep}, "data": {"train": "t.jsonl"}})
    assert len(str(info.value)) < 300


def test_ordinary_aliases_still_load(tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("model: {name: x}\ndata: {train: &t t.jsonl, eval: *t}\ntrain: {lr: 3.0e-5}\n")
    loaded = load_config(cfg)
    assert loaded.data.eval.path == loaded.data.train.path == "t.jsonl"
    shared = [1, 2]
    assert check_expansion({"a": shared, "b": shared}) == 9  # the dict, its 2 keys, each list (3) counted twice
    assert len(brief("x" * 500)) <= 80
