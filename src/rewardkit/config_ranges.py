"""The allowed range of every numeric config field, checked when a config is loaded.

A value out of range (``train.batch_size: 0``, ``train.max_steps: -3``, a NaN ``train.lr``) is a
:class:`~rewardkit.config.ConfigError` naming the key, before any model or data is loaded: torch would only
refuse some of them much later without naming the key, and others (``max_steps: 0`` trained a full epoch)
would run and do something else than asked. Every int and float field of every config section must have an
entry in :data:`RANGES` (a test walks them all), so a new field cannot be added without its range.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, get_args, get_origin


@dataclass(frozen=True)
class Range:
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    """``low`` itself is refused (> low instead of >= low)."""
    high_open: bool = False
    hint: str = ""

    def check(self, x: int | float) -> str | None:
        """None when ``x`` is allowed, else what it must be."""
        if isinstance(x, float) and not math.isfinite(x):
            return "must be a finite number"
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return self.describe()
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            return self.describe()
        return None

    def describe(self) -> str:
        lo = f"{'>' if self.low_open else '>='} {self.low:g}" if self.low is not None else ""
        hi = f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else ""
        return "must be " + (" and ".join(p for p in (lo, hi) if p) or "finite")


POSITIVE = Range(0, low_open=True)
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
ANY = Range()
FRACTION = Range(0, 1)

RANGES: dict[str, Range] = {
    "SplitConfig.start": AT_LEAST_0,
    "SplitConfig.stop": Range(1, hint="null reads to the end of the file"),
    "SplitConfig.weight": Range(0, low_open=True, hint="a mixture source's sampling weight"),
    "SplitConfig.count": Range(1, hint="a mixture source's number of examples"),
    "RatingsConfig.min_gap": AT_LEAST_0,
    "DataConfig.num_proc": Range(1, 256, hint="null uses the cores"),
    "DataConfig.cache_max_gb": Range(0, low_open=True, hint="null: no limit"),
    "DataConfig.max_length": Range(2, hint="a sequence needs at least one text token and the score token"),
    "LoraConfig.r": AT_LEAST_1,
    "LoraConfig.alpha": POSITIVE,
    "LoraConfig.dropout": Range(0, 1, high_open=True),
    "ModelConfig.attribute_weights": ANY,
    "ModelConfig.init_seed": AT_LEAST_0,
    "ModelConfig.ensemble_size": AT_LEAST_1,
    "ModelConfig.ensemble_beta": AT_LEAST_0,
    "LossConfig.margin": ANY,
    "LossConfig.centering": AT_LEAST_0,
    "LossConfig.l2": AT_LEAST_0,
    "LossConfig.class_weights": AT_LEAST_0,
    "EarlyStoppingConfig.patience": AT_LEAST_1,
    "EarlyStoppingConfig.min_delta": AT_LEAST_0,
    "TrainConfig.lr": POSITIVE,
    "TrainConfig.batch_size": AT_LEAST_1,
    "TrainConfig.grad_accum": AT_LEAST_1,
    "TrainConfig.epochs": POSITIVE,
    "TrainConfig.max_steps": Range(1, hint="null trains for train.epochs"),
    "TrainConfig.warmup_ratio": FRACTION,
    "TrainConfig.weight_decay": AT_LEAST_0,
    "TrainConfig.max_grad_norm": Range(0, hint="0 or null: no clipping"),
    "TrainConfig.pack_row_tokens": AT_LEAST_1,
    "TrainConfig.max_tokens_per_batch": AT_LEAST_1,
    "TrainConfig.max_tokens_per_forward": AT_LEAST_1,
    "TrainConfig.seed": AT_LEAST_0,
    "TrainConfig.eval_every": Range(1, hint="null evaluates only at the end"),
    "TrainConfig.eval_batch_size": AT_LEAST_1,
    "TrainConfig.save_every": Range(1, hint="null writes no checkpoints"),
    "TrainConfig.keep_last": AT_LEAST_1,
    "TrainConfig.log_every": AT_LEAST_1,
    "AttributeWeightsConfig.steps": AT_LEAST_1,
    "AttributeWeightsConfig.lr": POSITIVE,
}


def _is_numeric(tp: Any) -> bool:
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType or origin is list:
        return any(_is_numeric(a) for a in get_args(tp))
    return tp in (int, float)


def numeric_fields(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, RANGES entry) for every int/float field under ``cls``, sub-sections included."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        sub = [a for a in (get_args(tp) or (tp,)) if dataclasses.is_dataclass(a)]
        if sub:
            out += numeric_fields(sub[0], f"{prefix}{f.name}.")
        elif _is_numeric(tp):
            out.append((prefix + f.name, f"{cls.__name__}.{f.name}"))
    return out


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Raise ConfigError naming the first numeric field of ``cfg`` (a config dataclass) outside its range."""
    from .config import ConfigError

    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(value):
            check_ranges(value, key + ".")
            continue
        spec = RANGES.get(f"{type(cfg).__name__}.{f.name}")
        if spec is None or value is None:
            continue
        for i, x in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(x, bool) or not isinstance(x, (int, float)):
                continue
            problem = spec.check(x)
            if problem:
                where = f"{key}[{i}]" if isinstance(value, list) else key
                hint = f" ({spec.hint})" if spec.hint else ""
                raise ConfigError(f"{where}: {problem}, got {x!r}{hint}")
