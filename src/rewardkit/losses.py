"""Reward-model losses as pure functions on tensors, plus a registry by name.

Every function takes fp32 rewards (the caller casts: bf16 log-sigmoid loses small margins) and returns a
scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def bradley_terry(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise Bradley-Terry loss ``mean(-logsigmoid(r_c - r_r - margin))``.

    InstructGPT (Ouyang et al. 2022, arXiv 2203.02155, eq. 1); the margin term is Llama 2's (arXiv 2307.09288,
    eq. 2): a pair rated "much better" must be separated by at least ``margin``.

    Shapes: ``r_chosen``, ``r_rejected``, ``margin``: [B].
    """
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin
    return -F.logsigmoid(diff).mean()


def log_exp(r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | None = None) -> torch.Tensor:
    """Anthropic's preference-model loss ``mean(log(1 + exp(r_r - r_c)))`` (Bai et al. 2022, arXiv 2204.05862).

    Computed as ``softplus(r_r - r_c)``, which never overflows: a naive ``log(1 + exp(x))`` is ``inf`` for
    x > 88 in fp32. Mathematically equal to :func:`bradley_terry`.
    """
    diff = r_rejected - r_chosen
    if margin is not None:
        diff = diff + margin
    return F.softplus(diff).mean()


PairwiseLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

PAIRWISE_LOSSES: dict[str, PairwiseLoss] = {
    "bradley_terry": bradley_terry,
    "log_exp": log_exp,
}


def get_pairwise_loss(name: str) -> PairwiseLoss:
    try:
        return PAIRWISE_LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(PAIRWISE_LOSSES)}") from None
