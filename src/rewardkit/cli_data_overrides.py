"""Dotted ``--data.*`` overrides for the commands that read data (eval, score, data inspect, fit-weights).

The same syntax as ``rewardkit train`` (``--data.format ab --data.fields.prompt input --data.winner.a 1``), so
a file can be looked at, scored or evaluated in its own layout without converting it first.
"""

from __future__ import annotations

from .config import ConfigError, DataConfig, apply_overrides, from_dict


def data_config(overrides: list[str], base: dict | None = None) -> DataConfig:
    """A :class:`DataConfig` from ``base`` (the command's own options) with ``--data.*`` overrides applied on
    top; any other ``--x`` is an error naming it."""
    for item in overrides:
        key = item[2:].split("=", 1)[0] if item.startswith("--") else None
        if key is not None and not key.startswith("data."):
            raise ConfigError(f"unrecognized option {item.split('=', 1)[0]}; this command takes its own options "
                              "and data overrides such as --data.format ab or --data.fields.prompt input")
    tree = apply_overrides({"data": dict(base or {})}, overrides)
    return from_dict(DataConfig, tree["data"], prefix="data.")
