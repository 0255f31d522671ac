"""Reward-model ensembles on one backbone: K linear heads read at the same score token (``model.head: ensemble``).

Why: a policy optimised against one reward model finds that model's errors; several reward estimates and their
disagreement let RL use a conservative reward (Coste et al. 2023, arXiv 2310.02743; Eisenstein et al. 2023,
arXiv 2312.09244; Zhang et al. 2024, arXiv 2401.16635). Here the K heads are the rows of the transformers head
(``num_labels = K``), so one forward gives all K rewards and the saved directory loads in plain transformers
(``logits`` [N, K]). The heads differ by

* **data**: each head trains on its own bootstrap resample of the pairs: a weight per (pair, head), Poisson(1)
  (the online bootstrap) or 2 x Bernoulli(0.5), from a hash of the pair's source position and the head's seed,
  so a pair keeps its weights whatever batch or epoch it lands in (:func:`bootstrap_weights`);
* **initialisation**: row k >= 1 of the head is drawn from its own seeded generator (row 0 keeps the plain
  head's initialisation, so K = 1 trains exactly as ``head: scalar``; :func:`init_heads`).

Variants and their trade-off (docs/ensembles.md):

* shared backbone, trained (default): the backbone is fitted to all heads' mean loss; cost ~ one model; heads
  are diverse only above the shared features, so the uncertainty is under-estimated next to K separate models;
* ``ensemble_freeze_backbone``: only the K heads train (linear probes on fixed features): cheapest (no backward
  through the backbone), least diverse and usually less accurate;
* ``ensemble_members: lora``: K LoRA adapters over one frozen backbone, one per member (its own features, K
  forwards per score): :mod:`rewardkit.models.ensemble_lora`.

The reward is one aggregate of the K rewards (:func:`aggregate`): ``mean``, worst-case ``min`` or the
conservative ``mean_minus_std`` = mean - beta * std (population std over the K heads), stored in
``rewardkit.json`` (``ensemble_aggregate``, ``ensemble_beta``) and overridable per request.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Literal, get_args

import torch

from .head_kinds import HeadKind, Readout, register_head

Aggregate = Literal["mean", "min", "mean_minus_std"]
AGGREGATES: tuple[str, ...] = get_args(Aggregate)
Bootstrap = Literal["poisson", "bernoulli", "none"]


# --- aggregates (pure) ------------------------------------------------------------------------------------------

def ensemble_std(z: torch.Tensor) -> torch.Tensor:
    """Population standard deviation over the K heads: [N, K] -> [N] (0 for K = 1)."""
    return z.float().std(dim=1, correction=0)


def aggregate(z: torch.Tensor, how: str, beta: float = 1.0) -> torch.Tensor:
    """The K head rewards [N, K] -> one reward [N]: ``mean``, ``min`` or ``mean_minus_std`` (mean - beta * std)."""
    z = z.float()
    if how == "mean":
        return z.mean(1)
    if how == "min":
        return z.min(1).values
    if how == "mean_minus_std":
        return z.mean(1) - beta * ensemble_std(z)
    raise ValueError(f"ensemble aggregate must be one of {', '.join(AGGREGATES)}, got {how!r}")


def uncertainty_columns(z: torch.Tensor, how: str, beta: float) -> list[dict]:
    """Per row: ``reward`` (the aggregate), ``reward_mean``, ``reward_std`` and ``rewards_k`` (the K rewards)."""
    z = z.float()
    reward, mean, std = aggregate(z, how, beta), z.mean(1), ensemble_std(z)
    return [{"reward": r, "reward_mean": m, "reward_std": s, "rewards_k": k}
            for r, m, s, k in zip(reward.tolist(), mean.tolist(), std.tolist(), z.tolist(), strict=True)]


# --- bootstrap weights (pure) -----------------------------------------------------------------------------------

_POISSON_CDF = [sum(math.exp(-1.0) / math.factorial(j) for j in range(i + 1)) for i in range(20)]


def _uniform(seed: int, head: int, key: str) -> float:
    digest = hashlib.blake2b(f"{seed}\x1f{head}\x1f{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0 ** 64


def bootstrap_weights(keys: Sequence[str], k: int, seed: int, kind: str) -> torch.Tensor:
    """[B, K] float weights of B pairs (identified by ``keys``, e.g. their ``file:line``) for K heads.

    ``poisson``: Poisson(1) counts, the online bootstrap (Oza & Russell 2001): the per-pair weight a resample
    with replacement gives as the data grows; ``bernoulli``: 2 x Bernoulli(0.5) (each head sees about half of
    the pairs, at double weight); ``none``: all ones. Both have mean 1, so the expected loss equals the plain
    one. Deterministic in (seed, head, key): a pair weighs the same in every epoch and batch.
    """
    if kind == "none":
        return torch.ones(len(keys), k)
    u = torch.tensor([[_uniform(seed, h, key) for h in range(k)] for key in keys], dtype=torch.float64)
    if kind == "bernoulli":
        return (u < 0.5).float() * 2.0
    if kind == "poisson":
        cdf = torch.tensor(_POISSON_CDF, dtype=torch.float64)
        return torch.searchsorted(cdf, u.reshape(-1), right=True).reshape(u.shape).float()
    raise ValueError(f"model.ensemble_bootstrap must be poisson, bernoulli or none, got {kind!r}")


# --- initialisation and the frozen-backbone variant -------------------------------------------------------------

def head_seed(seed: int, head: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"ensemble-head\x1f{seed}\x1f{head}".encode(), digest_size=4).digest(),
                          "little")


@torch.no_grad()
def init_heads(linear: torch.nn.Linear, seed: int, std: float) -> None:
    """Give each row k >= 1 of the K-output head its own N(0, std) draw from a generator seeded by (seed, k);
    row 0 keeps the initialisation the plain one-output head gets (K = 1 is then ``head: scalar``)."""
    for k in range(1, linear.weight.shape[0]):
        g = torch.Generator().manual_seed(head_seed(seed, k))
        row = torch.randn(linear.weight.shape[1], generator=g, dtype=torch.float32) * std
        linear.weight[k].copy_(row.to(linear.weight.dtype))
        if linear.bias is not None:
            linear.bias[k] = 0.0


def freeze_backbone(hf: torch.nn.Module, head: torch.nn.Module) -> int:
    """Train only ``head``, the K-row linear (an encoder's pooler stays frozen too); returns the trainable count."""
    keep = {id(p) for p in head.parameters()}
    for p in hf.parameters():
        p.requires_grad_(id(p) in keep)
    return sum(p.numel() for p in hf.parameters() if p.requires_grad)


# --- the registry entry -----------------------------------------------------------------------------------------

@register_head
class Ensemble(HeadKind):
    """K heads at the score token; the reward is their aggregate (``ensemble_aggregate``, ``ensemble_beta``)."""

    name = "ensemble"

    def num_labels(self, spec) -> int:
        return int(spec.ensemble_size or 0)

    def validate(self, spec, kind):
        size = spec.ensemble_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"model.ensemble_size must be an integer >= 1, got {size!r}")
        if spec.ensemble_aggregate not in AGGREGATES:
            raise ValueError(f"model.ensemble_aggregate must be one of {', '.join(AGGREGATES)}, got "
                             f"{spec.ensemble_aggregate!r}")
        beta = spec.ensemble_beta
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta < 0:
            raise ValueError(f"model.ensemble_beta must be a finite number >= 0, got {beta!r}")
        if spec.ensemble_members not in (None, "heads", "lora"):
            raise ValueError(f"model.ensemble_members must be heads or lora, got {spec.ensemble_members!r}")

    def combine(self, z, spec, extras):
        return aggregate(z, spec.ensemble_aggregate, spec.ensemble_beta)

    def transformers_readout(self, meta) -> Readout:
        return "logits"

    def export_config(self, hf_config, meta) -> None:
        k = int(meta.ensemble_size)
        hf_config.id2label = {i: f"head_{i}" for i in range(k)}
        hf_config.label2id = {f"head_{i}": i for i in range(k)}

    def consumer_reward(self, z, meta, weights):
        return aggregate(z, meta.ensemble_aggregate, meta.ensemble_beta)

    def export_manifest(self, meta) -> dict:
        k = int(meta.ensemble_size)
        info = {"heads": k, "labels": [f"head_{i}" for i in range(k)], "aggregate": meta.ensemble_aggregate,
                "beta": meta.ensemble_beta, "reward": self._formula(meta),
                "uncertainty": "logits.std(-1, correction=0)", "members": meta.ensemble_members or "heads"}
        if meta.ensemble_members == "lora":  # logits[:, k] comes from member k's own adapter (ensemble_lora.py)
            from .ensemble_lora import CONSUMER_RECIPE, member_dir

            info["adapters"] = [member_dir(i) for i in range(k)]
            info["consumer"] = CONSUMER_RECIPE
        return {"ensemble": info}

    @staticmethod
    def _formula(meta) -> str:
        return {"mean": "logits.mean(-1)", "min": "logits.min(-1).values",
                "mean_minus_std": f"logits.mean(-1) - {meta.ensemble_beta:g} * logits.std(-1, correction=0)"}[
            meta.ensemble_aggregate]

    def card_lines(self, meta, weights):
        k, how, formula = meta.ensemble_size, meta.ensemble_aggregate, self._formula(meta)
        if meta.ensemble_members == "lora":
            from .ensemble_lora import CONSUMER_RECIPE

            return [f"This is an ensemble of {k} LoRA adapters over one frozen backbone (member k: adapter "
                    f"`adapters/member_k` and head row k, each trained on its own bootstrap resample of the pairs). "
                    f"**Plain transformers on this directory alone gives the base backbone's {k} heads without "
                    "the adapters, which are not the rewards.** Score each member with peft and read column k "
                    f"(`DIR` this directory, `K` = {k}):", "", "```python", CONSUMER_RECIPE, "```", "",
                    f"The reward is `{formula}` of those {k} columns (`{how}`, stored in rewardkit.json as "
                    "`ensemble_aggregate` / `ensemble_beta`); their standard deviation is the uncertainty. "
                    "vLLM and SGLang would serve the base without adapters: use `rewardkit serve`."]
        return [f"This is an ensemble of {k} reward heads on one backbone (each trained on its own bootstrap "
                f"resample of the pairs). Plain transformers returns the {k} rewards as `logits` (labels "
                f"`head_0` .. `head_{k - 1}`); the reward is `{formula}` (`{how}`, stored in rewardkit.json as "
                "`ensemble_aggregate` / `ensemble_beta`). Their standard deviation `logits.std(-1, "
                "correction=0)` is the ensemble's uncertainty."]
