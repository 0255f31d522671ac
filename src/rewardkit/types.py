"""Batch dataclasses. Shapes: N rows, L tokens per row, B pairs; packed rows: R rows, M scored sequences."""

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

    def read_index(self) -> ReadIndex:
        """The packed-style index of this batch: row i is sequence i, its columns 0..L-1."""
        n, width = self.input_ids.shape
        rows = torch.arange(n, device=self.input_ids.device)
        cols = torch.arange(width, device=self.input_ids.device).expand(n, width)
        return ReadIndex(rows, self.score_index, cols, self.attention_mask, self.score_index, self.response_start)


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


@dataclass
class PackedBatch:
    """R packed rows of L tokens; M scored sequences. Pad tokens have ``group_ids == -1``."""

    input_ids: torch.Tensor  # [R, L] long
    position_ids: torch.Tensor  # [R, L] long: per sequence, as in its own padded row
    group_ids: torch.Tensor  # [R, L] long: group index within the row, -1 on padding
    branch_ids: torch.Tensor  # [R, L] long: 0 on a shared prefix (and all encoder tokens), k >= 1 on branch k
    score_row: torch.Tensor  # [M] long: row of each scored sequence's score token
    score_col: torch.Tensor  # [M] long: column of it
    token_col: torch.Tensor  # [M, W] long: columns (in row score_row) of each sequence's tokens, in order
    token_mask: torch.Tensor  # [M, W] long: 1 on real tokens (right-padded, like a padded batch's mask)
    causal: bool
    """True for decoders (tree-shaped causal mask), False for encoders (block-diagonal, both ways)."""
    token_type_ids: torch.Tensor | None = None  # [R, L] long (encoders)
    response_start: torch.Tensor | None = None
    """[M] long: each sequence's first response token, as an index into its ``token_col`` row (its position in
    its own sequence). A tree row stores the prompt once, so a branch's response tokens may begin on the shared
    prefix (when sibling responses start alike); ``token_col`` maps them either way."""

    def to(self, device: torch.device | str) -> PackedBatch:
        return PackedBatch(**{f.name: (v.to(device) if isinstance(v := getattr(self, f.name), torch.Tensor) else v)
                              for f in fields(self)})

    @property
    def num_tokens(self) -> int:
        """Real (non-pad) tokens: what the model actually has to compute."""
        return int((self.group_ids >= 0).sum())

    @property
    def num_slots(self) -> int:
        """Tokens computed including padding (R x L)."""
        return int(self.input_ids.numel())

    def read_index(self) -> ReadIndex:
        last = self.token_mask.sum(1) - 1  # the score token ends every sequence (data/tokenize.py)
        return ReadIndex(self.score_row, self.score_col, self.token_col, self.token_mask, last, self.response_start)


@dataclass
class ReadIndex:
    """Where each scored sequence's tokens sit in the backbone's output rows: the one view the read-out
    (:func:`rewardkit.models.readout.read_out`) takes, for padded batches (one sequence per row, identity
    columns) and packed rows alike. M sequences, W tokens per sequence."""

    score_row: torch.Tensor  # [M] long: output row holding the sequence's score token
    score_col: torch.Tensor  # [M] long: its column
    token_col: torch.Tensor  # [M, W] long: columns (in row score_row) of the sequence's tokens, in order
    token_mask: torch.Tensor  # [M, W] long: 1 on real tokens
    score_pos: torch.Tensor  # [M] long: index of the score token within the sequence's ``token_col`` row
    response_start: torch.Tensor | None = None  # [M] long: first response token, same indexing as score_pos
