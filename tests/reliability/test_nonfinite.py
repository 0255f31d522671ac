"""A NaN or infinite loss stops the run naming step and examples, or is skipped and counted; NaN weights are
never written, neither as a checkpoint nor as the final model.

The non-finite loss is injected through the data, the way it happens in practice: a margin of 1e39 is a
finite float64 (it passes validation) but overflows to inf in the fp32 loss.
"""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import rewardkit
from rewardkit.config import load_config
from rewardkit.training.checkpoint import list_checkpoints, save_checkpoint
from rewardkit.training.trainer import epoch_batches

from ..conftest import HH_SAMPLE, load_test_tokenizer, tiny_config

MAX_STEPS, BATCH = 6, 4


def _data_with_overflowing_margin(tmp_path):
    records = [dict(r) for r in HH_SAMPLE * 3]  # 12 good pairs
    bad = 5  # 0-based record index, so file line 6
    records[bad] = {**records[bad], "margin": 1e39}
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, bad, len(records)


def _config(tmp_path, model_dir, data, **train):
    return load_config(None, None, base={
        "model": {"name": str(model_dir)}, "data": {"train": str(data), "max_length": 64},
        "train": {"lr": 1e-3, "batch_size": BATCH, "max_steps": MAX_STEPS, "group_by_length": False,
                  "precision": "fp32", "tensorboard": False, "seed": 0, **train},
        "output_dir": str(tmp_path / "run")})


def _batches_holding(index: int, n: int) -> list[int]:
    """Positions (0-based micro-batch numbers) of the batches that hold record ``index``, as the trainer
    orders them (same seed, no length grouping)."""
    per_epoch = -(-n // BATCH)
    out = []
    for mb in range(MAX_STEPS):
        epoch, i = divmod(mb, per_epoch)
        if index in epoch_batches([1] * n, BATCH, 0, epoch, group_by_length=False)[i]:
            out.append(mb)
    return out


def test_nonfinite_loss_stops_naming_the_step_and_the_examples(tiny_model_dir, tmp_path):
    data, bad, n = _data_with_overflowing_margin(tmp_path)
    first = _batches_holding(bad, n)[0]
    with pytest.raises(FloatingPointError) as info:
        rewardkit.train(_config(tmp_path, tiny_model_dir("llama"), data))
    msg = str(info.value)
    assert f"non-finite loss inf at step {first + 1}, micro-batch {first}" in msg
    assert f"{data}:{bad + 1}" in msg and "train.on_nonfinite: skip" in msg
    assert not (tmp_path / "run" / "model").exists()


def test_skip_policy_drops_the_bad_batches_counts_them_and_saves_finite_weights(tiny_model_dir, tmp_path):
    data, bad, n = _data_with_overflowing_margin(tmp_path)
    holding = _batches_holding(bad, n)
    assert holding, "the bad record must be in a batch of this run for the test to mean anything"
    result = rewardkit.train(_config(tmp_path, tiny_model_dir("llama"), data, on_nonfinite="skip", save_every=2,
                                     keep_last=10))
    nonfinite = result.metrics["nonfinite"]
    assert nonfinite["skipped_batches"] == len(holding)
    assert all(f"{data}:{bad + 1}" in m for m in nonfinite["first"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["nonfinite"] == nonfinite and summary["steps"] == MAX_STEPS
    weights = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in weights.values())
    for ckpt in list_checkpoints(tmp_path / "run" / "checkpoints"):
        assert all(torch.isfinite(t).all() for t in load_file(str(ckpt / "model.safetensors")).values())
    # the skip count survives in the checkpoints, so a resumed run keeps counting from there
    states = [json.loads((c / "trainer_state.json").read_text()) for c in list_checkpoints(tmp_path / "run"
                                                                                           / "checkpoints")]
    assert [s["nonfinite"]["skipped_batches"] for s in states] == [
        sum(1 for mb in holding if mb < s["step"]) for s in states]


def _tiny_model(tokenizer_dirs):
    from rewardkit.models.reward_model import model_from_config

    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    torch.manual_seed(0)
    return model_from_config(tiny_config("llama", len(tok)), "decoder", tok), tok


def test_checkpoint_of_nan_weights_is_refused_and_the_last_good_one_stays(tokenizer_dirs, tmp_path):
    model, _ = _tiny_model(tokenizer_dirs)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 1, model, opt, sched, {"step": 1})
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="refusing to save checkpoint at step 2: non-finite weights"):
        save_checkpoint(root, 2, model, opt, sched, {"step": 2})
    assert [p.name for p in list_checkpoints(root)] == ["step-00000001"]
    assert not any(p.name.endswith("00000002") for p in root.iterdir())


def test_final_model_with_inf_weights_is_refused(tokenizer_dirs, tmp_path):
    from rewardkit.models.reward_model import ModelMeta

    model, tok = _tiny_model(tokenizer_dirs)
    with torch.no_grad():
        model.transformer.score.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="NaN or infinite"):
        model.save_pretrained(tmp_path / "model", tok, ModelMeta(kind="decoder", pooling="last"))
    assert not (tmp_path / "model" / "model.safetensors").exists()
