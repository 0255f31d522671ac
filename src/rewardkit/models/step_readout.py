"""The step read-out of a process reward model: per-token head outputs -> one score per step -> one reward.

The head is the transformers class's own linear layer applied to every token (as ``per_token``), with 1 output
(a logit, trained with ``step_bce``) or 2 (wrong, right; ``step_ce``). A step's score is read at its end token
(:class:`rewardkit.data.step_tokenize.EncodedSteps.step_ends`) and is a probability that the step is right:
``sigmoid(z)`` or ``softmax(z)[1]``. The solution's reward aggregates its step scores (``model.step_aggregate``,
saved with the model):

========  ==================================================================================================
``min``   the weakest step (default: one wrong step spoils a solution; ProcessBench, Qwen2.5-Math-PRM)
``prod``  the probability that every step is right, if steps were independent (Lightman et al. 2023)
``last``  the last step's score (an outcome-style reward read at the step read-out)
``mean``  the average step score
========  ==================================================================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

StepAggregate = Literal["min", "prod", "last", "mean"]
AGGREGATES: tuple[str, ...] = ("min", "prod", "last", "mean")


def step_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Step logits [..., 1] (a BCE logit) or [..., 2] (wrong, right) -> P(step is right) [...], fp32."""
    z = logits.float()
    if z.shape[-1] == 1:
        return torch.sigmoid(z[..., 0])
    if z.shape[-1] == 2:
        return z.softmax(-1)[..., 1]
    raise ValueError(f"a step head has 1 or 2 outputs, got {z.shape[-1]}")


def gather_steps(token_logits: torch.Tensor, step_index: torch.Tensor) -> torch.Tensor:
    """Per-token outputs [N, L, C] at the step ends ``step_index`` [N, S] (-1 = no step: padding) -> [N, S, C]
    (padding slots hold row 0's first token: mask them with ``step_index >= 0``)."""
    idx = step_index.clamp(min=0)
    return token_logits.gather(1, idx[:, :, None].expand(-1, -1, token_logits.shape[-1]))


def aggregate(scores: Sequence[float] | torch.Tensor, how: StepAggregate = "min") -> float:
    """One solution's reward from its step scores (probabilities in [0, 1])."""
    s = torch.as_tensor(scores, dtype=torch.float64)
    if s.numel() == 0:
        raise ValueError("a solution with no step has no step reward")
    if how == "min":
        return float(s.min())
    if how == "prod":
        return float(s.prod())
    if how == "last":
        return float(s[-1])
    if how == "mean":
        return float(s.mean())
    raise ValueError(f"model.step_aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")
