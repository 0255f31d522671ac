"""Load a split into encoded pairs: read -> validate -> render -> tokenize, with every skip counted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import islice

from ..config import DataConfig, SplitConfig
from .checks import unique_ids
from .errors import DataError, SkipReport
from .examples import format_of, load_examples  # noqa: F401  (typed examples of every format)
from .formats import Pair, parse_pairs
from .readers import read_records
from .render import Renderer
from .tokenize import Encoded, SequenceEncoder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncodedPair:
    chosen: Encoded
    rejected: Encoded
    margin: float | None
    where: str
    chosen_chars: int
    """Length of the chosen response text (for the longer-response baseline)."""
    rejected_chars: int

    @property
    def num_tokens(self) -> int:
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)


def load_pairs(split: SplitConfig, data: DataConfig, report: SkipReport | None = None) -> list[Pair]:
    report = report if report is not None else SkipReport()
    records = read_records(split.path, data.on_invalid, report)
    records = unique_ids(islice(records, split.start, split.stop), data.fields.id, data.on_invalid, report)
    skipped_before = report.total
    pairs = list(parse_pairs(records, data.fields, data.on_invalid, report))
    if not pairs:
        raise DataError(split.path, None, None, empty_message(split, report, report.total - skipped_before), "empty")
    return pairs


def empty_message(split: SplitConfig, report: SkipReport, skipped: int) -> str:
    """Why a split yielded nothing, and what to do about it."""
    if skipped:
        return (f"no usable records: all {skipped} were invalid and skipped ({dict(report.skipped)}); fix them, or "
                "run with data.on_invalid: error to stop at the first one")
    if split.start or split.stop is not None:
        return (f"no records in the row range [{split.start}, {split.stop}); check the split's start and stop "
                "against the file's length")
    return "the file holds no records; check the path, or that the file was fully written"


def _response_chars(value) -> int:
    return len(value) if isinstance(value, str) else sum(len(m["content"]) for m in value)


def encode_pairs(pairs: list[Pair], renderer: Renderer, encoder: SequenceEncoder) -> list[EncodedPair]:
    """Render and tokenize; over-long pairs follow the encoder's policy (dropped ones are counted there), chosen
    and rejected truncated together so they keep the same prompt tokens."""
    out = []
    for p in pairs:
        # one group: an over-long pair loses the same prompt tokens from both sequences (identical contexts)
        # a pairwise judge (data/judge_encode.py): both replies in one context, chosen shown as A, then rejected
        rendered = renderer.render_orders(p.prompt, p.chosen, p.rejected) if getattr(renderer, "pairwise", False) \
            else [renderer.render(p.prompt, p.chosen), renderer.render(p.prompt, p.rejected)]
        c, r = encoder.encode_group(rendered, p.where, names=("chosen", "rejected"))
        if c is None or r is None:
            continue
        out.append(EncodedPair(c, r, p.margin, p.where, _response_chars(p.chosen), _response_chars(p.rejected)))
    return out
