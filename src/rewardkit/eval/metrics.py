"""Pairwise metrics. A tie (equal rewards) is counted apart: it is not a win."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..losses import bradley_terry


def pairwise_metrics(r_chosen: Sequence[float], r_rejected: Sequence[float]) -> dict:
    """accuracy = wins / pairs; ``ties`` are pairs scored exactly equal; loss is the Bradley-Terry loss."""
    n = len(r_chosen)
    if n == 0:
        return {"pairs": 0}
    c = torch.tensor(list(r_chosen), dtype=torch.float64)
    r = torch.tensor(list(r_rejected), dtype=torch.float64)
    diff = c - r
    wins = int((diff > 0).sum())
    ties = int((diff == 0).sum())
    return {
        "pairs": n,
        "accuracy": wins / n,
        "ties": ties,
        "loss": float(bradley_terry(c, r)),
        "mean_margin": float(diff.mean()),
        "mean_reward": float(torch.cat([c, r]).mean()),
        "std_reward": float(torch.cat([c, r]).std()) if 2 * n > 1 else 0.0,
    }


def longer_wins_baseline(chosen_len: Sequence[int], rejected_len: Sequence[int]) -> dict:
    """The "longer response wins" baseline: accuracy of predicting that the longer response is chosen.
    Equal lengths are ties (not wins)."""
    n = len(chosen_len)
    wins = sum(1 for c, r in zip(chosen_len, rejected_len, strict=True) if c > r)
    ties = sum(1 for c, r in zip(chosen_len, rejected_len, strict=True) if c == r)
    return {"pairs": n, "accuracy": wins / n if n else math.nan, "ties": ties}
