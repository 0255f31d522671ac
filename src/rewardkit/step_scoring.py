"""Step rewards for solutions: the one code path behind ``Scorer.score_steps``, ``rewardkit score`` and
``rewardkit eval`` on step records, the server's step requests and training evaluation.

Solutions are sorted by length and padded per batch (never to a global maximum); results come back in input
order. Several solutions to one prompt are **not** packed into one tree here: padded rows are what the
step-end read-out is proven on (tests/unit/test_step_model.py pins padding side and batch independence), and
the packed read-out reads one score token per branch, not a list of step ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .config import StepsConfig
from .data.collate import pad_batch
from .data.formats import Text
from .data.step_tokenize import EncodedSteps, StepEncoder
from .data.steps import Stepwise
from .models.step_readout import aggregate, gather_steps, step_probabilities
from .types import TokenBatch


@dataclass(frozen=True)
class StepScore:
    """One solution's scores: P(right) of every step kept, and the aggregate reward."""

    step_rewards: list[float]
    reward: float
    dropped_steps: int = 0
    """Trailing steps dropped by the over-length policy (they have no score)."""


def step_batch(items: Sequence[EncodedSteps], pad_id: int, side: str = "right") -> tuple[TokenBatch, torch.Tensor]:
    """Padded rows and the column of every step end, [N, S] long (-1 past a row's last step)."""
    tokens = pad_batch(items, pad_id, side)
    width, steps = tokens.input_ids.shape[1], max(len(x.step_ends) for x in items)
    index = torch.full((len(items), steps), -1, dtype=torch.long)
    for i, x in enumerate(items):
        offset = 0 if side == "right" else width - len(x.input_ids)
        index[i, :len(x.step_ends)] = torch.tensor(x.step_ends) + offset
    return tokens, index


def step_logits(model, tokens: TokenBatch, index: torch.Tensor) -> torch.Tensor:
    """The head's outputs at every step end, [N, S, C] fp32 (padding slots: mask with ``index >= 0``)."""
    out = model(tokens, full=True)
    if out.token_logits is None:
        raise ValueError("this model has no step head (model.head step); score it with Scorer.score")
    return gather_steps(out.token_logits, index)


@torch.no_grad()
def score_step_sequences(model, items: Sequence[EncodedSteps], pad_id: int, device, max_tokens: int = 4096,
                         max_batch: int = 64) -> list[list[float]]:
    """P(right) of every step of every solution, in input order."""
    from .scoring import length_batches

    out: list[list[float]] = [[] for _ in items]
    was_training = model.training
    model.eval()
    try:
        for idx in length_batches([len(x.input_ids) for x in items], max_tokens, max_batch):
            tokens, index = step_batch([items[i] for i in idx], pad_id)
            probs = step_probabilities(step_logits(model, tokens.to(device), index.to(device))).cpu()
            for j, i in enumerate(idx):
                out[i] = probs[j, :len(items[i].step_ends)].tolist()
    finally:
        model.train(was_training)
    return out


def steps_config(meta) -> StepsConfig:
    """The rendering a step model was trained with (``rewardkit.json`` ``steps``)."""
    saved = dict(meta.steps or {})
    return StepsConfig(separator=saved.get("separator", "\n\n"), step_token=saved.get("step_token"),
                       truncation=saved.get("truncation", "drop_steps"))


def score_steps(scorer, prompts: Sequence[Text], solutions: Sequence[Sequence[str]],
                aggregate_by: str | None = None) -> list[StepScore]:
    """Scores of each (prompt, steps); ``aggregate_by`` overrides the model's ``step_aggregate``."""
    if len(prompts) != len(solutions):
        raise ValueError(f"{len(prompts)} prompts but {len(solutions)} solutions")
    how = aggregate_by or scorer.meta.step_aggregate
    encoder = scorer.step_encoder
    items = []
    for i, (p, steps) in enumerate(zip(prompts, solutions, strict=True)):
        steps = list(steps)
        if not steps or any(not isinstance(s, str) or not s.strip() for s in steps):
            raise ValueError(f"solution {i}: every solution needs at least one non-empty step")
        items.append(encoder.encode(Stepwise(prompt=p, steps=steps, labels=[None] * len(steps),
                                             where=f"solution {i}")))
    probs = score_step_sequences(scorer.model, items, scorer.tokenizer.pad_token_id, scorer.device,
                                 scorer.max_tokens, scorer.max_batch)
    return [StepScore(p, aggregate(p, how), x.dropped_steps) for p, x in zip(probs, items, strict=True)]


def split_steps(scorer, response: Text) -> list[str]:
    """A whole response's steps: its text cut at the model's step separator (or step token). How ``Scorer.score``
    (and so a GRPO reward function) scores with a process reward model: the reward is the steps' aggregate."""
    if not isinstance(response, str):
        if len(response) != 1 or response[0].get("role") != "assistant":
            raise ValueError("a process reward model scores one assistant reply: give text or one assistant message")
        response = response[0]["content"]
    tag = scorer.step_encoder.tag
    steps = [s.strip() for s in response.split(tag) if s.strip()]
    if not steps:
        raise ValueError("the response is empty: no step to score")
    return steps


def make_step_encoder(scorer) -> StepEncoder:
    if scorer.meta.head != "step":
        raise ValueError("this model has no step head (rewardkit.json head is "
                         f"{scorer.meta.head!r}); score whole responses with Scorer.score")
    return StepEncoder(scorer.tokenizer, scorer.renderer, steps_config(scorer.meta), scorer.meta.max_length)
