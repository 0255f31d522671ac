"""Padding-free rows: each group's shared prompt once, its responses as branches, several groups per row.

A *group* is the set of sequences scored together (chosen and rejected of a pair, or the K responses of a
ranked list). For causal decoders a row holds, per group::

    [ shared prefix | branch 1 | branch 2 | ... ]   then the next group, then padding up to the row length

A branch sees the shared prefix and itself, never a sibling; its position ids continue from the prefix's end,
so every token sees exactly the tokens and positions it sees in its own padded row: rewards and gradients are
the padded computation's, with the prompt computed once. Groups never see each other (block-diagonal).

The shared prefix is the common prefix of the group's *already encoded* token ids, not the tokenized prompt:
the padded path tokenizes prompt + response as one text and BPE may merge tokens across the boundary, so
only the common ids are guaranteed identical. It is capped so that every branch keeps at least its score token.

Encoders attend both ways, so they cannot share a prefix: each sequence is its own block (``branch`` 0),
position ids restart at 0, token type ids are kept.

The attention pattern travels as two small integer maps per row (``group_ids``, ``branch_ids``); the model
turns them into a boolean 4-D mask (SDPA), an additive one (eager) or a flex-attention block mask (CUDA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from ..types import PackedBatch  # noqa: F401  (its home was here; kept importable)
from .tokenize import Encoded

PackKind = Literal["decoder", "encoder"]


@dataclass(frozen=True)
class _Group:
    """One group laid out as a contiguous segment: token ids, positions, branch ids, score offsets."""

    ids: list[int]
    pos: list[int]
    branch: list[int]
    types: list[int] | None
    score_offsets: list[int]  # per member, in member order
    member_cols: list[list[int]]  # per member, the segment columns of its tokens in sequence order
    response_starts: list[int]  # per member, its first response token's index in its own sequence


def shared_prefix_length(seqs: Sequence[Encoded]) -> int:
    """Common leading token ids of all sequences, capped so each keeps at least its score token unshared."""
    first = seqs[0].input_ids
    n = min(len(s.input_ids) for s in seqs)
    n = min(n, min(s.score_index for s in seqs))
    for i in range(n):
        if any(s.input_ids[i] != first[i] for s in seqs[1:]):
            return i
    return n


def _layout_decoder(seqs: Sequence[Encoded]) -> _Group:
    p = shared_prefix_length(seqs) if len(seqs) > 1 else 0
    ids, pos, branch = list(seqs[0].input_ids[:p]), list(range(p)), [0] * p
    offsets, cols = [], []
    for k, s in enumerate(seqs, start=1):
        start = len(ids) - p  # the segment offset of token p of this sequence
        tail = s.input_ids[p:]
        cols.append(list(range(p)) + list(range(len(ids), len(ids) + len(tail))))
        ids += tail
        pos += range(p, p + len(tail))
        branch += [k] * len(tail)
        offsets.append(start + s.score_index)
    return _Group(ids, pos, branch, None, offsets, cols, [s.response_start for s in seqs])


def _layout_encoder(seqs: Sequence[Encoded]) -> list[_Group]:
    return [_Group(list(s.input_ids), list(range(len(s.input_ids))), [0] * len(s.input_ids),
                   list(s.token_type_ids) if s.token_type_ids is not None else None, [s.score_index],
                   [list(range(len(s.input_ids)))], [s.response_start])
            for s in seqs]


def shares_prefix(seqs: Sequence[Encoded], attention_cost: float | None) -> bool:
    """Whether laying the group out as one tree (prompt once) is cheaper than one plain segment per sequence.

    Sharing saves ``(K - 1) x prompt`` tokens of dense-layer work but puts every branch in one segment whose
    attention the CPU SDPA kernel computes densely, siblings included: with a short prompt and long responses
    (nothing much to share) the tree costs more than separate sequences. ``attention_cost`` is the cost of one
    (query, key) pair relative to one token through the dense layers (:func:`rewardkit.models.packed.
    attention_cost`); None always shares.
    """
    if attention_cost is None or len(seqs) < 2:
        return True
    tree = len(_layout_decoder(seqs).ids)
    lengths = [len(s.input_ids) for s in seqs]
    return tree + attention_cost * tree ** 2 <= sum(lengths) + attention_cost * sum(n * n for n in lengths)


def _segments(seqs: Sequence[Encoded], kind: PackKind, share: bool) -> list[_Group]:
    """Decoders: one tree segment per group (``share``), or one segment per sequence; encoders: one segment per
    sequence. Segments keep member order, so scores stay group-major either way."""
    if kind == "encoder":
        return _layout_encoder(seqs)
    return [_layout_decoder(seqs)] if share else [_layout_decoder([s]) for s in seqs]


def group_tokens(seqs: Sequence[Encoded], kind: PackKind, attention_cost: float | None = None) -> int:
    """Tokens a group occupies once packed (for token budgets and row planning)."""
    return sum(len(g.ids) for g in _segments(seqs, kind, shares_prefix(seqs, attention_cost)))


def _first_fit(lengths: list[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: segment indices per row. A segment longer than ``capacity`` gets its own row."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for r, free in enumerate(room):
            if lengths[i] <= free:
                rows[r].append(i)
                room[r] -= lengths[i]
                break
        else:
            rows.append([i])
            room.append(capacity - lengths[i])
    return rows


def _row_plan(lengths: list[int], row_tokens: int | None) -> tuple[list[list[int]], int]:
    """Rows (segment indices, first-fit) and their common width."""
    capacity = max(row_tokens or 0, max(lengths))
    rows = _first_fit(lengths, capacity)
    return rows, max(sum(lengths[i] for i in r) for r in rows)


def _choose_layout(groups: Sequence[Sequence[Encoded]], kind: PackKind, row_tokens: int | None,
                   attention_cost: float | None) -> list[_Group]:
    """The segments to pack: every decoder group as a tree when ``attention_cost`` is None; otherwise the
    cheapest of (all trees, each group's own choice, all sequences apart) for this batch's actual rows, at
    ``R x L`` slots of dense-layer work plus ``attention_cost x R x L^2`` of dense attention. Judged per batch
    because mixing trees and single sequences can leave rows half empty."""
    def layout(share) -> list[_Group]:
        return [seg for g in groups for seg in _segments(g, kind, share(g))]

    if kind == "encoder" or attention_cost is None:
        return layout(lambda g: True)
    best, best_cost = None, math.inf
    for share in (lambda g: True, lambda g: shares_prefix(g, attention_cost), lambda g: False):
        segments = layout(share)
        rows, width = _row_plan([len(s.ids) for s in segments], row_tokens)
        cost = len(rows) * width * (1 + attention_cost * width)
        if cost < best_cost:
            best, best_cost = segments, cost
    return best


def pack_groups(groups: Sequence[Sequence[Encoded]], kind: PackKind, pad_id: int,
                row_tokens: int | None = None, attention_cost: float | None = None) -> PackedBatch:
    """Pack groups of sequences into rows; scores come out group-major (g0m0, g0m1, ..., g1m0, ...).

    ``row_tokens`` is the row capacity; None (or a value below the longest segment) uses the longest
    segment, so no row is longer than the longest group needs and attention stays as cheap as possible.
    ``attention_cost``: see :func:`shares_prefix` (None: every decoder group shares its prompt).
    """
    if not groups:
        raise ValueError("pack_groups needs at least one group")
    segments = _choose_layout(groups, kind, row_tokens, attention_cost)
    first_slot, slot = [], 0  # the score slot of each segment's first member
    for seg in segments:
        first_slot.append(slot)
        slot += len(seg.score_offsets)
    lengths = [len(s.ids) for s in segments]
    rows, width = _row_plan(lengths, row_tokens)
    n_rows = len(rows)
    ids = torch.full((n_rows, width), pad_id, dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    grp = torch.full((n_rows, width), -1, dtype=torch.long)
    br = torch.zeros((n_rows, width), dtype=torch.long)
    has_types = segments[0].types is not None
    types = torch.zeros((n_rows, width), dtype=torch.long) if has_types else None
    score_row = torch.empty(slot, dtype=torch.long)
    score_col = torch.empty(slot, dtype=torch.long)
    seq_width = max(len(c) for s in segments for c in s.member_cols)
    token_col = torch.zeros((slot, seq_width), dtype=torch.long)
    token_mask = torch.zeros((slot, seq_width), dtype=torch.long)
    response_start = torch.empty(slot, dtype=torch.long)
    for r, members in enumerate(rows):
        col = 0
        for j, i in enumerate(sorted(members)):  # keep the input order inside a row (deterministic layout)
            s, n = segments[i], lengths[i]
            ids[r, col:col + n] = torch.tensor(s.ids)
            pos[r, col:col + n] = torch.tensor(s.pos)
            grp[r, col:col + n] = j
            br[r, col:col + n] = torch.tensor(s.branch)
            if has_types:
                types[r, col:col + n] = torch.tensor(s.types)
            first = first_slot[i]
            for m, off in enumerate(s.score_offsets):
                score_row[first + m] = r
                score_col[first + m] = col + off
                member = s.member_cols[m]
                token_col[first + m, :len(member)] = col + torch.tensor(member)
                token_mask[first + m, :len(member)] = 1
                response_start[first + m] = s.response_starts[m]
            col += n
    return PackedBatch(ids, pos, grp, br, score_row, score_col, token_col, token_mask, causal=kind == "decoder",
                       token_type_ids=types, response_start=response_start)


def pack_pairs(chosen: Sequence[Encoded], rejected: Sequence[Encoded], kind: PackKind, pad_id: int,
               row_tokens: int | None = None, attention_cost: float | None = None) -> PackedBatch:
    """Pairs as two-member groups, scores reordered like :class:`~rewardkit.types.PairBatch`: all chosen
    first, then all rejected, so the same loss code reads ``rewards[:B]`` and ``rewards[B:]``."""
    packed = pack_groups(list(zip(chosen, rejected, strict=True)), kind, pad_id, row_tokens, attention_cost)
    b = len(chosen)
    order = torch.cat([torch.arange(0, 2 * b, 2), torch.arange(1, 2 * b, 2)])
    packed.score_row, packed.score_col = packed.score_row[order], packed.score_col[order]
    packed.token_col, packed.token_mask = packed.token_col[order], packed.token_mask[order]
    packed.response_start = packed.response_start[order]
    return packed


def attention_allowed(group_ids: torch.Tensor, branch_ids: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean [R, 1, L, L] mask, True where query i may attend to key j.

    Same group; for decoders also j <= i and (j on the shared prefix or on i's own branch). Padding
    attends only to itself so no softmax row is empty (an empty row gives NaN, and NaN * 0 gradient is NaN).
    """
    g_q, g_k = group_ids[:, :, None], group_ids[:, None, :]
    allowed = (g_q == g_k) & (g_k >= 0)
    if causal:
        n = group_ids.shape[1]
        idx = torch.arange(n, device=group_ids.device)
        allowed &= idx[None, :, None] >= idx[None, None, :]
        b_q, b_k = branch_ids[:, :, None], branch_ids[:, None, :]
        allowed &= (b_k == 0) | (b_k == b_q)
    allowed |= torch.eye(group_ids.shape[1], dtype=torch.bool, device=group_ids.device)[None] & (g_q < 0)
    return allowed[:, None]


def token_budget_batches(costs: list[int], max_tokens: int, order: list[int], members: list[int] | None = None,
                         max_members: int | None = None) -> list[list[int]]:
    """Cut ``order`` (already length-grouped) into batches whose cost stays within ``max_tokens``.

    ``costs[i]`` is what example i adds to a batch: its packed tokens (padded batches cost rows x the widest
    row instead: :func:`padded_budget_batches`). An example costlier than the budget gets a batch of its own.
    With ``max_members``, a batch also holds at most that many sequences, example i counting ``members[i]``.
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    used = count = 0
    for i in order:
        n = members[i] if members is not None else 1
        if cur and (used + costs[i] > max_tokens or (max_members is not None and count + n > max_members)):
            batches.append(cur)
            cur, used, count = [], 0, 0
        cur.append(i)
        used += costs[i]
        count += n
    if cur:
        batches.append(cur)
    return batches


def padded_budget_batches(widths: list[int], rows_per_example: int, max_tokens: int,
                          order: list[int], max_examples: int | None = None) -> list[list[int]]:
    """Like :func:`token_budget_batches` for padded batches: cost = rows x the widest example so far; at most
    ``max_examples`` examples per batch when given. Shared by training and :mod:`rewardkit.serve.scorer`."""
    batches: list[list[int]] = []
    cur: list[int] = []
    widest = 0
    for i in order:
        w = max(widest, widths[i])
        full = max_examples is not None and len(cur) >= max_examples
        if cur and ((len(cur) + 1) * rows_per_example * w > max_tokens or full):
            batches.append(cur)
            cur, w = [], widths[i]
        cur.append(i)
        widest = w
    if cur:
        batches.append(cur)
    return batches


def packed_pair_batch(chosen: Sequence[Encoded], rejected: Sequence[Encoded], margins: Sequence[float],
                      kind: PackKind, pad_id: int, row_tokens: int | None = None,
                      attention_cost: float | None = None):
    """A :class:`~rewardkit.types.PairBatch` whose ``tokens`` are packed rows: ``model(batch.tokens)`` gives
    the same [2B] rewards (chosen, then rejected) as the padded batch, so the loss code does not change."""
    from ..types import PairBatch

    return PairBatch(pack_pairs(chosen, rejected, kind, pad_id, row_tokens, attention_cost),
                     torch.tensor(list(margins), dtype=torch.float32))


def budget_batches(pairs: Sequence, max_tokens: int, packed: bool, kind: PackKind,
                   attention_cost: float | None = None) -> list[list[int]]:
    """Pair indices cut into micro-batches of at most ``max_tokens`` computed tokens.

    Pairs are sorted by length over the whole set (so the batches, and their number, are the same every
    epoch; :func:`shuffled_batches` changes their order per epoch). Packed: the pair's packed tokens
    (prompt once); padded: 2 rows x the widest sequence of the batch.
    """
    if packed:
        costs = [group_tokens([p.chosen, p.rejected], kind, attention_cost) for p in pairs]
        order = sorted(range(len(pairs)), key=lambda i: -costs[i])
        return token_budget_batches(costs, max_tokens, order)
    widths = [max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in pairs]
    order = sorted(range(len(pairs)), key=lambda i: -widths[i])
    return padded_budget_batches(widths, 2, max_tokens, order)


def shuffled_batches(batches: list[list[int]], seed: int, epoch: int) -> list[list[int]]:
    """The fixed token-budget batches in a seeded order for this epoch (the same on every rerun)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return [batches[i] for i in torch.randperm(len(batches), generator=g).tolist()]
