"""The one read-out: backbone hidden states -> the head's outputs -> one reward per sequence.

Padded batches and packed rows both hand it a :class:`~rewardkit.types.ReadIndex` (where each sequence's
tokens and score token sit in the output rows), so pooling, the per-token head and the encoder's own
classifier are written once. What differs between heads (number of outputs, values at every token, how the
outputs combine) comes from the head registry (:mod:`rewardkit.models.head_kinds`).
"""

from __future__ import annotations

import torch
from torch import nn

from ..types import ReadIndex
from .fp32 import FP32Head
from .heads import RewardOutput, combine, masked_mean, span_mask


def read_out(model, hidden: torch.Tensor, index: ReadIndex) -> RewardOutput:
    """``model`` (a :class:`~rewardkit.models.reward_model.RewardModel`): its spec, head and extras; ``hidden``
    [R, L, H] the backbone's last hidden states. ``token_values`` come back as [M, W], real where
    ``index.token_mask`` is 1."""
    spec = model.spec
    token_values = None
    if getattr(spec.head_kind, "token_logits", False):  # step head: every token's outputs, read at the step ends
        token_logits = model._head()(hidden).float()  # [R, L, C] in the batch's row layout (padded batches)
        logits = token_logits[index.score_row, index.score_col]  # the row's last step end
        return RewardOutput(combine(logits, spec, model.extras), logits, token_logits=token_logits)
    if spec.pooling == "mean":
        per_seq = hidden[index.score_row[:, None], index.token_col]  # [M, W, H]: each sequence's own tokens
        logits = model._head()(masked_mean(per_seq, mean_mask(spec, index))).float()
    elif spec.head_kind.token_values:
        values = model._head()(hidden)[..., 0].float()  # [R, L]: every token's value
        token_values = values[index.score_row[:, None], index.token_col]  # [M, W]
        logits = values[index.score_row, index.score_col][:, None]  # inference: the score token's value
    elif model.kind == "encoder":
        logits = encoder_head(model.transformer, hidden[index.score_row, index.score_col])
    else:
        logits = spec.head_kind.project(model, hidden[index.score_row, index.score_col]).float()  # [M, C]
    return RewardOutput(combine(logits, spec, model.extras), logits, token_values)


def mean_mask(spec, index: ReadIndex) -> torch.Tensor:
    """[M, W] mask of the tokens ``mean`` pooling averages: the response span (decoders: first response token
    through the score token; a branch's response may start on a shared prefix, ``token_col`` maps it) or every
    real token."""
    if spec.mean_span != "response":
        return index.token_mask
    if index.response_start is None:
        raise ValueError("response-only mean pooling needs the batch's response_start (collate.pad_batch and "
                         "pack_groups record it from the tokenizer's response start)")
    return span_mask(index.token_mask.shape[1], index.response_start, index.score_pos)


def encoder_head(tm: nn.Module, picked: torch.Tensor) -> torch.Tensor:
    """The HF class's own read-out, applied to gathered [CLS] states [M, H] instead of column 0 of each row."""
    pooler = getattr(tm.base_model, "pooler", None)
    classifier = FP32Head(tm.classifier)  # fp32 under bf16 autocast too (models/fp32.py)
    if pooler is not None:  # BERT-style: pooler(hidden)[:, 0] -> dropout -> classifier
        pooled = FP32Head(pooler)(picked[:, None, :])
        dropout = getattr(tm, "dropout", None)
        if dropout is not None:
            pooled = dropout(pooled)
        return classifier(pooled).float()
    # RoBERTa-style heads read features[:, 0] themselves
    return classifier(picked[:, None, :]).float()
