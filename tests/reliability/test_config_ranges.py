"""Every numeric config field has a range, checked at load time with the key named (walks all fields)."""

from __future__ import annotations

import pytest

from rewardkit.config import ConfigError, RunConfig, load_config
from rewardkit.config_ranges import RANGES, numeric_fields

BASE = {"model": {"name": "x", "lora": {}}, "data": {"train": "t.jsonl", "eval": "e.jsonl"},
        "train": {"early_stopping": {}}, "attribute_weights": {"train": "p.jsonl", "eval": "q.jsonl"}}
FIELDS = numeric_fields(RunConfig)


def _bad_value(key: str, entry: str) -> str:
    """A YAML value just outside the field's range (NaN where every finite value is allowed)."""
    r = RANGES[entry]
    if r.low is None:
        value = ".nan"
    elif r.low_open:
        value = str(r.low)
    else:
        value = str(r.low - 1)
    return f"[{value}]" if key.endswith(("attribute_weights", "class_weights")) else value


def test_every_numeric_field_has_a_range_and_the_base_config_loads():
    assert len(FIELDS) >= 30
    assert [e for _, e in FIELDS if e not in RANGES] == []
    assert set(RANGES) == {e for _, e in FIELDS}  # no entry for a field that no longer exists
    load_config(None, None, base=BASE)


@pytest.mark.parametrize(("key", "entry"), FIELDS, ids=[k for k, _ in FIELDS])
def test_out_of_range_value_is_refused_at_load_naming_the_key(key, entry):
    with pytest.raises(ConfigError) as info:
        load_config(None, [f"--{key}", _bad_value(key, entry)], base=BASE)
    assert str(info.value).startswith(key) and "must be" in str(info.value), str(info.value)


@pytest.mark.parametrize(("override", "message"), [
    ("--train.max_steps=0", "train.max_steps: must be >= 1, got 0 (null trains for train.epochs)"),
    ("--train.max_steps=-3", "train.max_steps: must be >= 1, got -3"),
    ("--train.batch_size=0", "train.batch_size: must be >= 1, got 0"),
    ("--train.batch_size=-4", "train.batch_size: must be >= 1, got -4"),
    ("--train.lr=-1e-5", "train.lr: must be > 0, got -1e-05"),
    ("--train.lr=.nan", "train.lr: must be a finite number, got nan"),
    ("--train.lr=.inf", "train.lr: must be a finite number, got inf"),
    ("--train.warmup_ratio=1.5", "train.warmup_ratio: must be >= 0 and <= 1, got 1.5"),
])
def test_issue_cases_are_refused_with_the_key_named(override, message, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {name: x}\ndata: {train: t.jsonl}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg, [override])
    assert str(info.value).startswith(f"{cfg}: {message}"), str(info.value)


def test_a_runconfig_built_in_python_is_checked_by_train(tmp_path):
    import rewardkit
    from rewardkit.config import DataConfig, ModelConfig, SplitConfig, TrainConfig

    cfg = RunConfig(model=ModelConfig(name="x"), data=DataConfig(train=SplitConfig(path="t.jsonl")),
                    train=TrainConfig(batch_size=0), output_dir=str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="train.batch_size: must be >= 1, got 0"):
        rewardkit.train(cfg)
    assert not (tmp_path / "run").exists()


def test_shipped_configs_are_in_range():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    paths = [p for p in root.rglob("*.yaml") if "accelerate" not in p.parts]
    assert paths
    for p in paths:
        load_config(p)
