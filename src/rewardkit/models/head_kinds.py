"""The head registry: one small object per ``model.head`` that says everything the rest of rewardkit needs to
know about it, so that no other module branches on the head's name.

A :class:`HeadKind` answers, for a :class:`~rewardkit.models.heads.HeadSpec` (training, loading) or a
:class:`~rewardkit.models.reward_model.ModelMeta` (export, model card; both carry the same read-out fields):

* **outputs**: ``num_labels`` of the transformers head (1, 2, K ...) and whether it reads a value at *every*
  token (``token_values``) rather than at the score token only;
* **validation**: ``validate(spec, kind)`` fails early, naming the config key;
* **combination**: ``combine(z, spec, extras)`` turns the head's outputs [N, C] into one fp32 reward [N];
  ``learned_parameters(spec)`` sizes the trainable weights that combination needs beyond transformers
  (saved in ``rewardkit_head.safetensors`` by :class:`~rewardkit.models.heads.HeadExtras`);
* **export**: ``transformers_readout(meta)`` (``exact``: plain transformers returns the reward; ``logits``: it
  returns the outputs and the card gives the formula), ``export_config(hf_config, meta)`` (labels),
  ``effective_weights(model, meta)``, ``consumer_reward(z, meta, weights)`` (what a consumer of the exported
  directory computes from the transformers logits) and ``card_lines(meta, weights)`` (how the card says it).

Adding a head: subclass :class:`HeadKind` in a new module, decorate it with :func:`register_head`, import
that module at the bottom of this one, and add its name to ``config.Head`` (``tests/unit/test_architecture.py``
fails when the two disagree). Losses name the heads they need through ``HEADS`` (``training/tasks.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch

from .step_readout import AGGREGATES, step_probabilities

if TYPE_CHECKING:  # annotations only: heads.py imports this module
    from .heads import HeadExtras, HeadSpec

Readout = Literal["exact", "logits", "judge", "rewardkit_only"]


class HeadKind:
    """Defaults describe the plain one-output head (``scalar``); subclasses override what differs."""

    name: str = ""
    token_values: bool = False
    """True: the linear head is applied to every token's hidden state and ``RewardOutput.token_values`` holds
    them; the reward is the score token's value (``per_token``)."""

    lm_head: bool = False
    """True: the head is the backbone's own language-model head (a causal LM is loaded and saved, no new
    parameters; ``judge``), rather than a transformers ``*ForSequenceClassification`` head."""

    def num_labels(self, spec) -> int:
        return 1

    def project(self, model, picked: torch.Tensor) -> torch.Tensor:
        """Hidden states at the score tokens [M, H] -> the head's outputs [M, C] (the transformers head)."""
        return model._head()(picked)

    def validate(self, spec: HeadSpec, kind: str) -> None:
        """Raise ``ValueError`` naming the ``model.*`` key on settings this head cannot honour."""

    def learned_parameters(self, spec: HeadSpec) -> int | None:
        """Size of the trainable vector the combination needs beyond the transformers head, or None."""
        return None

    def combine(self, z: torch.Tensor, spec: HeadSpec, extras: HeadExtras | None) -> torch.Tensor:
        """Head outputs [N, C] (fp32) -> one reward per row [N]."""
        return z[:, 0]

    # -- export and model card -------------------------------------------------------------------------------
    def transformers_readout(self, meta) -> Readout:
        """For last / cls pooling: what plain transformers returns for this head."""
        return "exact"

    def export_config(self, hf_config, meta) -> None:
        """Edit the exported transformers config (e.g. label names)."""

    def effective_weights(self, model, meta) -> list[float] | None:
        return None

    def consumer_reward(self, z: torch.Tensor, meta, weights: list[float] | None) -> torch.Tensor:
        """The model card's formula: transformers logits [N, C] -> rewards [N]."""
        return z[:, 0]

    def card_lines(self, meta, weights: list[float] | None) -> list[str]:
        """How the card explains the combination (nothing for one-output heads)."""
        return []

    def export_manifest(self, meta) -> dict:
        """Extra keys for the ``export`` section of the exported rewardkit.json (e.g. an ensemble's aggregation)."""
        return {}


HEADS: dict[str, HeadKind] = {}


def register_head(cls: type[HeadKind]) -> type[HeadKind]:
    """Class decorator: register one instance under ``cls.name``."""
    if not cls.name or cls.name in HEADS:
        raise ValueError(f"head kind {cls.__name__}: name {cls.name!r} is empty or already registered")
    HEADS[cls.name] = cls()
    return cls


def head_kind(name: str) -> HeadKind:
    try:
        return HEADS[name]
    except KeyError:
        raise ValueError(f"model.head: unknown head {name!r}; choose one of {', '.join(HEADS)}") from None


@register_head
class Scalar(HeadKind):
    name = "scalar"


@register_head
class Classifier(HeadKind):
    """2 outputs (reject, accept); the reward is their difference or the accept probability (``reward_from``)."""

    name = "classifier"

    def num_labels(self, spec) -> int:
        return 2

    def combine(self, z, spec, extras):
        if spec.reward_from == "probability":
            return z.softmax(-1)[:, 1]
        return z[:, 1] - z[:, 0]

    def transformers_readout(self, meta) -> Readout:
        return "logits"

    def consumer_reward(self, z, meta, weights):
        return self.combine(z, meta, None)

    def card_lines(self, meta, weights):
        formula = "softmax(logits)[1]" if meta.reward_from == "probability" else "logits[1] - logits[0]"
        return [f"This head has 2 outputs (reject, accept). Plain transformers returns both as `logits`; the "
                f"reward is `{formula}`. `pipeline(..., function_to_apply=\"none\", top_k=None)` returns the "
                "two logits, not the reward."]


@register_head
class PerToken(HeadKind):
    """The same linear at every token (each value is its causal prefix's reward); the reward is the score
    token's. Transformers returns the last real token's value: the same number."""

    name = "per_token"
    token_values = True

    def validate(self, spec, kind):
        if kind != "decoder" or spec.pooling != "last":
            raise ValueError("model.head per_token needs a decoder with pooling last (each token's value is "
                             "its causal prefix's reward)")


@register_head
class Multi(HeadKind):
    """K rated attributes; reward = sum_k w_k z_k with w the mean, fixed weights or softmax of learned logits."""

    name = "multi"

    def num_labels(self, spec) -> int:
        return len(spec.attributes or [])

    def validate(self, spec, kind):
        if not spec.attributes:
            raise ValueError("model.head multi needs model.attributes (the rated attribute names)")
        if spec.weighting == "fixed" and len(spec.attribute_weights or []) != len(spec.attributes):
            raise ValueError(f"model.weighting fixed needs model.attribute_weights with one weight per "
                             f"attribute ({len(spec.attributes)})")

    def learned_parameters(self, spec):
        return self.num_labels(spec) if spec.weighting == "learned" else None

    def combine(self, z, spec, extras):
        if spec.weighting == "fixed":
            w = torch.tensor(spec.attribute_weights, dtype=z.dtype, device=z.device)
        elif spec.weighting == "learned":
            w = extras.attribute_logits.float().softmax(0)
        else:
            w = torch.full((z.shape[1],), 1.0 / z.shape[1], dtype=z.dtype, device=z.device)
        return z @ w

    def transformers_readout(self, meta) -> Readout:
        return "logits"

    def export_config(self, hf_config, meta) -> None:
        hf_config.id2label = dict(enumerate(meta.attributes))  # the pipeline then names each output
        hf_config.label2id = {a: i for i, a in enumerate(meta.attributes)}

    def effective_weights(self, model, meta):
        if meta.weighting == "fixed":
            return [float(w) for w in meta.attribute_weights]
        if meta.weighting == "learned":
            return model.extras.attribute_logits.detach().float().softmax(0).tolist()
        k = len(meta.attributes or [])
        return [1.0 / k] * k

    def consumer_reward(self, z, meta, weights):
        return z @ torch.tensor(weights, dtype=z.dtype)

    def card_lines(self, meta, weights):
        pairs = ", ".join(f"`{a}` {w:.6g}" for a, w in zip(meta.attributes or [], weights or [], strict=False))
        return [f"This head rates {len(meta.attributes or [])} attributes; plain transformers returns them as "
                f"`logits` (in this order, also in `config.id2label`) and the reward is their weighted sum "
                f"`logits @ w` ({meta.weighting} weighting), with w: {pairs}."]


@register_head
class Judge(HeadKind):
    """The LM head's logits of two answer tokens at the judge template's end, ``logit(yes) - logit(no)`` (no new
    parameters; :mod:`rewardkit.models.judge`). Plain transformers computes it with ``AutoModelForCausalLM``
    on the judge text; vLLM serves it as a one-label classifier (the command is in ``rewardkit.json``)."""

    name = "judge"
    lm_head = True

    def validate(self, spec, kind):
        if kind != "decoder" or spec.pooling != "last":
            raise ValueError("model.head judge needs a decoder with pooling last (the LM head reads the answer "
                             "position, the judge template's last token)")

    def project(self, model, picked):
        return model.judge_head(picked)  # [M, 1]: logit(yes) - logit(no), through the model's own LM head

    def transformers_readout(self, meta) -> Readout:
        return "judge"

    def card_lines(self, meta, weights):
        j = meta.judge or {}
        if j.get("mode") == "pairwise":
            return [f"A pairwise judge: `m = logit({j.get('pos_piece')!r}) - logit({j.get('neg_piece')!r})` at the "
                    "end of the judge text showing both replies; each order's output is m / 2, so a pair's two "
                    "orders differ by the order-averaged margin."]
        return [f"The reward is `logit({j.get('pos_piece')!r}) - logit({j.get('neg_piece')!r})` of the causal LM's "
                "next token at the end of the judge text (no head of its own)."]


@register_head
class Step(HeadKind):
    """A process reward model (docs/prm.md): the linear head on every token (``RewardOutput.token_logits``, 1
    logit or 2 classes), a step's score P(right) at its end token (:mod:`rewardkit.models.step_readout`); the
    per-row reward is the row's last step's score, a solution's reward aggregates its steps
    (``Scorer.score_steps``). Exported as a token classifier (:mod:`rewardkit.export.step_export`)."""

    name = "step"
    token_logits = True

    def num_labels(self, spec) -> int:
        return spec.step_outputs

    def validate(self, spec, kind):
        if kind != "decoder" or spec.pooling != "last":
            raise ValueError("model.head step needs a decoder with pooling last (a step's reward must not see the "
                             "steps after it)")
        if spec.step_outputs not in (1, 2):
            raise ValueError(f"model.step_outputs must be 1 (step_bce) or 2 (step_ce), got {spec.step_outputs}")
        if spec.step_aggregate not in AGGREGATES:
            raise ValueError(f"model.step_aggregate must be one of {', '.join(AGGREGATES)}, got "
                             f"{spec.step_aggregate!r}")

    def combine(self, z, spec, extras):
        return step_probabilities(z)

    def transformers_readout(self, meta):
        return "logits"  # exported as *ForTokenClassification: 2 logits at every token

    def consumer_reward(self, z, meta, weights):
        return step_probabilities(z)

    def card_lines(self, meta, weights):
        return ["This is a process reward model: a token classifier whose `softmax(logits)[1]` at each step's end "
                f"token is P(step right); the solution's reward is their `{meta.step_aggregate}`."]
