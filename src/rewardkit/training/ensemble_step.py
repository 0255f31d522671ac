"""The ensemble head's training step: Bradley-Terry per head on its own bootstrap resample of the pairs.

``PairTask`` (training/tasks.py) collates :func:`ensemble_weights` with each batch and runs the loss. The
weights come from each pair's source position (``EncodedPair.where``) and the head's seed, so they do not
depend on batching, epoch or process (models/ensemble.py, :func:`~rewardkit.models.ensemble.bootstrap_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..config import RunConfig
from ..losses import ensemble_bradley_terry
from ..models.ensemble import bootstrap_weights
from ..models.heads import RewardOutput


def is_ensemble(cfg: RunConfig, pairwise: bool) -> bool:
    """Whether this run trains an ensemble; an ensemble with a non-pairwise loss is a config error."""
    if cfg.model.head != "ensemble":
        return False
    if not pairwise:
        raise ValueError(f"model.head ensemble trains on preference pairs with loss.name bradley_terry or log_exp "
                         f"(each head's Bradley-Terry on its resample), not {cfg.loss.name}")
    return True


def bootstrap_seed(cfg: RunConfig) -> int:
    return cfg.model.init_seed if cfg.model.init_seed is not None else cfg.train.seed


def ensemble_weights(keys: Sequence[str], k: int, cfg: RunConfig) -> torch.Tensor:
    """[B, K] bootstrap weights of the pairs with source positions ``keys`` for the K heads."""
    return bootstrap_weights(keys, k, bootstrap_seed(cfg), cfg.model.ensemble_bootstrap)


def ensemble_pair_loss(out: RewardOutput, keys: Sequence[str], b: int, margin: torch.Tensor | None,
                       cfg: RunConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(the K heads' rewards [2B, K] fp32, the loss): rows [0, B) chosen, [B, 2B) rejected, as in ``PairBatch``."""
    z = out.logits.float()
    w = ensemble_weights(keys, z.shape[1], cfg).to(z.device)
    return z, ensemble_bradley_terry(z[:b], z[b:], w, margin)
