"""Reward functions in the shapes RLHF frameworks call.

* TRL: a :class:`~rewardkit.serve.scorer.Scorer` is itself a GRPO reward function (``Scorer.__call__``).
* OpenRLHF: ``--remote_rm_url path/to/file.py`` loads ``reward_func(queries, prompts, labels)`` from that file
  (``openrlhf/utils/remote_rm_utils.py``, ``RemoteRewardModel``) and expects a tensor of rewards. Put::

      from rewardkit.serve.adapters import openrlhf_reward_func
      reward_func = openrlhf_reward_func("runs/quickstart/model")

  in that file. Queries are full texts already templated by OpenRLHF; they are split and tokenized exactly as
  the server's ``/get_reward`` does (see :func:`rewardkit.serve.items.split_query`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from .items import rendered_query, split_query
from .scorer import Scorer


def query_settings(scorer: Scorer) -> tuple[bool, str | None]:
    """(queries are chat-template text, the pad token text to strip from their end)."""
    chat = scorer.meta.kind == "decoder" and scorer.renderer.template != "plain" and \
        scorer.renderer.has_chat_template
    pad = scorer.tokenizer.pad_token
    return chat, pad if isinstance(pad, str) and pad != scorer.tokenizer.eos_token else None


def query_sequences(scorer: Scorer, queries: Sequence[str], prompts: Sequence[str] | None):
    """Encode OpenRLHF queries (prompt + response joined by the client) without re-templating them."""
    chat, pad = query_settings(scorer)
    prompts = list(prompts) if prompts is not None else [None] * len(queries)
    if len(prompts) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(prompts)} prompts")
    return [scorer.encoder.encode(rendered_query(split_query(q, p, pad), chat))
            for q, p in zip(queries, prompts, strict=True)]


def openrlhf_reward_func(model: Scorer | str | Path, device: str = "cpu", normalize: bool = False,
                         aggregate: str | None = None, beta: float | None = None,
                         with_uncertainty: bool = False) -> Callable[..., torch.Tensor | dict]:
    """``reward_func(queries, prompts, labels) -> torch.Tensor`` for OpenRLHF; the model loads on first call.

    Ensemble models: the reward is ``aggregate`` (None: the stored one, ``beta`` likewise); with
    ``with_uncertainty`` the function returns OpenRLHF's dict form ``{"rewards", "scores", "extra_logs":
    {"reward_mean", "reward_std"}}`` (tensors), which its remote reward path logs."""
    loaded: list[Scorer] = [model] if isinstance(model, Scorer) else []

    def reward_func(queries: Sequence[str], prompts: Sequence[str] | None = None, labels=None):
        if not loaded:
            loaded.append(Scorer.from_pretrained(model, device=device))
        scorer = loaded[0]
        seqs = query_sequences(scorer, queries, prompts)
        if scorer.is_ensemble:
            rows = scorer.uncertainty_encoded(seqs, aggregate, beta)
            rewards = [r["reward"] for r in rows]
        elif aggregate is not None or beta is not None or with_uncertainty:
            raise ValueError("aggregate / beta / with_uncertainty need an ensemble model (model.head ensemble)")
        else:
            rewards = scorer.score_encoded(seqs)
        if normalize:
            rewards = scorer.normalize(rewards)
        out = torch.tensor(rewards, dtype=torch.float32)
        if not with_uncertainty:
            return out
        logs = {k: torch.tensor([r[k] for r in rows], dtype=torch.float32) for k in ("reward_mean", "reward_std")}
        return {"rewards": out, "scores": out, "extra_logs": logs}

    return reward_func
