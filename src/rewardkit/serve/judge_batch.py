"""`rewardkit score FILE` for a pairwise LM-head judge: each pair record gets the judge's comparison.

A pairwise judge has no reward for one response (:data:`rewardkit.data.judge_encode.PAIRWISE_ONLY`); it compares
the two responses of a record in one context. Each record ``{prompt, chosen, rejected}`` (or, with
``--data.format ab``, ``{prompt, response_a, response_b}``) gets, as :class:`~rewardkit.judge_scoring.PairJudgement`
gives them (:func:`rewardkit.judge_scoring.judgements`, the path ``Scorer.compare`` and ``POST /compare`` take):

- ``margin``: the order-averaged margin ``(m(x, y) - m(y, x)) / 2``; > 0 prefers ``chosen`` (``response_a``);
- ``margin_chosen_as_a`` / ``margin_rejected_as_a`` (``margin_a_as_a`` / ``margin_b_as_a``): ``logit(A) -
  logit(B)`` in each order, i.e. ``m(x, y)`` and ``m(y, x)``;
- ``position_bias``: ``(m(x, y) + m(y, x)) / 2`` (> 0: the judge favours whatever is shown as A).

Both orders are always scored (one order alone carries the unobserved position bias). A single-response record is
a data error naming its line; with ``on_invalid="skip"`` it, like an invalid record, is written unchanged with
null columns and counted, and so is a record dropped by the over-length policy ``drop``. All sequences of the
file are scored together by the one scoring engine (length batching; the conversation is computed once for both
orders); the output keeps the input order. The tokenized-file cache is not used for judges.
"""

from __future__ import annotations

import time
from itertools import islice

from ..config import DataConfig
from ..data.errors import DataError, SkipReport
from ..data.readers import read_records
from ..judge_scoring import judgements, present


def judge_columns(first: str, second: str) -> tuple[str, str, str, str]:
    """The output columns for a record whose responses are the fields ``first`` and ``second``."""
    return "margin", f"margin_{first}_as_a", f"margin_{second}_as_a", "position_bias"


def _fields(record: dict, data: DataConfig | None) -> tuple[str, str]:
    return ("a", "b") if data is not None and data.format == "ab" else ("chosen", "rejected")


def _pair_parts(rec, data: DataConfig | None):
    """(first field, second field, prompt, first, second) of one record; a single response is a DataError."""
    from .batch import _score_parts

    parts = _score_parts(rec, data)
    if len(parts) != 2:
        from ..data.judge_encode import PAIRWISE_ONLY

        raise DataError(rec.source, rec.line, None, "a single response: " + PAIRWISE_ONLY + "; give each record "
                        "'chosen' and 'rejected' (or --data.format ab with response_a / response_b)",
                        "pairwise_judge_single")
    (na, prompt, a), (nb, _, b) = parts
    return na.removeprefix("reward_"), nb.removeprefix("reward_"), prompt, a, b


def score_pairs_file(scorer, input_path: str, output_path: str, fmt: str, on_invalid: str, progress: bool,
                     data: DataConfig | None, records: tuple[int, int | None], normalize: bool):
    """Score every pair of ``input_path`` with a pairwise judge and write the records with the comparison columns
    (module docstring). Returns :class:`rewardkit.serve.batch.ScoreFileResult`."""
    from tqdm.auto import tqdm

    from .batch import ScoreFileResult, write_records

    if normalize:
        raise ValueError("--normalize rescales rewards; a pairwise judge gives margins between two responses, "
                         "which have no stored reward statistics: leave --normalize out")
    start = time.perf_counter()
    report = SkipReport()
    rows: list[dict] = []
    slots: list[tuple[int, tuple[str, ...]]] = []  # (row, its columns) for each compared record
    encoded = []
    dropped = 0
    for rec in islice(read_records(input_path, on_invalid, report), *records):
        row = dict(rec.data)
        rows.append(row)
        try:
            first, second, prompt, a, b = _pair_parts(rec, data)
            cols = judge_columns(first, second)
            orders = scorer.encoder.encode_group(scorer.renderer.render_orders(prompt, a, b), rec.where)
        except DataError as err:  # invalid, a single response, or too long under truncation: error
            if on_invalid != "skip":
                raise
            report.add(err)
            row.update(dict.fromkeys(judge_columns(*_fields(rec.data, data))))
            continue
        row.update(dict.fromkeys(cols))
        if any(s is None for s in orders):  # over-long under truncation: drop
            dropped += 1
            continue
        slots.append((len(rows) - 1, cols))
        encoded.append(orders)
    seqs = present(encoded)
    with tqdm(total=len(seqs), unit="seq", desc="comparing", disable=not progress) as bar:
        rewards = scorer.score_encoded(seqs, progress=bar.update)
    for (i, cols), j in zip(slots, judgements(encoded, rewards), strict=True):
        rows[i].update(zip(cols, (j.margin, j.margin_a_first, j.margin_b_first, j.position_bias), strict=True))
    write_records(rows, output_path, fmt)  # type: ignore[arg-type]
    return ScoreFileResult(records=len(rows), sequences=len(seqs), skipped=report.summary(), dropped=dropped,
                           truncation=scorer.encoder.stats.summary(), seconds=time.perf_counter() - start)
