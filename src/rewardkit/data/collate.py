"""Encoded sequences -> padded batches (either padding side; scores do not depend on it)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..types import PairBatch, TokenBatch
from .tokenize import Encoded


def pad_batch(seqs: Sequence[Encoded], pad_id: int, side: str = "right") -> TokenBatch:
    """Pad to the longest sequence of this batch (never to a global maximum)."""
    n, width = len(seqs), max(len(s.input_ids) for s in seqs)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    pos = torch.zeros((n, width), dtype=torch.long)
    score = torch.empty(n, dtype=torch.long)
    start_col = torch.empty(n, dtype=torch.long)
    has_types = seqs[0].token_type_ids is not None
    types = torch.zeros((n, width), dtype=torch.long) if has_types else None
    for i, s in enumerate(seqs):
        length = len(s.input_ids)
        start = 0 if side == "right" else width - length
        ids[i, start:start + length] = torch.tensor(s.input_ids)
        mask[i, start:start + length] = 1
        pos[i, start:start + length] = torch.arange(length)
        score[i] = start + s.score_index
        start_col[i] = start + s.response_start
        if has_types:
            types[i, start:start + length] = torch.tensor(s.token_type_ids)
    return TokenBatch(ids, mask, pos, score, types, start_col)


def pair_batch(chosen: Sequence[Encoded], rejected: Sequence[Encoded], margins: Sequence[float],
               pad_id: int, side: str = "right") -> PairBatch:
    tokens = pad_batch(list(chosen) + list(rejected), pad_id, side)
    return PairBatch(tokens, torch.tensor(list(margins), dtype=torch.float32))
