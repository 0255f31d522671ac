"""Reward-model losses as pure functions on tensors, plus a registry by name.

Every function takes fp32 rewards (the caller casts: bf16 log-sigmoid loses small margins) and returns a
scalar mean over the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

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


def ensemble_bradley_terry(r_chosen: torch.Tensor, r_rejected: torch.Tensor, weights: torch.Tensor,
                           margin: torch.Tensor | None = None) -> torch.Tensor:
    """Bradley-Terry per head with per-(pair, head) bootstrap weights, averaged over the K heads::

        loss = mean_k  (1/B) sum_b  w[b, k] * -logsigmoid(r_c[b, k] - r_r[b, k] - margin[b])

    Head k fits its own resample of the pairs (``w`` counts how often pair b is in it: Poisson(1) or
    2 x Bernoulli(0.5), mean 1; models/ensemble.py). Divided by B, not by sum(w): the resample's sum scaled by a
    constant, so a pair's gradient does not depend on which other pairs share its batch. With K = 1 and
    w = 1 it is :func:`bradley_terry`.

    Shapes: ``r_chosen``, ``r_rejected``, ``weights``: [B, K]; ``margin``: [B].
    """
    diff = r_chosen - r_rejected
    if margin is not None:
        diff = diff - margin[:, None]
    return (weights * -F.logsigmoid(diff)).mean(0).mean()


def token_level_pairwise(values_chosen: torch.Tensor, values_rejected: torch.Tensor,
                         ids_chosen: torch.Tensor, ids_rejected: torch.Tensor,
                         mask_chosen: torch.Tensor, mask_rejected: torch.Tensor,
                         response_start_chosen: torch.Tensor, response_start_rejected: torch.Tensor) -> torch.Tensor:
    """Token-level pairwise loss: Bradley-Terry on every token from the first one where the two sequences differ.

    The per-token form of DeepSpeed-Chat's reward-model loss (Yao et al. 2023, arXiv 2308.01320, step 2), itself
    the InstructGPT loss (arXiv 2203.02155) applied to each token's value::

        d_b      = first position p where chosen and rejected differ (positions count real tokens from 0)
        P_b      = { p : max(d_b, min(s_c, s_r)) <= p < max(n_c, n_r) }      s = response start, n = length
        loss     = mean_b  mean_{p in P_b}  -logsigmoid(v_c[p] - v_r[p])

    **Past the shorter sequence's end**, its value is held at its last real token (its score token): the
    shorter response is finished, and its final reward is what every later token of the longer one competes
    with. DeepSpeed-Chat reads the values the model produces on *padding* there instead, which makes the
    loss depend on padding side and width; holding the last value keeps it a function of the two sequences
    alone. The prompt (before the responses start) and padding are masked out. Pairs with no compared
    token (identical sequences) carry no preference and are left out of the batch mean; a batch of only
    those gives 0 (with a graph, so ``backward`` still works).

    Either padding side works: positions are realigned from the attention masks, fully vectorized.

    Shapes: ``values_*``, ``ids_*``, ``mask_*``: [B, L] (columns = padded layout, left or right);
    ``response_start_*``: [B] long, the first response token's position counted from the sequence start.
    """
    device = values_chosen.device
    width = max(values_chosen.shape[1], values_rejected.shape[1])
    pos = torch.arange(width, device=device)[None, :]  # [1, W]

    def align(values, ids, mask):
        mask = mask.bool()
        length = mask.sum(1)  # [B]
        first = mask.float().argmax(1)  # column of the first real token (0 for right padding)
        last = (first + length - 1).clamp(min=0)
        col = (first[:, None] + pos).clamp(max=last[:, None])  # past the end -> the last real column
        real = pos < length[:, None]
        aligned_ids = torch.where(real, ids.gather(1, col), torch.full_like(col, -1))
        return values.float().gather(1, col), aligned_ids, length

    v_c, i_c, n_c = align(values_chosen, ids_chosen, mask_chosen)
    v_r, i_r, n_r = align(values_rejected, ids_rejected, mask_rejected)
    differ = i_c != i_r  # past both ends both are -1: equal, and those positions are outside P_b anyway
    first_diff = torch.where(differ.any(1), differ.float().argmax(1), torch.full_like(n_c, width))
    start = torch.maximum(first_diff, torch.minimum(response_start_chosen, response_start_rejected).to(device))
    keep = (pos >= start[:, None]) & (pos < torch.maximum(n_c, n_r)[:, None])
    per_token = -F.logsigmoid(v_c - v_r) * keep
    count = keep.sum(1)
    has = count > 0
    if not has.any():
        return (v_c - v_r).sum() * 0.0
    per_pair = per_token.sum(1)[has] / count[has]
    return per_pair.mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Accept/reject classification loss ``-sum_i w_{y_i} log softmax(z_i)[y_i] / sum_i w_{y_i}``.

    The reward head as a classifier of acceptable responses (e.g. hallucination labels, HaluEval, arXiv
    2305.11747). ``class_weights`` [C] re-weight rare classes; the mean divides by the summed weights of the
    batch (PyTorch's weighted mean), so the loss scale does not change with the class mix.

    Shapes: ``logits`` [N, C] (C = 2: reject, accept), ``labels`` [N] long in [0, C).
    """
    weight = None if class_weights is None else class_weights.to(logits.device, torch.float32)
    return F.cross_entropy(logits.float(), labels.long(), weight=weight)


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Regression on scalar ratings ``mean((r - y)^2)`` (as in SteerLM / HelpSteer, arXiv 2311.09528).

    Shapes: [N] and [N]."""
    return (pred.float() - target.float()).pow(2).mean()


def rmse(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sqrt(mean((r - y)^2) + eps)``: the same minimiser as :func:`mse` in the rating's own unit; ``eps``
    keeps the gradient finite at a perfect fit (d sqrt(x)/dx is infinite at 0)."""
    return (mse(pred, target) + eps).sqrt()


def ranking(rewards: torch.Tensor, ranks: torch.Tensor, valid: torch.Tensor, ties: str = "skip") -> torch.Tensor:
    """InstructGPT's K-choose-2 ranking loss (Ouyang et al. 2022, arXiv 2203.02155, eq. 1).

    Every ordered pair (i, j) of one prompt's responses with ``rank_i < rank_j`` (lower rank = better)
    contributes ``-logsigmoid(r_i - r_j)``; pairs are averaged **within** each prompt first, so each prompt
    weighs once whatever its K (the paper's ``1 / C(K, 2)``), then prompts are averaged.

    Ties (equal ranks): ``"skip"`` (default) leaves them out: Bradley-Terry has no tie outcome, and a
    labeller's tie is mostly "cannot tell", which should not pull two scores together. ``"soft"`` is
    tie-aware with no extra parameter: a tie is a 50/50 label, ``-(logsigmoid(d) + logsigmoid(-d)) / 2``,
    minimised at ``d = 0``; use it when ties mean "equally good" (as in PandaLM's annotations). Prompts with
    no usable pair are left out of the mean.

    Shapes: ``rewards``, ``ranks``, ``valid``: [G, K] (G prompts padded to K responses; ``valid`` marks real
    ones).
    """
    if ties not in ("skip", "soft"):
        raise ValueError(f"ties must be 'skip' or 'soft', got {ties!r}")
    r = rewards.float()
    d = r[:, :, None] - r[:, None, :]  # [G, K, K]: r_i - r_j
    both = valid.bool()[:, :, None] & valid.bool()[:, None, :]
    better = (ranks[:, :, None] < ranks[:, None, :]) & both
    loss = -F.logsigmoid(d) * better
    pairs = better.sum((1, 2)).float()
    if ties == "soft":
        eye = torch.eye(r.shape[1], dtype=torch.bool, device=r.device)[None]
        tied = (ranks[:, :, None] == ranks[:, None, :]) & both & ~eye
        # each unordered tied pair appears twice (i,j) and (j,i): -logsigmoid(d)/2 on each is the 50/50 label
        loss = loss + (-F.logsigmoid(d) * 0.5) * tied
        pairs = pairs + tied.sum((1, 2)).float() / 2
    has = pairs > 0
    if not has.any():
        return r.sum() * 0.0
    return (loss.sum((1, 2))[has] / pairs[has]).mean()


def reward_centering(r_chosen: torch.Tensor, r_rejected: torch.Tensor, coef: float) -> torch.Tensor:
    """Auxiliary centering ``coef * mean((r_c + r_r)^2)`` (Eisenstein et al. 2023, arXiv 2312.09244): pairwise
    losses only see differences, so the reward's offset drifts; this pins the mean of each pair at zero."""
    return coef * (r_chosen.float() + r_rejected.float()).pow(2).mean()


def l2_scores(rewards: torch.Tensor, coef: float) -> torch.Tensor:
    """``coef * mean(r^2)``: keeps scores small (a penalty on the reward's scale rather than on the weights)."""
    return coef * rewards.float().pow(2).mean()


def multi_attribute_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(m * (p - y)^2) / sum(m)`` over rated attributes only (SteerLM/HelpSteer style, arXiv 2311.09528;
    ArmoRM's regression stage, arXiv 2406.12845). A missing rating is masked, not read as 0: a response
    nobody rated for "coherence" says nothing about it. Masked targets may hold NaN.

    Shapes: ``pred``, ``target``, ``mask``: [N, K].
    """
    m = mask.bool()
    diff = torch.where(m, pred.float() - torch.nan_to_num(target.float()), torch.zeros_like(pred, dtype=torch.float32))
    n = m.sum()
    if n == 0:
        return pred.float().sum() * 0.0
    return diff.pow(2).sum() / n


StepTarget = Literal["all", "last", "until_first_error"]


def step_selection(labels: torch.Tensor, target: StepTarget = "all") -> torch.Tensor:
    """[N, S] bool: the labelled steps a step loss trains on. ``labels`` [N, S] long: 1 right, 0 wrong, -1 not
    labelled (or padding past a solution's last step).

    ``all``: every labelled step; ``last``: the last labelled step of each solution (an outcome-style target at
    the step read-out); ``until_first_error``: the labelled steps up to and including the first wrong one (what
    follows an error is often mislabelled, e.g. Math-Shepherd marks it by rollouts from a broken state).
    """
    if target not in ("all", "last", "until_first_error"):
        raise ValueError(f"loss.step_target must be all, last or until_first_error, got {target!r}")
    labelled = labels >= 0
    if target == "all":
        return labelled
    cols = torch.arange(labels.shape[1], device=labels.device)[None, :]
    if target == "last":
        last = torch.where(labelled, cols, torch.full_like(labels, -1)).max(1).values  # -1: none labelled
        return labelled & (cols == last[:, None])
    wrong = labels == 0
    first = torch.where(wrong.any(1), wrong.float().argmax(1), torch.full_like(labels[:, 0], labels.shape[1]))
    return labelled & (cols <= first[:, None])


def _weighted_step_mean(per_step: torch.Tensor, labels: torch.Tensor, keep: torch.Tensor,
                        class_weights: torch.Tensor | None) -> torch.Tensor:
    y = labels.clamp(min=0)
    w = keep.float() if class_weights is None else class_weights.to(per_step.device, torch.float32)[y] * keep
    total = w.sum()
    if total == 0:
        return per_step.sum() * 0.0  # no labelled step in the batch: 0 with a graph, so backward still works
    return (per_step * w).sum() / total


def step_bce(logits: torch.Tensor, labels: torch.Tensor, target: StepTarget = "all",
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Process reward model loss: binary cross-entropy on every selected step's logit (Lightman et al. 2023,
    "Let's Verify Step by Step", arXiv 2305.20050; Math-Shepherd, arXiv 2312.08935)::

        l_{n,s} = -(y log sigmoid(z) + (1 - y) log(1 - sigmoid(z))) = softplus(z) - y z
        loss    = sum_{(n,s) in K} w_{y_{n,s}} l_{n,s} / sum_{(n,s) in K} w_{y_{n,s}}

    ``K`` is :func:`step_selection` (unlabelled steps are masked, never read as 0); ``class_weights`` [2]
    = [wrong, right] re-weights the usual imbalance (most steps are right), and the mean divides by the summed
    weights so the loss scale does not change with the class mix (as :func:`cross_entropy`).

    Shapes: ``logits`` [N, S] (one logit per step, read at each step's end token), ``labels`` [N, S] long.
    """
    z = logits.float()
    keep = step_selection(labels, target)
    per_step = F.softplus(z) - labels.clamp(min=0).float() * z
    return _weighted_step_mean(per_step, labels, keep, class_weights)


def step_ce(logits: torch.Tensor, labels: torch.Tensor, target: StepTarget = "all",
            class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`step_bce` with 2 classes per step (wrong, right): ``l = -log softmax(z)[y]`` (the two-class head
    of Qwen2.5-Math-PRM and vLLM's STEP pooler). Equal to :func:`step_bce` on ``z[..., 1] - z[..., 0]``.

    Shapes: ``logits`` [N, S, 2], ``labels`` [N, S] long.
    """
    keep = step_selection(labels, target)
    per_step = -logits.float().log_softmax(-1).gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    return _weighted_step_mean(per_step, labels, keep, class_weights)


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


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    **PAIRWISE_LOSSES,
    "token_level_pairwise": token_level_pairwise,
    "ensemble_bradley_terry": ensemble_bradley_terry,
    "cross_entropy": cross_entropy,
    "mse": mse,
    "rmse": rmse,
    "ranking": ranking,
    "multi_attribute_mse": multi_attribute_mse,
    "step_bce": step_bce,
    "step_ce": step_ce,
}
"""Every loss by its config name (`loss.name`); regularizers (`reward_centering`, `l2_scores`) are added on top."""


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known: {', '.join(LOSSES)}") from None
