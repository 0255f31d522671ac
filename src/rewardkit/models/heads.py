"""Read-outs: which hidden states feed the head (pooling), how many outputs it has, and how they become one reward.

======================  ==========  ==============  ====================================  =====================
head                    outputs     pooling         reward                                plain transformers
======================  ==========  ==============  ====================================  =====================
``scalar``              1           last / cls      the output                            same numbers
``classifier``          2           last / cls      z_accept - z_reject, or softmax(z)[1]  same logits
``per_token``           1 per token last            the last real token's value           same score
``multi``               K           last / cls      mean, fixed or learned weighted sum   same K outputs
``step``                1 or 2 per  last (each      per step P(right); the solution's     ``*ForToken-
                        token       step's end)     reward: min / prod / last / mean      Classification``
``ensemble``            K           last / cls      mean, min or mean - beta * std        same K outputs
any head                ...         mean (decoder:  as above                              cannot express it
                                    response only;
                                    encoder: all)
======================  ==========  ==============  ====================================  =====================

The linear layer is always the transformers class's own (``score`` for decoders, ``classifier`` for encoders)
with ``num_labels`` = 1, 2 or K, so the weights live in ``model.safetensors`` and, for last/cls pooling, the
directory loads in ``AutoModelForSequenceClassification`` with the same logits. What plain transformers
cannot express travels in ``rewardkit.json`` (pooling, reward_from, weighting) and, for learned attribute
weights, in a side file ``rewardkit_head.safetensors`` that :func:`load_reward_model` restores:

* ``mean`` pooling: the head reads the masked mean of the last hidden states (for encoders the raw mean, not
  BERT's pooler), where transformers reads the last non-pad token or [CLS]. Which tokens are averaged is
  ``mean_span``: decoders average the **response** only, from its first token through the score token
  (inclusive: the score token ends the response and is the one position that has read all of it; an empty
  response is then its score token alone). The prompt is left out because a causal decoder has no segment
  embedding to tell it apart, and a long prompt shared by every response to it would dominate the mean and make
  those responses look alike. Encoders average **all** real tokens: they read prompt and response jointly,
  both ways. Decoder models saved before ``mean_span`` was recorded averaged all real tokens and load as such
  (``rewardkit.json`` without ``mean_span`` -> ``all``), so their scores do not change;
* ``per_token``: the same linear applied to every token; transformers returns only the last one's value;
* ``weighting: learned``: K trainable logits, reward = sum softmax(w)_k z_k.
* ``step`` (process reward models, :mod:`rewardkit.models.step_readout`): the same linear on every token, read
  at the end token of every step; the per-row reward here is the last step's score, the solution's reward is
  the ``step_aggregate`` of its step scores (which needs the step ends: ``Scorer.score_steps``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from .fp32 import fp32_readout
from .head_kinds import HeadKind, head_kind

HEAD_FILE = "rewardkit_head.safetensors"


@dataclass(kw_only=True)
class HeadSpec:
    """The read-out of a reward model; built from ``ModelConfig`` for training and from ``rewardkit.json``
    when loading."""

    head: str = "scalar"
    pooling: str = "last"
    reward_from: str = "logit_diff"
    attributes: list[str] | None = None
    weighting: str = "mean"
    attribute_weights: list[float] | None = None
    step_outputs: int = 1
    """``step`` head: 1 logit per step (``step_bce``) or 2 classes, wrong and right (``step_ce``)."""
    step_aggregate: str = "min"
    """``step`` head: how step scores make the solution's reward (min, prod, last, mean)."""
    mean_span: str | None = None
    """``mean`` pooling only: average the ``response`` tokens (first response token through the score token) or
    ``all`` real tokens; None resolves by kind (:meth:`resolve`): ``response`` for decoders, ``all`` for
    encoders. Not used by the other poolings (resolved to None)."""
    ensemble_size: int | None = None
    """``ensemble`` head only (None for the others): K heads, their aggregate and its beta (models/ensemble.py)."""
    ensemble_aggregate: str | None = None
    ensemble_beta: float | None = None
    ensemble_members: str | None = None
    """``ensemble``: ``heads`` (K heads on one backbone) or ``lora`` (K LoRA adapters, models/ensemble_lora.py);
    None for other heads and for ensembles saved before it was recorded (those are ``heads``)."""

    @property
    def num_labels(self) -> int:
        return head_kind(self.head).num_labels(self)

    @property
    def head_kind(self) -> HeadKind:
        """This head's entry in the registry (:mod:`rewardkit.models.head_kinds`)."""
        return head_kind(self.head)

    def validate(self, kind: str) -> None:
        """Fail early, naming the setting, on read-outs that do not make sense."""
        head_kind(self.head).validate(self, kind)
        if self.pooling == "cls" and kind != "encoder":
            raise ValueError("model.pooling cls is for encoders; decoders read the last real token (last) or mean")
        if self.pooling == "last" and kind == "encoder":
            raise ValueError("model.pooling last is for decoders; encoders read [CLS] (cls) or mean")
        if self.mean_span not in (None, "response", "all"):
            raise ValueError(f"model.mean_span must be response or all, got {self.mean_span!r}")
        if self.pooling == "mean" and kind == "encoder" and self.mean_span == "response":
            raise ValueError("model.mean_span response is for decoders; encoders read prompt and response jointly "
                             "and average all real tokens (all)")
        if self.reward_from not in ("logit_diff", "probability"):
            raise ValueError(f"model.reward_from must be logit_diff or probability, got {self.reward_from!r}")

    def resolve(self, kind: str) -> HeadSpec:
        """A copy with ``mean_span`` decided: by kind when unset for ``mean`` pooling, None for other poolings."""
        span = None
        if self.pooling == "mean":
            span = self.mean_span or ("all" if kind == "encoder" else "response")
        return dataclasses.replace(self, mean_span=span)

    def to_meta(self) -> dict:
        return {"head": self.head, "pooling": self.pooling, "reward_from": self.reward_from,
                "attributes": self.attributes, "weighting": self.weighting,
                "attribute_weights": self.attribute_weights, "mean_span": self.mean_span,
                "step_outputs": self.step_outputs, "step_aggregate": self.step_aggregate,
                "ensemble_size": self.ensemble_size, "ensemble_aggregate": self.ensemble_aggregate,
                "ensemble_beta": self.ensemble_beta, "ensemble_members": self.ensemble_members}


def spec_from_config(cfg, kind: str) -> HeadSpec:
    """``ModelConfig`` -> :class:`HeadSpec` (resolving ``pooling: auto`` to last / cls and ``mean_span: auto`` by
    kind)."""
    pooling = cfg.pooling if cfg.pooling != "auto" else ("cls" if kind == "encoder" else "last")
    span = getattr(cfg, "mean_span", "auto")
    spec = HeadSpec(head=cfg.head, pooling=pooling, reward_from=cfg.reward_from, attributes=cfg.attributes,
                    weighting=cfg.weighting, attribute_weights=cfg.attribute_weights,
                    mean_span=None if span == "auto" else span, step_outputs=getattr(cfg, "step_outputs", 1),
                    step_aggregate=getattr(cfg, "step_aggregate", "min"))
    if cfg.head == "ensemble":  # the other heads keep null here, so their rewardkit.json reads as before
        spec = dataclasses.replace(spec, ensemble_size=cfg.ensemble_size, ensemble_aggregate=cfg.ensemble_aggregate,
                                   ensemble_beta=cfg.ensemble_beta,
                                   ensemble_members=getattr(cfg, "ensemble_members", "heads"))
    spec.validate(kind)
    return spec.resolve(kind)


@fp32_readout  # under bf16 autocast too (models/fp32.py)
def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` [N, L, H] over the real tokens of each row (``mask`` [N, L]): padding never counts,
    so the result does not depend on padding side or width."""
    m = mask.to(hidden.dtype)[:, :, None]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def span_mask(width: int, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """[N, width] long mask, 1 on columns ``start[i] .. end[i]`` (both inclusive) of row i: the response span
    that decoders' ``mean`` pooling averages (``end`` is the score token, the last real token)."""
    cols = torch.arange(width, device=start.device)
    return ((cols[None, :] >= start[:, None]) & (cols[None, :] <= end[:, None])).long()


class HeadExtras(nn.Module):
    """Weights a read-out needs beyond the transformers model: the learned attribute weighting's logits."""

    def __init__(self, spec: HeadSpec):
        super().__init__()
        size = head_kind(spec.head).learned_parameters(spec)
        self.attribute_logits = nn.Parameter(torch.zeros(size)) if size else None  # softmax(0) = the mean at start

    @property
    def empty(self) -> bool:
        return self.attribute_logits is None

    def save(self, directory) -> None:
        from safetensors.torch import save_file

        if not self.empty:
            save_file({"attribute_logits": self.attribute_logits.detach().float().contiguous().cpu()},
                      f"{directory}/{HEAD_FILE}")

    def load(self, directory) -> None:
        from pathlib import Path

        from safetensors.torch import load_file

        if self.empty:
            return
        path = Path(directory, HEAD_FILE)
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; rewardkit.json says the attribute weights are learned")
        with torch.no_grad():
            self.attribute_logits.copy_(load_file(str(path))["attribute_logits"])


@fp32_readout  # the multi head's weighted sum is a matmul: bf16 under autocast otherwise
def combine(logits: torch.Tensor, spec: HeadSpec, extras: HeadExtras | None) -> torch.Tensor:
    """Head outputs [N, C] -> one fp32 reward per row [N]."""
    return head_kind(spec.head).combine(logits.float(), spec, extras)


@dataclass
class RewardOutput:
    """Everything one forward gives the losses. Shapes: N rows, L tokens, C head outputs."""

    rewards: torch.Tensor
    """[N] fp32: the reward of each row (what scoring returns)."""
    logits: torch.Tensor
    """[N, C] fp32: the head's outputs at the pooled state (classifier logits, K attribute values ...)."""
    token_values: torch.Tensor | None = None
    """[N, L] fp32, ``per_token`` head only: each token's value (padding columns hold garbage: mask them)."""
    token_logits: torch.Tensor | None = None
    """[N, L, C] fp32, ``step`` head only: the head's outputs at every token (read at the step ends)."""
