"""Scalar ratings from several annotators: per-annotator z-scores, and ratings turned into preference pairs.

Annotators use a rating scale differently: one gives 0.8 to the better response and 0.7 to the worse, another
0.6 and 0.5 to the same two. Regressing on the raw numbers teaches the model who rated, not what is better.

* :func:`zscore_per_annotator` rescales each annotator's ratings to mean 0 and standard deviation 1, which
  removes offsets and scale stretch between annotators before regression (needs several ratings per annotator).
* :func:`zscore_ratings` and :func:`zscore_attributes` standardise a whole split (every rating, or each
  attribute of multi-attribute ratings): targets of mean 0 suit regression heads without a bias.
* :func:`ratings_to_pairs` keeps only the order: within one annotator (``same_annotator``) the 0.8 vs 0.7 and
  0.6 vs 0.5 both become "A better than B", whatever the offset; ``pooled`` averages each response's ratings
  over annotators first (z-score first when annotators differ in scale).
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .formats import MultiRated, Pair, Rated, Text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnotatorStats:
    """Mean and standard deviation of one annotator's raw ratings (``std`` 0 when all are equal)."""

    count: int
    mean: float
    std: float


def annotator_stats(rated: Sequence[Rated]) -> dict[str | None, AnnotatorStats]:
    """Population mean and std of the ratings of each annotator (``None`` collects unnamed ratings)."""
    groups: dict[str | None, list[float]] = defaultdict(list)
    for r in rated:
        groups[r.annotator].append(r.score)
    return {name: AnnotatorStats(len(xs), *_mean_std(xs)) for name, xs in groups.items()}


def zscore_per_annotator(rated: Sequence[Rated]) -> list[Rated]:
    """Each rating as ``(score - mean) / std`` of its annotator's ratings.

    An annotator whose ratings are all equal (or who rated once) carries no scale information: their
    ratings become 0 (centred, not divided by zero), and a warning says how many such annotators there were.
    """
    stats = annotator_stats(rated)
    flat = [name for name, s in stats.items() if s.std == 0.0]
    if flat:
        log.warning("%d annotator(s) gave one distinct rating only (%s); their ratings become 0 after z-scoring",
                    len(flat), ", ".join(str(n) for n in flat[:5]))
    return [replace(r, score=_z(r.score, stats[r.annotator].mean, stats[r.annotator].std)) for r in rated]


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    mean = sum(xs) / len(xs)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))


def _z(x: float, mean: float, std: float) -> float:
    """``(x - mean) / std``; 0 when ``std`` is 0 (no scale information: centred, not divided by zero)."""
    return 0.0 if std == 0.0 else (x - mean) / std


def zscore_ratings(rated: Sequence[Rated]) -> list[Rated]:
    """Every rating as ``(score - mean) / std`` over all ratings given (population std; all equal -> 0).

    Regression heads of decoders (transformers' ``score`` layer) have no bias: to output a mean rating of 3.1
    on a 1-5 scale the model must first build a constant feature, which a small model does at the expense of
    the differences between responses. Pearson and Spearman against the ratings do not change under this map."""
    if not rated:
        return []
    mean, std = _mean_std([r.score for r in rated])
    return [replace(r, score=_z(r.score, mean, std)) for r in rated]


def zscore_attributes(rated: Sequence[MultiRated]) -> list[MultiRated]:
    """Each attribute standardised over the examples that rate it (missing ratings stay missing): attributes
    rated on different scales (0-1, 1-3, 1-5) then weigh alike in the multi-attribute MSE and in a fixed or
    learned weighting, and a bias-free head needs no per-attribute offset."""
    names = sorted({a for r in rated for a, v in r.scores.items() if v is not None})
    stats = {a: _mean_std([r.scores[a] for r in rated if r.scores.get(a) is not None]) for a in names}

    return [replace(r, scores={a: None if v is None else _z(v, *stats[a]) for a, v in r.scores.items()})
            for r in rated]


def _key(value: Text) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def ratings_to_pairs(rated: Sequence[Rated], mode: Literal["same_annotator", "pooled"] = "same_annotator",
                     min_gap: float = 0.0, gap_as_margin: bool = False) -> list[Pair]:
    """Preference pairs from ratings of several responses to the same item.

    Items are grouped by ``group`` when a rating has one, else by the prompt. Within a group:

    * ``same_annotator``: every two responses rated by the same annotator give a pair when their ratings
      differ by more than ``min_gap``. Two annotators who agree give the pair twice (two votes); two who
      disagree give both directions, which a Bradley-Terry loss reads as a soft, uncertain preference.
    * ``pooled``: each distinct response's ratings are averaged over every annotator who rated it, then every
      two responses whose means differ by more than ``min_gap`` give one pair.

    Equal ratings never make a pair. ``gap_as_margin`` sets ``Pair.margin`` to the rating gap.
    """
    if mode not in ("same_annotator", "pooled"):
        raise ValueError(f"unknown mode {mode!r}; use 'same_annotator' or 'pooled'")
    groups: dict[tuple, list[Rated]] = defaultdict(list)
    for r in rated:
        item = ("group", r.group) if r.group is not None else ("prompt", _key(r.prompt))
        who = r.annotator if mode == "same_annotator" else None
        groups[(item, who)].append(r)
    pairs = []
    for members in groups.values():
        if mode == "pooled":
            members = _pool(members)
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if _key(a.response) == _key(b.response):
                    continue
                gap = a.score - b.score
                # the tolerance keeps 0.8 - 0.7 (= 0.1000...9 in floats) from passing min_gap 0.1
                if abs(gap) <= min_gap + 1e-9:
                    continue
                hi, lo = (a, b) if gap > 0 else (b, a)
                pairs.append(Pair(prompt=hi.prompt, chosen=hi.response, rejected=lo.response,
                                  margin=abs(gap) if gap_as_margin else None, where=f"{hi.where} > {lo.where}"))
    return pairs


def _pool(members: list[Rated]) -> list[Rated]:
    by_response: dict[str, list[Rated]] = defaultdict(list)
    for r in members:
        by_response[_key(r.response)].append(r)
    out = []
    for rs in by_response.values():
        mean = sum(r.score for r in rs) / len(rs)
        out.append(replace(rs[0], score=mean, annotator=None))
    return out
