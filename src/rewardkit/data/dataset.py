"""Encoded pairs: render -> tokenize (reading and validating is :mod:`rewardkit.data.examples`, the one loader)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from ..config import DataConfig, SplitConfig
from .errors import SkipReport
from .examples import empty_message, format_of, load_examples  # noqa: F401  (public names of this module)
from .formats import Pair
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
    """The pairs of ``split``: the one loader (:func:`load_examples`) with ``data.format`` pinned to pairs."""
    return load_examples(split, replace(data, format="pairs"), report)  # type: ignore[return-value]


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
