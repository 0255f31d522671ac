"""LM-head (generative) judge read-outs as pure tensor functions: no new parameters, the LM head is the head.

A judge context ends where the model would write its answer; the reward is the difference of two next-token
logits there (Zhang et al. 2024, arXiv 2408.15240; Mahan et al. 2024, arXiv 2410.12832):

* pointwise: ``r = logit(yes) - logit(no)``, the log-odds of "Yes" against "No" (the other tokens cancel);
* pairwise: ``m(A, B) = logit(A) - logit(B)`` with the first response shown as A. Judges prefer a position, so
  the margin is computed in both orders and ``(m(x, y) - m(y, x)) / 2`` is the preference of ``x`` over ``y``:
  antisymmetric by construction; ``(m(x, y) + m(y, x)) / 2`` is the position bias (> 0 favours A).

Only two rows of the output embedding matter, so the read-out multiplies the last hidden state by those rows
instead of computing logits over the whole vocabulary (49,152 for SmolLM2): the same numbers, a fraction of
the work. All of it runs in fp32, like the scalar heads: bf16 would round away small margins.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def answer_rows(output_embedding: torch.nn.Module, pos_id: int, neg_id: int) -> torch.Tensor:
    """The difference of the two answer tokens' rows of the LM head, ``[H]`` (fp32), and its bias difference
    folded in by :func:`token_margin`. Works with tied embeddings: it reads the weight, whatever owns it."""
    w = output_embedding.weight
    return (w[pos_id] - w[neg_id]).float()


def token_margin(hidden_last: torch.Tensor, output_embedding: torch.nn.Module, pos_id: int,
                 neg_id: int) -> torch.Tensor:
    """``logit(pos) - logit(neg)`` from the final hidden state at the answer position.

    ``hidden_last``: ``[B, H]`` (after the backbone's final norm, as the LM head sees it) -> ``[B]`` fp32.
    Equals ``(hidden_last @ W.T + b)[:, pos] - (...)[:, neg]`` of the full LM head.
    """
    margin = hidden_last.float() @ answer_rows(output_embedding, pos_id, neg_id)
    bias = getattr(output_embedding, "bias", None)
    if bias is not None:
        margin = margin + (bias[pos_id] - bias[neg_id]).float()
    return margin


def logit_margin(logits_last: torch.Tensor, pos_id: int, neg_id: int) -> torch.Tensor:
    """``logit(pos) - logit(neg)`` from full next-token logits ``[B, V]`` -> ``[B]`` fp32 (the reference)."""
    return logits_last[:, pos_id].float() - logits_last[:, neg_id].float()


@dataclass(frozen=True)
class PairwiseReadout:
    """The order-averaged pairwise judgement of ``x`` over ``y``; all ``[N]`` fp32."""

    margin: torch.Tensor
    """``(m(x, y) - m(y, x)) / 2``: > 0 prefers ``x``; swapping ``x`` and ``y`` negates it exactly."""
    position_bias: torch.Tensor
    """``(m(x, y) + m(y, x)) / 2``: what the judge gives position A whatever the content (> 0 favours A)."""


def order_averaged(margin_xy: torch.Tensor, margin_yx: torch.Tensor) -> PairwiseReadout:
    """Combine ``m(x, y)`` (``x`` shown as A) and ``m(y, x)`` (``y`` shown as A) into margin and bias."""
    margin_xy, margin_yx = margin_xy.float(), margin_yx.float()
    return PairwiseReadout(margin=(margin_xy - margin_yx) / 2, position_bias=(margin_xy + margin_yx) / 2)


def position_consistency(margin_xy: torch.Tensor, margin_yx: torch.Tensor) -> float:
    """Fraction of pairs whose judgement survives swapping the order: ``m(x, y)`` and ``m(y, x)`` disagree in
    sign (the same reply wins in both orders). 1.0 for a judge without position bias."""
    if margin_xy.numel() == 0:
        return float("nan")
    return float(((margin_xy > 0) != (margin_yx > 0)).float().mean())
