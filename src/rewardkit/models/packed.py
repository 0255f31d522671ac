"""Rewards from packed rows (:mod:`rewardkit.data.packing`): a custom 4-D attention mask, scores read at
each sequence's own score token.

transformers (>= 4.5x, checked on 5.x) passes a 4-D ``attention_mask`` through its mask builders unchanged
(``masking_utils._preprocess_mask_arguments`` returns early on ``ndim == 4``), for decoders
(``create_causal_mask``) and encoders (``create_bidirectional_mask``) alike. What the 4-D mask must look like
depends on the attention implementation: SDPA takes a boolean mask (True = attend), the eager path *adds* the
mask to the scores (0 / -inf), and flex attention takes a ``BlockMask``.

Kernels (``train.attention``):

* ``tree`` (:mod:`rewardkit.models.tree_attention`, the CPU default where the model supports it): SDPA per
  group on the columns it occupies, so no masked-out pair is computed and a batch packs into one row with no
  padding;
* ``sdpa`` with the boolean 4-D mask: rows as long as the batch's longest group, and a per-batch FLOP estimate
  (:func:`attention_cost`) decides where sharing a prompt pays for the dense attention it costs;
* ``flex`` on CUDA builds a block-sparse mask from the same group/branch maps, so masked-out blocks are
  skipped. tests/unit/test_flex_attention.py checks its rewards against padded on CPU (torch compiles
  flex_attention for CPU) and its gradients on CUDA: torch has no flex backward on CPU, so training there
  keeps ``tree`` / ``sdpa``.

Measured in ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Literal

import torch

from ..data.packing import attention_allowed
from ..types import PackedBatch
from . import tree_attention
from .heads import RewardOutput
from .readout import read_out

if TYPE_CHECKING:  # the model calls into this module: annotations only, no import cycle
    from .reward_model import RewardModel

log = logging.getLogger(__name__)

Attention = Literal["auto", "tree", "sdpa", "flex"]
ONE_ROW = 1 << 40
"""Row capacity that puts a whole batch into one row (the tree kernel's cost does not grow with the row)."""


def flex_available() -> bool:
    try:
        from torch.nn.attention.flex_attention import create_block_mask  # noqa: F401
    except ImportError:
        return False
    return True


def select_attention(model: RewardModel, requested: Attention, device: torch.device) -> str:
    """Pick the kernel for packed rows and switch the backbone to it; returns the transformers name used.

    ``auto``: flex attention on CUDA when torch has it and the architecture supports it; elsewhere the tree
    kernel when every layer of the model takes it (:func:`~rewardkit.models.tree_attention.
    supports_tree_attention`), else SDPA with a dense mask. A model whose implementation is ``eager`` (e.g.
    forced by its config) keeps it: the mask is then made additive.
    """
    tm = model.transformer
    current = tm.config._attn_implementation
    want = requested
    causal = model.kind == "decoder"
    if requested == "auto":
        if device.type == "cuda" and flex_available() and getattr(tm, "_supports_flex_attn", False):
            want = "flex"
        elif current == "eager":
            want = "eager"
        else:
            want = "tree" if _tree_supported(model, causal) else "sdpa"
    elif requested == "tree" and not _tree_supported(model, causal):
        raise ValueError(f"train.attention: tree is not supported by {type(tm).__name__} (its layers do not pass "
                         "extra arguments to the attention function, or it needs a sliding window or "
                         "soft-capping); use sdpa")
    if want == "tree":
        name = tree_attention.NAME
    elif want == "flex":
        if device.type != "cuda":
            raise ValueError("train.attention: flex trains on CUDA only (torch has no flex_attention backward on "
                             "CPU); use auto (tree) or sdpa on CPU")
        if not flex_available():
            raise ValueError("train.attention: flex needs torch.nn.attention.flex_attention (torch >= 2.5)")
        name = "flex_attention"
    else:
        name = want
    if name != current:
        tm.set_attn_implementation(name)
        log.info("packed rows: attention implementation %s (was %s)", name, current)
    return name


def _tree_supported(model: RewardModel, causal: bool) -> bool:
    # a K LoRA ensemble's layers run only with a member selected (models/ensemble_lora.py); any one will do here
    member = getattr(model, "member", None)
    with member(0) if member is not None else contextlib.nullcontext():
        return tree_attention.supports_tree_attention(model.transformer, causal)


def attention_cost(model: RewardModel) -> float | None:
    """Cost of one attended (query, key) pair relative to one token through the dense layers, for choosing
    per group whether to share its prompt (:func:`rewardkit.data.packing.shares_prefix`); None for encoders.

    FLOPs: a pair costs ``4 x heads x head_dim`` (QK^T and AV) per layer, a token ``2 x parameters per layer``;
    backward multiplies both by about 3. Measured on SmolLM2-135M's architecture (CPU, fp32, SDPA, rows of
    411 tokens): 7.6 us per pair against 27 ms per token, 2.8e-4, where this formula gives 3.3e-4.
    """
    if model.kind != "decoder":
        return None
    cfg = model.transformer.config
    layers = getattr(cfg, "num_hidden_layers", None)
    heads = getattr(cfg, "num_attention_heads", None)
    if not layers or not heads:
        return None
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    embedding = model.transformer.get_input_embeddings().weight.numel()
    per_layer = (sum(p.numel() for p in model.parameters()) - embedding) / layers
    return 4 * heads * head_dim / (2 * per_layer)


def pack_settings(model: RewardModel, row_tokens: int | None) -> tuple[int | None, float | None]:
    """(row capacity, attention cost) for :func:`~rewardkit.data.packing.pack_groups` under the model's current
    kernel: the tree kernel packs a batch into one row and always shares the prompt (its attention costs only
    the allowed pairs); the dense-mask kernels keep short rows and weigh sharing against dense attention."""
    if model.transformer.config._attn_implementation == tree_attention.NAME:
        return row_tokens or ONE_ROW, None
    return row_tokens, attention_cost(model)


def build_mask(batch: PackedBatch, implementation: str, dtype: torch.dtype = torch.float32):
    """The 4-D mask the backbone's attention implementation expects for these rows."""
    if implementation == tree_attention.NAME:
        return tree_attention.placeholder_mask(batch.input_ids.shape[0], batch.input_ids.device)
    if implementation == "flex_attention":
        return _block_mask(batch)
    allowed = attention_allowed(batch.group_ids, batch.branch_ids, batch.causal)
    if implementation == "sdpa":
        return allowed
    # eager (and anything that adds the mask to the scores)
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(
        ~allowed, torch.finfo(dtype).min)


def _block_mask(batch: PackedBatch):  # tests/unit/test_flex_attention.py (forward on CPU, gradients on CUDA)
    from torch.nn.attention.flex_attention import create_block_mask

    grp, br, causal = batch.group_ids, batch.branch_ids, batch.causal

    def mask_mod(b, h, q, kv):
        same = (grp[b, q] == grp[b, kv]) & (grp[b, kv] >= 0)
        if causal:
            same = same & (kv <= q) & ((br[b, kv] == 0) | (br[b, kv] == br[b, q]))
        return same | (q == kv)

    rows, width = grp.shape
    return create_block_mask(mask_mod, B=rows, H=None, Q_LEN=width, KV_LEN=width, device=grp.device)


def packed_rewards(model: RewardModel, batch: PackedBatch, implementation: str | None = None) -> torch.Tensor:
    """Rewards [M] (fp32) for the scored sequences of ``batch``, in its score order.

    Equal (fp32, ~1e-6) to :meth:`RewardModel.forward` on the same sequences padded one per row, as are the
    gradients: every token attends to exactly the tokens, at the same positions, it attends to there.
    """
    return packed_outputs(model, batch, implementation).rewards


def packed_outputs(model: RewardModel, batch: PackedBatch, implementation: str | None = None) -> RewardOutput:
    """Like :meth:`RewardModel.outputs` for packed rows. ``token_values`` (``per_token`` head) come back in the
    padded layout: [M, W], right-padded, real tokens where ``batch.token_mask`` is 1."""
    tm = model.transformer
    impl = implementation or tm.config._attn_implementation
    mask = build_mask(batch, impl, next(tm.parameters()).dtype)
    kwargs = {}
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    if model.kind == "decoder":
        kwargs["use_cache"] = False
    if impl == tree_attention.NAME:
        kwargs[tree_attention.PLAN_KWARG] = tree_attention.tree_plan(batch.group_ids, batch.branch_ids, batch.causal)
    out = tm.base_model(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids, **kwargs)
    return read_out(model, out.last_hidden_state, batch.read_index())
