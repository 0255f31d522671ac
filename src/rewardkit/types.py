"""Batch and output dataclasses. Shapes: N rows, L tokens per row, B pairs."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class TokenBatch:
    """Padded token rows, one sequence per row."""

    input_ids: torch.Tensor  # [N, L] long
    attention_mask: torch.Tensor  # [N, L] long, 1 on real tokens
    position_ids: torch.Tensor  # [N, L] long, 0..len-1 over each row's real tokens (either padding side)
    score_index: torch.Tensor  # [N] long, column of the score token in each row
    token_type_ids: torch.Tensor | None = None  # [N, L] long, segment ids (encoders)
    response_start: torch.Tensor | None = None
    """[N] long, column of the first response token in each row (decoders' response-only ``mean`` pooling reads
    columns ``response_start .. score_index``); None where the batch was built without it."""

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name).to(device))
                             for f in fields(self)})

    @property
    def num_tokens(self) -> int:
        return int(self.attention_mask.sum())

    @property
    def num_slots(self) -> int:
        """Tokens computed including padding (N x L), as :attr:`PackedBatch.num_slots`."""
        return int(self.input_ids.numel())


@dataclass
class PairBatch:
    """``tokens`` holds 2B rows: rows [0, B) are the chosen responses, rows [B, 2B) the rejected ones."""

    tokens: TokenBatch
    margin: torch.Tensor  # [B] float32

    @property
    def num_pairs(self) -> int:
        return int(self.margin.shape[0])

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.tokens.to(device), self.margin.to(device))
