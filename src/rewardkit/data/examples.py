"""The one loader: a split into typed examples of any format: read -> (adapter) -> detect format -> validate ->
ratings.

:func:`load_examples` is what training, ``eval`` and ``rewardkit data inspect`` call (through
:func:`read_examples`); it returns :class:`Pair`, :class:`Labeled`, :class:`Rated`, :class:`MultiRated` or
:class:`Ranked` examples (one kind per split), with every skipped record counted in the :class:`SkipReport`.
With ``data.ratings.to_pairs`` scalar ratings come back as :class:`Pair` examples, so the pairwise losses train
on them. ``data.dataset.load_pairs`` and ``formats.parse_pairs`` are this loader with the format pinned to pairs;
the streamed pair path (``data/parallel.py``) reads records with :func:`split_records` and validates them with
the same ``parse_examples``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from itertools import islice

from ..config import DataConfig, RatingsConfig, SplitConfig
from .adapters import get_adapter
from .checks import unique_ids
from .errors import DataError, SkipReport
from .formats import (
    EXAMPLE_TYPES,
    Example,
    Format,
    MultiRated,
    Rated,
    detect_format,
    parse_ab_records,
    parse_examples,
)
from .ratings import ratings_to_pairs, zscore_attributes, zscore_per_annotator, zscore_ratings
from .readers import Record, read_split
from .step_detect import detect_step_layout, peek, step_data_error

log = logging.getLogger(__name__)


def format_of(example: Example) -> Format:
    """The format name of a typed example (``pairs``, ``binary``, ``scalar``, ``multi`` or ``ranked``)."""
    for name, cls in EXAMPLE_TYPES.items():
        if isinstance(example, cls):
            return name  # type: ignore[return-value]
    raise TypeError(f"not a rewardkit example: {type(example).__name__}")


def _detect(records: Iterator[Record], data: DataConfig, source: str) -> tuple[Format, Iterator[Record]]:
    first, records = peek(records)
    if first is None:
        raise DataError(source, None, None, "no records (the file or the row range is empty)", "empty")
    fmt = detect_format(first.data, data.fields)
    if fmt is None and (layout := detect_step_layout(first.data, data)) is not None:
        raise step_data_error(first, layout, data, "one response per record")
    if fmt is None:
        keys = ", ".join(sorted(first.data)[:12])
        raise DataError(first.source, first.line, None, f"cannot tell the format from the keys ({keys}); set "
                        "data.format, map field names with data.fields, or pick a data.adapter", "unknown_format")
    log.info("%s: detected format %r from the first record", source, fmt)
    return fmt, records


def _refuse_step_data(records: Iterator[Record], data: DataConfig, fmt: str) -> Iterator[Record]:
    """An explicit response format given a step file: say so at its first record, not 'field missing'."""
    first, records = peek(records)
    if first is not None and detect_format(first.data, data.fields) is None:
        if (layout := detect_step_layout(first.data, data)) is not None:
            raise step_data_error(first, layout, data, f"format {fmt} (one response per record)")
    return records


def plain_pairs(split: SplitConfig, data: DataConfig) -> bool:
    """Whether a pairwise task reads ``split`` as plain pairs: no adapter, no ratings -> pairs, and
    ``data.format`` auto or pairs. Such a split is read as pairs, not detected (a bad first record is then a
    skippable pair error, not an unknown format), and may be streamed record by record (``data/parallel.py``)."""
    return ((split.adapter or data.adapter) is None and data.format in ("auto", "pairs")
            and data.ratings.to_pairs == "off")


def split_records(split: SplitConfig, data: DataConfig, report: SkipReport) -> Iterator[Record]:
    """The records of ``split``'s row range, undecodable lines and repeated ids raised or counted."""
    records = islice(read_split(split, data.on_invalid, report), split.start, split.stop)
    return unique_ids(records, data.fields.id, data.on_invalid, report)


def empty_message(split: SplitConfig, report: SkipReport, skipped: int) -> str:
    """Why a split yielded nothing, and what to do about it."""
    if skipped:
        return (f"no usable records: all {skipped} were invalid and skipped ({dict(report.skipped)}); fix them, or "
                "run with data.on_invalid: error to stop at the first one")
    if split.start or split.stop is not None:
        return (f"no records in the row range [{split.start}, {split.stop}); check the split's start and stop "
                "against the file's length")
    return "the file holds no records; check the path, or that the file was fully written"


def read_examples(split: SplitConfig, data: DataConfig, report: SkipReport,
                  records: Iterable[Record] | None = None) -> tuple[Format, list[Example]]:
    """Read and validate a split without the ratings post-processing; returns (format, examples).

    ``records`` replaces reading ``split.path`` (the row range still applies), e.g. to count raw records.
    """
    if records is None:
        records = read_split(split, data.on_invalid, report)
    records = islice(records, split.start, split.stop)
    adapter_name = split.adapter or data.adapter
    if adapter_name is not None:
        adapter = get_adapter(adapter_name)
        fmt = adapter.resolve_format(data.format)
        return fmt, list(adapter.examples(records, fmt, data.fields, data.on_invalid, report))
    # a repeated record id is an error (or a counted skip)
    records = unique_ids(records, data.fields.id, data.on_invalid, report)
    if data.format == "steps":
        raise ValueError("data.format steps is read by the step losses (loss.name step_bce or step_ce, model.head "
                         "step; docs/prm.md), not by this one")
    if data.format == "auto":
        fmt, records = _detect(records, data, split.path)
    else:
        fmt = data.format  # type: ignore[assignment]
        records = _refuse_step_data(iter(records), data, fmt)
    if fmt == "ab":  # A/B judgments become pairs (ties counted and skipped), or ranked lists of two (ties kept)
        return ("ranked" if data.ties == "train" else "pairs"), list(parse_ab_records(
            records, data.fields, data.winner, data.strength, data.on_invalid, report, data.ties))
    return fmt, list(parse_examples(records, fmt, data.fields, data.on_invalid, report))


def apply_ratings(examples: list[Example], cfg: RatingsConfig) -> list[Example]:
    """Z-scores (per annotator, or over the split) and ratings -> pairs, as configured; multi-attribute ratings
    take ``normalize: zscore`` (per attribute); other formats pass through unchanged."""
    if examples and isinstance(examples[0], MultiRated) and cfg.normalize == "zscore" and cfg.to_pairs == "off":
        return list(zscore_attributes(examples))  # type: ignore[arg-type]
    if not examples or not isinstance(examples[0], Rated):
        if cfg.normalize != "none" or cfg.to_pairs != "off":
            log.warning("data.ratings %s applies to scalar ratings only%s; ignored for this data",
                        "to_pairs" if cfg.to_pairs != "off" else f"normalize {cfg.normalize}",
                        " (normalize zscore: also multi-attribute)" if cfg.normalize == "zscore" else "")
        return examples
    rated: list[Rated] = examples  # type: ignore[assignment]
    if cfg.normalize == "annotator_zscore":
        if all(r.annotator is None for r in rated):
            log.warning("data.ratings.normalize: no record names an annotator; all ratings form one group")
        rated = zscore_per_annotator(rated)
    elif cfg.normalize == "zscore":
        rated = zscore_ratings(rated)
    if cfg.to_pairs != "off":
        pairs = ratings_to_pairs(rated, cfg.to_pairs, cfg.min_gap, cfg.gap_as_margin)
        log.info("made %d preference pairs from %d ratings (%s, min gap %g)", len(pairs), len(rated), cfg.to_pairs,
                 cfg.min_gap)
        return list(pairs)
    return list(rated)


def load_examples(split: SplitConfig, data: DataConfig, report: SkipReport | None = None) -> list[Example]:
    """Every usable example of ``split`` as typed examples; raises when none is left."""
    report = report if report is not None else SkipReport()
    skipped_before = report.total
    _, examples = read_examples(split, data, report)
    if not examples:
        raise DataError(split.path, None, None, empty_message(split, report, report.total - skipped_before), "empty")
    read = len(examples)
    examples = apply_ratings(examples, data.ratings)
    if not examples:
        r = data.ratings
        raise DataError(split.path, None, None, f"data.ratings.to_pairs {r.to_pairs} made no pair from the {read} "
                        f"ratings (min gap {r.min_gap}); lower data.ratings.min_gap or check the grouping", "empty")
    return examples
