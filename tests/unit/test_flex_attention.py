"""The flex-attention kernel (`train.attention: flex`, the CUDA default) gives the padded rewards and gradients.

torch >= 2.5 compiles `flex_attention` for CPU too, so the block mask built from the packed rows' group and
branch maps (models/packed.py `_block_mask`) runs here. What CPU cannot do (torch 2.13): the backward pass,
`NotImplementedError: FlexAttention does not support backward on CPU`; the gradient half of the test then skips
with that reason and runs where a CUDA device is present. Marked slow: the first call compiles the kernel
(about 1.5 minutes on a 2-core CPU), beyond the quick suite's budget; .ci/run runs it.
"""

import pytest
import torch

from rewardkit.data.collate import pad_batch
from rewardkit.data.packing import pack_groups
from rewardkit.models.packed import build_mask, flex_available, packed_rewards

from .test_packing import assert_grads_close, built, make  # noqa: F401  (built: the module-scoped fixture)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not flex_available(), reason="torch has no flex_attention")]

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def flex_model(tokenizer_dirs, built):  # noqa: F811
    model, tok, kind, groups = make("llama", tokenizer_dirs, built)
    before = model.transformer.config._attn_implementation
    yield model, tok, kind, groups
    model.transformer.set_attn_implementation(before)
    model.to("cpu")


def _rewards_and_grads(model, fn):
    model.zero_grad(set_to_none=True)
    rewards = fn()
    weights = torch.linspace(-1.0, 2.0, rewards.shape[0], device=rewards.device)  # each reward its own weight
    (rewards * weights).sum().backward()
    return rewards.detach().cpu(), {n: p.grad.detach().cpu() for n, p in model.named_parameters()
                                    if p.grad is not None}


def _layouts(model, tok, kind, groups, device):
    model.to(device)
    flat = [s for g in groups for s in g]
    return pad_batch(flat, tok.pad_token_id).to(device), pack_groups(groups, kind, tok.pad_token_id,
                                                                     row_tokens=256).to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_flex_kernel_gives_the_padded_rewards(device, flex_model):
    from torch.nn.attention.flex_attention import BlockMask

    model, tok, kind, groups = flex_model
    padded, packed = _layouts(model, tok, kind, groups, device)
    with torch.no_grad():
        want = model(padded)
        model.transformer.set_attn_implementation("flex_attention")
        assert isinstance(build_mask(packed, "flex_attention"), BlockMask)
        got = packed_rewards(model, packed)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_flex_kernel_gives_the_padded_gradients(device, flex_model):
    model, tok, kind, groups = flex_model
    padded, packed = _layouts(model, tok, kind, groups, device)
    want_r, want_g = _rewards_and_grads(model, lambda: model(padded))
    model.transformer.set_attn_implementation("flex_attention")
    try:
        got_r, got_g = _rewards_and_grads(model, lambda: packed_rewards(model, packed))
    except NotImplementedError as e:
        if device != "cpu":
            raise
        pytest.skip(f"CPU only (AVX2 or AMX alike): torch {torch.__version__} has no flex backward on CPU ({e}); "
                    "the forward is checked by test_flex_kernel_gives_the_padded_rewards, gradients on CUDA")
    torch.testing.assert_close(got_r, want_r, rtol=1e-4, atol=1e-5)
    assert_grads_close(got_g, want_g)
