"""The tree attention kernel (attention per group on the pairs the mask allows) gives the padded computation's
rewards and gradients, packs a batch into one row, and is used only where every layer of the model takes it."""

import pytest
import torch

from rewardkit.data.collate import pad_batch
from rewardkit.data.packing import attention_allowed, pack_groups
from rewardkit.models import tree_attention
from rewardkit.models.heads import HeadSpec
from rewardkit.models.packed import ONE_ROW, pack_settings, packed_rewards, select_attention
from rewardkit.models.reward_model import ModelMeta, model_from_config

from ..conftest import ARCH_TOKENIZER, DECODERS, load_test_tokenizer, tiny_config
from .test_packing import assert_grads_close, make, rewards_and_grads, token_level_losses


@pytest.fixture(scope="module")
def built():
    return {}


def _tree(model):
    assert select_attention(model, "tree", torch.device("cpu")) == tree_attention.NAME
    return model


def _sdpa(model):
    model.transformer.set_attn_implementation("sdpa")


def with_unshared_group(groups):
    """Adds a two-member group whose sequences differ from their first token (no shared prefix: two branches)."""
    return [*groups, [groups[3][0], groups[0][1]]]


@pytest.mark.parametrize("arch", [*DECODERS, "bert"])
@pytest.mark.parametrize("row_tokens", [None, 48])
def test_tree_kernel_gives_the_padded_rewards_and_gradients(arch, row_tokens, tokenizer_dirs, built):
    """row_tokens None: the whole batch in one row; 48: several rows, some with padding at the end."""
    model, tok, kind, groups = make(arch, tokenizer_dirs, built)
    groups = with_unshared_group(groups) if kind == "decoder" else groups
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    _tree(model)
    try:
        rows, cost = pack_settings(model, row_tokens)
        assert cost is None and rows == (row_tokens or ONE_ROW)
        packed = pack_groups(groups, kind, tok.pad_token_id, rows, cost)
        if row_tokens is None:
            assert packed.input_ids.shape[0] == 1 and packed.num_slots == packed.num_tokens  # no padding
        else:
            assert packed.input_ids.shape[0] > 1 and packed.num_slots > packed.num_tokens
        packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(model, packed))
    finally:
        _sdpa(model)
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)


@pytest.mark.parametrize("causal", [True, False])
def test_tree_plan_computes_exactly_the_allowed_pairs(causal):
    """The (query, key) pairs of the two batched calls are exactly those the dense mask allows, each query
    once, and every real column's output comes from the call that computed it."""
    grp = torch.tensor([[0, 0, 0, 0, 0, 0, 1, 1, 1, -1], [0, 0, 0, 1, 1, 1, 1, 1, -1, -1]])
    br = torch.tensor([[0, 0, 1, 1, 2, 2, 1, 2, 2, 0], [0, 1, 1, 0, 0, 1, 2, 3, 0, 0]])
    if not causal:
        br = torch.zeros_like(br)
    rows, width = grp.shape
    allowed = attention_allowed(grp, br, causal=causal)[:, 0]
    want = torch.zeros(rows * width, rows * width, dtype=torch.bool)
    for r in range(rows):
        want[r * width:(r + 1) * width, r * width:(r + 1) * width] = allowed[r]
    real = (grp >= 0).flatten()
    want &= real[:, None]  # padding columns get zeros, not attention
    plan = tree_attention.tree_plan(grp, br, causal=causal)
    got = torch.zeros_like(want)
    sources = {}
    n_seq, ls = plan.seq_idx.shape
    for g in range(n_seq):
        valid = [i for i in range(ls) if plan.out_src[plan.seq_idx[g, i]] == g * ls + i]
        for i in valid:
            sources[int(plan.seq_idx[g, i])] = "seq"
            for j in valid:
                if not causal or j <= i:
                    got[plan.seq_idx[g, i], plan.seq_idx[g, j]] = True
    if plan.branch_q is not None:
        nb, lb = plan.branch_q.shape
        for g in range(nb):
            for i in range(lb):
                if plan.out_src[plan.branch_q[g, i]] != n_seq * ls + g * lb + i:
                    continue  # a padding query
                assert int(plan.branch_q[g, i]) not in sources
                sources[int(plan.branch_q[g, i])] = "branch"
                for j in range(plan.branch_k.shape[1]):
                    if plan.branch_mask[g, 0, i, j]:
                        got[plan.branch_q[g, i], plan.branch_k[g, j]] = True
    assert torch.equal(got, want)
    assert sorted(sources) == real.nonzero().flatten().tolist()
    zero_row = plan.out_src.max()
    assert (plan.out_src[~real] == zero_row).all()


def test_tree_kernel_under_gradient_checkpointing_and_token_level_loss(tokenizer_dirs, built):
    """The plan reaches the layers' recompute in backward; per-token values come out as in the padded layout, so
    the token-level loss and its gradients are the padded ones (pairs and all three pairs of the K = 3 list)."""
    model, tok, kind, groups = make("llama", tokenizer_dirs, built, spec=HeadSpec(head="per_token", pooling="last"))
    padded, packed = token_level_losses(model, tok, kind, groups, ONE_ROW, None)  # the tree kernel's layout
    want_loss, want_g = rewards_and_grads(model, padded)
    _tree(model)
    model.hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()  # checkpointing is active in training mode only (the tiny config has no dropout)
    try:
        assert model.transformer.base_model.gradient_checkpointing
        got_loss, got_g = rewards_and_grads(model, packed)
    finally:
        model.hf.gradient_checkpointing_disable()
        model.eval()
        _sdpa(model)
    torch.testing.assert_close(got_loss, want_loss, rtol=1e-4, atol=1e-6)
    assert_grads_close(got_g, want_g)


def test_auto_picks_the_tree_kernel_on_cpu_and_the_saved_model_does_not_need_it(tokenizer_dirs, tmp_path):
    """A padded batch through the same model gets SDPA with its usual mask; the saved config names no kernel
    of ours, so plain transformers loads it."""
    from transformers import AutoModelForSequenceClassification

    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER["llama"])
    torch.manual_seed(0)
    model = model_from_config(tiny_config("llama", len(tok)), "decoder", tok)
    model.eval()
    seqs = make("llama", tokenizer_dirs, {})[3][0]
    batch = pad_batch(seqs, tok.pad_token_id)
    with torch.no_grad():
        before = model(batch)
        assert select_attention(model, "auto", torch.device("cpu")) == tree_attention.NAME
        after = model(batch)
    torch.testing.assert_close(after, before)
    model.save_pretrained(tmp_path, tok, ModelMeta(kind="decoder", pooling="last"))
    assert tree_attention.NAME not in (tmp_path / "config.json").read_text()
    AutoModelForSequenceClassification.from_pretrained(tmp_path)


def test_a_model_that_needs_soft_capping_keeps_the_dense_mask(tokenizer_dirs):
    import transformers as tf

    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    cfg = tf.Gemma2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=512)
    model = model_from_config(cfg, "decoder", tok)
    assert not tree_attention.supports_tree_attention(model.transformer, causal=True)
    assert select_attention(model, "auto", torch.device("cpu")) in ("sdpa", "eager")  # Gemma2 prefers eager
    with pytest.raises(ValueError, match="tree is not supported"):
        select_attention(model, "tree", torch.device("cpu"))


def test_tree_kernel_reaches_lora_adapted_layers(tokenizer_dirs):
    """Under a LoRA wrapper the probe and the kernel run on the adapted layers: rewards and the gradients of the
    trainable parameters (adapters and head) equal the padded ones."""
    from rewardkit.config import LoraConfig
    from rewardkit.models.reward_model import RewardModel, apply_lora

    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER["llama"])
    torch.manual_seed(0)
    base = model_from_config(tiny_config("llama", len(tok)), "decoder", tok)
    model = RewardModel(apply_lora(base.hf, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])), "decoder")
    for name, p in model.named_parameters():  # LoRA B starts at zero: give the adapters a visible effect
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    model.eval()
    groups = make("llama", tokenizer_dirs, {})[3]
    flat = [s for g in groups for s in g]
    padded_r, padded_g = rewards_and_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    _tree(model)
    rows, cost = pack_settings(model, None)
    packed_r, packed_g = rewards_and_grads(model, lambda: packed_rewards(
        model, pack_groups(groups, "decoder", tok.pad_token_id, rows, cost)))
    assert any("lora" in name for name in packed_g)
    torch.testing.assert_close(packed_r, padded_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(packed_g, padded_g)
