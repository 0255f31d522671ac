"""Pairwise-judge comparisons: the one code path behind ``Scorer.compare``, ``Scorer.score_against`` (and the
TRL reward-function call of a pairwise judge) and the server's ``POST /compare``.

A pairwise judge (``model.head: judge``, ``model.judge.mode: pairwise``) shows both responses in one context and
reads ``m(x, y) = logit(A) - logit(B)`` with ``x`` shown as A. Judges prefer a position (untrained SmolLM2-135M
answers "A" for every hh-rlhf pair: benchmarks/README.md), so by default both orders are scored and averaged:
``margin = (m(x, y) - m(y, x)) / 2`` is antisymmetric (swapping the responses negates it exactly) and the
position bias ``(m(x, y) + m(y, x)) / 2`` is reported next to it. ``both_orders=False`` scores ``x`` shown as A
only (half the compute; the margin then carries the bias, which is not observed): for a judge trained or checked
to be position-consistent, never by default.

Each order is one encoded sequence whose output is ``m / 2`` (``models/judge.py``, ``PAIRWISE_SCALE``), so the
two orders of a pair are scored by the one scoring engine (length batching, the conversation computed once for
both orders) and ``margin = r(x, y) - r(y, x)``, ``position_bias = r(x, y) + r(y, x)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from .data.formats import Text
from .data.tokenize import Encoded


@dataclass(frozen=True)
class PairJudgement:
    """One comparison of ``a`` with ``b`` (logits, fp32 read-outs as floats)."""

    margin: float
    """> 0 prefers ``a``. Both orders: ``(m(a, b) - m(b, a)) / 2``; one order: ``m(a, b)``."""
    margin_a_first: float
    """``m(a, b) = logit(A) - logit(B)`` with ``a`` shown as A."""
    margin_b_first: float | None
    """``m(b, a)`` with ``b`` shown as A (None when only one order was scored)."""
    position_bias: float | None
    """``(m(a, b) + m(b, a)) / 2``: what the judge gives position A whatever the content (> 0 favours A)."""

    def as_dict(self) -> dict:
        return asdict(self)


def check_pairwise(scorer) -> None:
    if not scorer.is_pairwise_judge:
        raise ValueError(f"comparing two responses in one context needs a pairwise judge (model.head judge, "
                         f"model.judge.mode pairwise); this model is {scorer.meta.head!r}: score each response "
                         "with Scorer.score and compare the rewards")


def encode_comparisons(scorer, prompts: Sequence[Text], a: Sequence[Text], b: Sequence[Text],
                       both_orders: bool = True) -> list[list[Encoded | None]]:
    """Per comparison its encoded orders (``a`` shown as A, then ``b`` shown as A when ``both_orders``); one
    encoding group per comparison, so both orders keep the same conversation tokens when cut."""
    check_pairwise(scorer)
    if not len(prompts) == len(a) == len(b):
        raise ValueError(f"{len(prompts)} prompts, {len(a)} first and {len(b)} second responses: they must match")
    out = []
    for p, x, y in zip(prompts, a, b, strict=True):
        orders = scorer.renderer.render_orders(p, x, y)
        out.append(scorer.encoder.encode_group(orders if both_orders else orders[:1]))
    return out


def judgements(encoded: list[list[Encoded | None]], rewards: Sequence[float]) -> list[PairJudgement | None]:
    """Comparisons from the per-order outputs (``rewards``: one per non-None sequence, in order); a comparison
    with a dropped (over-long, ``truncation: drop``) order is None."""
    it = iter(rewards)
    out: list[PairJudgement | None] = []
    for orders in encoded:
        r = [next(it) if s is not None else None for s in orders]
        if any(v is None for v in r):
            out.append(None)
        elif len(r) == 1:
            out.append(PairJudgement(2 * r[0], 2 * r[0], None, None))
        else:
            out.append(PairJudgement(r[0] - r[1], 2 * r[0], 2 * r[1], r[0] + r[1]))
    return out


def present(encoded: list[list[Encoded | None]]) -> list[Encoded]:
    return [s for orders in encoded for s in orders if s is not None]


def compare(scorer, prompts: Sequence[Text], a: Sequence[Text], b: Sequence[Text],
            both_orders: bool = True) -> list[PairJudgement | None]:
    encoded = encode_comparisons(scorer, prompts, a, b, both_orders)
    return judgements(encoded, scorer.score_encoded(present(encoded)))


def score_against(scorer, prompts: Sequence[Text], responses: Sequence[Text], references: Sequence[Text],
                  both_orders: bool = True) -> list[float | None]:
    """Each response's reward as its margin over a reference response to the same prompt (an RL reward from a
    pairwise judge: e.g. a GRPO group's completions each compared with the data set's reference answer)."""
    return [None if j is None else j.margin for j in compare(scorer, prompts, responses, references, both_orders)]
