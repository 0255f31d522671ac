"""bf16 autocast as a first-class path: the same invariants as fp32, at tolerances that follow from bf16.

`precision: auto` is bf16 on CUDA and on CPUs with AMX or AVX512-BF16, fp32 on AVX2-only CPUs; these tests force
`precision: bf16` so they run on every machine (emulated on AVX2-only CPUs: slow, hence tiny models).

Tolerances. bf16 keeps 8 significant bits: one rounding moves a value by at most u = 2^-8 relative, and two
computations of the same number that round at different places (packed vs padded rows, one micro-batch vs eight)
differ by up to one ulp, 2u = 2^-7, per rounding. The tiny models round about 7 times per layer on the way to the
reward (q, k, v, attention output, o, gate/up, down) over 2 layers, 14 roundings; independent errors add in
quadrature: sqrt(14) * 2^-7 = 0.029. So rewards agree within BF16_RTOL = 4 * 2^-7 = 0.031 of their scale, and
gradients, which pass the roundings twice (forward and backward), within BF16_GRAD_RTOL = 8 * 2^-7 = 0.0625 in
norm. fp32's own tolerance in these tests is 1e-4; each test also checks that bf16 differs from fp32 by more
than that, so it cannot pass by running fp32.
"""

import json

import pytest
import torch
from torch import nn

from rewardkit.data.collate import pad_batch
from rewardkit.data.packing import pack_groups
from rewardkit.losses import bradley_terry
from rewardkit.models.fp32 import FP32Head
from rewardkit.models.heads import HeadSpec, combine
from rewardkit.models.packed import packed_rewards

from .test_packing import built, make, token_level_losses  # noqa: F401  (built: the module-scoped fixture)

BF16_RTOL = 4 * 2.0 ** -7
BF16_GRAD_RTOL = 8 * 2.0 ** -7
FP32_TOL = 1e-4


def bf16(fn):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return fn()


def weighted_grads(model, fn):
    model.zero_grad(set_to_none=True)
    out = fn()
    (out * torch.linspace(-1.0, 2.0, out.shape[0])).sum().backward()
    return out.detach().float(), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                  if p.grad is not None}


def assert_rel_close(got, want, rtol, what):
    err = ((got - want).norm() / want.norm().clamp_min(1e-12)).item()
    assert err <= rtol, f"{what}: relative error {err:.3g} > {rtol:.3g}"


def assert_grads_rel_close(got, want, rtol):
    """Per tensor, relative to its norm; a tensor whose gradient is zero in exact arithmetic (an attention key
    bias: softmax ignores a constant shift) holds roundoff only, so the floor of the scale is 1% of the largest."""
    assert got.keys() == want.keys()
    floor = 1e-2 * max(g.norm().item() for g in want.values())
    for name in want:
        err = ((got[name] - want[name]).norm() / max(want[name].norm().item(), floor)).item()
        assert err <= rtol, f"{name}: relative gradient error {err:.3g} > {rtol:.3g}"


# -- the head, the read-out and the losses in fp32 -----------------------------------------------------------

def test_a_small_margin_is_lost_by_a_bf16_head_and_kept_by_the_fp32_one():
    """Two pooled states whose rewards are 8.00 and 8.01: bf16 spaces numbers in [8, 16) 2^-4 apart, so a head
    under autocast gives both the same reward (no margin, no gradient direction); FP32Head keeps the 0.01."""
    head = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0]]))
    x = torch.tensor([[2.0, 2.0, 2.0, 2.01], [2.0, 2.0, 2.0, 2.0]])
    lost = bf16(lambda: head(x)).float()[:, 0]
    kept = bf16(lambda: FP32Head(head)(x))[:, 0]
    assert lost[0] == lost[1]  # the margin rounded away
    assert kept.dtype == torch.float32
    torch.testing.assert_close(kept[0] - kept[1], torch.tensor(0.01), rtol=1e-4, atol=1e-6)
    # and the Bradley-Terry loss sees the difference only through the fp32 head
    assert bradley_terry(lost[:1], lost[1:]) == bradley_terry(torch.zeros(1), torch.zeros(1))
    assert bradley_terry(kept[:1], kept[1:]) < bradley_terry(torch.zeros(1), torch.zeros(1))


def test_the_reward_head_runs_in_fp32_under_autocast(tokenizer_dirs, built):  # noqa: F811
    """Under bf16 autocast the backbone runs in bf16, but the rewards are the fp32 head applied to its output."""
    model, tok, kind, groups = make("llama", tokenizer_dirs, built)
    batch = pad_batch([s for g in groups for s in g], tok.pad_token_id)
    seen = {}
    hook = model.transformer.base_model.register_forward_hook(
        lambda m, i, out: seen.__setitem__("hidden", out.last_hidden_state.detach()))
    try:
        with torch.no_grad():
            rewards = bf16(lambda: model(batch))
    finally:
        hook.remove()
    rows = torch.arange(batch.input_ids.shape[0])
    pooled = seen["hidden"][rows, batch.score_index].float()
    head = model.transformer.score
    want = pooled @ head.weight.float().T
    assert rewards.dtype == torch.float32
    torch.testing.assert_close(rewards, want[:, 0], rtol=1e-6, atol=1e-6)


def test_combine_weights_attributes_in_fp32_under_autocast():
    """The multi head's weighted sum is a matmul: autocast would run it in bf16."""
    z = torch.tensor([[8.0, 8.01, 8.0]])
    spec = HeadSpec(head="multi", pooling="last", attributes=["a", "b", "c"], weighting="fixed",
                    attribute_weights=[0.0, 1.0, -1.0])
    got = bf16(lambda: combine(z, spec.resolve("decoder"), None))
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, torch.tensor([0.01]), rtol=1e-4, atol=1e-6)


# -- packed vs padded in bf16 --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "bert"])
def test_bf16_packed_rewards_and_gradients_follow_padded(arch, tokenizer_dirs, built):  # noqa: F811
    model, tok, kind, groups = make(arch, tokenizer_dirs, built)
    flat = [s for g in groups for s in g]
    packed = pack_groups(groups, kind, tok.pad_token_id, row_tokens=256)
    _, fp32_g = weighted_grads(model, lambda: model(pad_batch(flat, tok.pad_token_id)))
    padded_r, padded_g = weighted_grads(model, lambda: bf16(lambda: model(pad_batch(flat, tok.pad_token_id))))
    packed_r, packed_g = weighted_grads(model, lambda: bf16(lambda: packed_rewards(model, packed)))
    assert max(((padded_g[k] - fp32_g[k]).norm() / fp32_g[k].norm()).item() for k in fp32_g) > 1e-3  # bf16 ran
    assert_rel_close(packed_r, padded_r, BF16_RTOL, "rewards")
    assert_grads_rel_close(packed_g, padded_g, BF16_GRAD_RTOL)


def test_bf16_packed_token_level_loss_follows_padded(tokenizer_dirs, built):  # noqa: F811
    model, tok, kind, groups = make("llama", tokenizer_dirs, built, spec=HeadSpec(head="per_token", pooling="last"))
    padded, packed = token_level_losses(model, tok, kind, groups, row_tokens=128)

    def loss_of(fn):
        model.zero_grad(set_to_none=True)
        loss = bf16(fn)
        loss.backward()
        return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}

    fp32_loss = padded().detach()
    want, want_g = loss_of(padded)
    got, got_g = loss_of(packed)
    assert want.dtype == torch.float32 and (want - fp32_loss).abs() > FP32_TOL * 1e-2
    assert_rel_close(got.reshape(1), want.reshape(1), BF16_RTOL, "token-level loss")
    assert_grads_rel_close(got_g, want_g, BF16_GRAD_RTOL)


# -- whole training runs in bf16 -----------------------------------------------------------------------------

def _train(tmp_path, model_dir, data, **train):
    import rewardkit

    t = {"lr": 1e-3, "batch_size": 4, "max_steps": 4, "log_every": 1, "seed": 0, "tensorboard": False,
         "eval_zero_shot": False, "precision": "bf16", **train}
    result = rewardkit.train({"model": {"name": str(model_dir)}, "data": {"train": str(data), "max_length": 64},
                              "train": t, "output_dir": str(tmp_path)})
    losses = [json.loads(x)["loss"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["split"] == "train"]
    return result, losses


def _weights(result):
    from safetensors.torch import load_file

    return load_file(str(result.output_dir / "model" / "model.safetensors"))


def _weight_change(after, before):
    """after - before; the embedding gained a pad row in training (models/reward_model.py): compare the old rows."""
    return {k: after[k][tuple(slice(0, n) for n in before[k].shape)] - before[k] for k in after}


def test_bf16_training_follows_the_fp32_run_and_packed_follows_padded(tiny_model_dir, hh_file, tmp_path):
    """The default (packed) bf16 run, a padded bf16 run and the fp32 run: losses step by step within bf16's
    tolerance. Losses are means of log-sigmoids of rewards, so their error is the rewards' (BF16_RTOL)."""
    fp32, fp32_losses = _train(tmp_path / "fp32", tiny_model_dir("llama"), hh_file, precision="fp32")
    packed, packed_losses = _train(tmp_path / "packed", tiny_model_dir("llama"), hh_file)
    padded, padded_losses = _train(tmp_path / "padded", tiny_model_dir("llama"), hh_file, packing=False)
    assert packed.metrics["resolved"]["precision"] == "bf16" and packed.metrics["resolved"]["packing"] is True
    assert fp32.metrics["resolved"]["precision"] == "fp32"
    assert len(packed_losses) == len(padded_losses) == len(fp32_losses) == 4
    a, b, c = torch.tensor(packed_losses), torch.tensor(padded_losses), torch.tensor(fp32_losses)
    assert (a - c).abs().max() > FP32_TOL * 1e-2  # the bf16 runs did not run in fp32
    torch.testing.assert_close(a, b, rtol=BF16_RTOL, atol=0.0)
    torch.testing.assert_close(a, c, rtol=BF16_RTOL, atol=0.0)


def test_bf16_gradient_accumulation_1x8_follows_8x1(tiny_model_dir, hh_file, tmp_path):
    """One micro-batch of 8 pairs or 8 of 1: the weight updates agree within bf16's gradient tolerance."""
    from safetensors.torch import load_file

    before = load_file(str(tiny_model_dir("llama") / "model.safetensors"))
    runs = {name: _weights(_train(tmp_path / name, tiny_model_dir("llama"), hh_file, batch_size=bs, grad_accum=acc,
                                  max_steps=2, group_by_length=False, lr=1e-4)[0])
            for name, bs, acc in (("one_by_eight", 8, 1), ("eight_by_one", 1, 8))}
    a = _weight_change(runs["one_by_eight"], before)
    b = _weight_change(runs["eight_by_one"], before)
    moved = [k for k in a if a[k].norm() > 0]
    assert "score.weight" in moved
    # Adam normalises each update by its gradient's size: the update's relative error is the gradient's
    for k in moved:
        assert_rel_close(b[k], a[k], BF16_GRAD_RTOL, k)


def test_bf16_resume_gives_the_uninterrupted_weights(tiny_model_dir, hh_file, tmp_path):
    """Resuming replays the same bf16 operations on the same numbers: equal, not merely close."""
    import shutil

    import rewardkit

    straight, _ = _train(tmp_path / "a", tiny_model_dir("llama"), hh_file, save_every=2, keep_last=3)
    ckpt = straight.output_dir / "checkpoints" / "step-00000002"
    resumed_dir = tmp_path / "b"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(ckpt, resumed_dir / "checkpoints" / ckpt.name)
    cfg = json.loads(json.dumps({"model": {"name": str(tiny_model_dir("llama"))},
                                 "data": {"train": str(hh_file), "max_length": 64},
                                 "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 4, "log_every": 1, "seed": 0,
                                           "tensorboard": False, "eval_zero_shot": False, "precision": "bf16",
                                           "save_every": 2, "keep_last": 3},
                                 "output_dir": str(resumed_dir)}))
    resumed = rewardkit.train(cfg, resume=True)
    want, got = _weights(straight), _weights(resumed)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-7)
