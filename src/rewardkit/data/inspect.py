"""`rewardkit data inspect FILE`: what a data file holds before you train on it.

Prints the detected format, how many records became examples and how many were skipped (by reason), the
length of prompts and responses (in tokens with a tokenizer, else in characters), facts specific to the
format (label balance, rating spread per annotator, attribute coverage, list sizes and ties), and the first
invalid records with their ``file:line: field`` errors. Invalid records never stop the inspection.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from ..config import DataConfig, FieldsConfig, SplitConfig
from .errors import DataError, SkipReport
from .examples import read_examples
from .formats import Example, Labeled, MultiRated, Pair, Ranked, Rated, Text
from .ratings import annotator_stats
from .readers import Record, read_records
from .render import render_plain_messages


@dataclass(frozen=True)
class LengthStats:
    count: int
    min: int
    mean: float
    median: float
    p95: int
    max: int

    @staticmethod
    def of(values: list[int]) -> LengthStats | None:
        if not values:
            return None
        s = sorted(values)
        p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
        return LengthStats(len(s), s[0], round(statistics.fmean(s), 1), statistics.median(s), p95, s[-1])


@dataclass
class Inspection:
    path: str
    format: str | None
    adapter: str | None
    records: int
    examples: int
    unit: str
    """"tokens" (with a tokenizer) or "characters"."""
    prompt_lengths: LengthStats | None = None
    response_lengths: LengthStats | None = None
    details: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)
    first_invalid: list[str] = field(default_factory=list)
    error: str | None = None
    """Set when the file could not be read at all (unknown format, unreadable file)."""

    def to_dict(self) -> dict:
        return asdict(self)


def _text(value: Text) -> str:
    return value if isinstance(value, str) else render_plain_messages(value)


def _responses(ex: Example) -> list[Text]:
    if isinstance(ex, Pair):
        return [ex.chosen, ex.rejected]
    if isinstance(ex, Ranked):
        return list(ex.responses)
    return [ex.response]


def _details(examples: list[Example]) -> dict:
    if not examples:
        return {}
    first = examples[0]
    if isinstance(first, Pair):
        return {"with_margin": sum(p.margin is not None for p in examples)}
    if isinstance(first, Labeled):
        counts = Counter(e.label for e in examples)
        return {"label_1": counts[1], "label_0": counts[0]}
    if isinstance(first, Rated):
        scores = [e.score for e in examples]
        stats = annotator_stats(examples)
        named = {str(k): {"count": s.count, "mean": round(s.mean, 4), "std": round(s.std, 4)}
                 for k, s in stats.items() if k is not None}
        items = Counter(e.group if e.group is not None else _text(e.prompt) for e in examples)
        return {"score_min": min(scores), "score_mean": round(statistics.fmean(scores), 4), "score_max": max(scores),
                "annotators": len(named), "per_annotator": dict(list(named.items())[:20]),
                "items_with_several_ratings": sum(1 for n in items.values() if n > 1)}
    if isinstance(first, MultiRated):
        names = sorted({k for e in examples for k in e.scores})
        return {"attributes": {k: {"rated": sum(e.scores.get(k) is not None for e in examples),
                                   "missing": sum(e.scores.get(k) is None for e in examples)} for k in names}}
    if isinstance(first, Ranked):
        sizes = Counter(len(e.ranks) for e in examples)
        return {"list_sizes": dict(sorted(sizes.items())),
                "lists_with_ties": sum(len(set(e.ranks)) < len(e.ranks) for e in examples),
                "pairs_k_choose_2": sum(len(e.ranks) * (len(e.ranks) - 1) // 2 for e in examples)}
    return {}


class CountedRecords:
    """The records of ``path`` (undecodable lines skipped into ``report``), counting how many were read."""

    def __init__(self, path: str, report: SkipReport, options=None):
        self.path, self.report, self.n, self.options = path, report, 0, options

    def __iter__(self) -> Iterator[Record]:
        for rec in read_records(self.path, "skip", self.report, self.options):
            self.n += 1
            yield rec


def inspect_data(path: str, *, format: str = "auto", adapter: str | None = None, tokenizer=None,
                 fields: FieldsConfig | None = None, max_errors: int = 5, data: DataConfig | None = None,
                 options=None) -> Inspection:
    """Read ``path`` skipping (and counting) invalid records; ``tokenizer`` is a loaded tokenizer or None.
    ``data`` (e.g. from ``--data.*`` overrides) replaces format, adapter and fields; ``options``
    (:class:`~rewardkit.data.hf_datasets.DatasetsOptions`) choose the split of a `datasets` source."""
    if data is not None:
        format, adapter = data.format, data.adapter
        data = dataclasses.replace(data, on_invalid="skip")
    else:
        data = DataConfig(format=format, adapter=adapter, fields=fields or FieldsConfig(),  # type: ignore[arg-type]
                          on_invalid="skip")
    from .step_inspect import inspect_steps, is_step_input  # it builds on this module's Inspection

    if is_step_input(path, data, options):
        return inspect_steps(path, data, tokenizer, max_errors, options)
    report = SkipReport(max_examples=max_errors)
    counted = CountedRecords(path, report, options)

    unit = "tokens" if tokenizer is not None else "characters"
    ins = Inspection(path=path, format=None, adapter=adapter, records=0, examples=0, unit=unit)
    try:
        fmt, examples = read_examples(SplitConfig(path=path), data, report, iter(counted))
    except (DataError, ValueError) as e:
        ins.error = str(e)
        ins.records = counted.n
        ins.skipped, ins.first_invalid = dict(report.skipped), list(report.examples)
        return ins

    def length(value: Text) -> int:
        text = _text(value)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else len(text)

    ins.format, ins.records, ins.examples = fmt, counted.n, len(examples)
    ins.prompt_lengths = LengthStats.of([length(e.prompt) for e in examples])
    ins.response_lengths = LengthStats.of([length(r) for e in examples for r in _responses(e)])
    if tokenizer is not None and examples and ins.response_lengths and ins.response_lengths.max == 0:
        raise ValueError("the tokenizer turned every response into 0 tokens; is it a complete tokenizer "
                         "(tokenizer.json or vocabulary files)?")
    ins.details = _details(examples)
    ins.skipped, ins.first_invalid = dict(report.skipped), list(report.examples)
    return ins


def _fmt_lengths(s: LengthStats | None) -> str:
    if s is None:
        return "-"
    return f"min {s.min}, mean {s.mean}, median {s.median}, p95 {s.p95}, max {s.max}  (n={s.count})"


def format_inspection(ins: Inspection) -> str:
    lines = [f"file      {ins.path}"]
    if ins.adapter:
        lines.append(f"adapter   {ins.adapter}")
    if ins.error:
        lines.append(f"error     {ins.error}")
    else:
        lines += [f"format    {ins.format}",
                  f"records   {ins.records} read, {ins.examples} examples",
                  f"prompt    {ins.unit}: {_fmt_lengths(ins.prompt_lengths)}",
                  f"{'step' if ins.format == 'steps' else 'response':9s} {ins.unit}: {_fmt_lengths(ins.response_lengths)}"]
        for k, v in ins.details.items():
            lines.append(f"{k:9s} {v}")
    total = sum(ins.skipped.values())
    if total:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(ins.skipped.items(), key=lambda kv: -kv[1]))
        lines.append(f"skipped   {total} ({reasons})")
        lines.append("first skipped records:")
        lines += [f"  {e}" for e in ins.first_invalid]
    else:
        lines.append("skipped   0")
    return "\n".join(lines)
