"""What every `auto` training setting becomes (rewardkit/training/resolve.py), and that a run records it."""

import json
import logging

import pytest

from rewardkit.config import load_config
from rewardkit.training.resolve import (
    MachineFacts,
    ModelFacts,
    activation_bytes_per_token,
    resolve,
    training_state_bytes,
)

GB = 1 << 30
# SmolLM2-135M-Instruct's shape (its GGUF config; 134.5M parameters with the added pad row)
SMOLLM2 = ModelFacts(parameters=134_515_584, trainable=134_515_584, layers=30, hidden=576, intermediate=1536,
                     kind="decoder")
AVX2_CPU = MachineFacts(device="cpu", bf16_fast=False, memory_bytes=8 * GB)
AMX_CPU = MachineFacts(device="cpu", bf16_fast=True, memory_bytes=8 * GB, cpu_flags=("amx_bf16",))


def cfg(**train):
    model = train.pop("model", {})
    loss = train.pop("loss", "bradley_terry")
    return load_config(None, None, base={"model": {"name": "x", **model}, "data": {"max_length": 512},
                                         "loss": {"name": loss}, "train": train})


def test_auto_precision_is_bf16_only_where_bf16_is_fast():
    assert resolve(cfg(), SMOLLM2, AMX_CPU, pairwise=True, packs=False, world=1).precision == "bf16"
    cpu = resolve(cfg(), SMOLLM2, AVX2_CPU, pairwise=True, packs=False, world=1)
    assert cpu.precision == "fp32" and "no fast bf16" in cpu.reasons["precision"]
    assert resolve(cfg(precision="bf16"), SMOLLM2, AVX2_CPU, pairwise=True, packs=False, world=1).precision == "bf16"
    assert resolve(cfg(precision="fp32"), SMOLLM2, AMX_CPU, pairwise=True, packs=False, world=1).precision == "fp32"


def test_auto_packing_packs_the_losses_proven_equal_and_says_why_not_otherwise():
    assert resolve(cfg(), SMOLLM2, AVX2_CPU, pairwise=True, packs=False, world=1).packing is True
    assert resolve(cfg(loss="ranking"), SMOLLM2, AVX2_CPU, pairwise=False, packs=True, world=1).packing is True
    # the token-level loss packs (PairTask.packs) but its batches are not cut by a token budget
    token = resolve(cfg(loss="token_level_pairwise", model={"head": "per_token"}), SMOLLM2, AVX2_CPU,
                    pairwise=False, packs=True, world=1)
    assert token.packing is True and token.max_tokens_per_forward is None
    assert "token_level_pairwise" in token.reasons["max_tokens_per_forward"]
    mse = resolve(cfg(loss="mse"), SMOLLM2, AVX2_CPU, pairwise=False, packs=False, world=1)
    assert mse.packing is False and "mse" in mse.reasons["packing"]
    ddp = resolve(cfg(), SMOLLM2, AVX2_CPU, pairwise=True, packs=False, world=2)
    assert ddp.packing is False and "2 processes" in ddp.reasons["packing"]
    assert ddp.max_tokens_per_forward is None
    assert resolve(cfg(packing=False), SMOLLM2, AVX2_CPU, pairwise=True, packs=False, world=1).packing is False
    minilm = ModelFacts(parameters=22_700_000, trainable=22_700_000, layers=6, hidden=384, intermediate=1536,
                        kind="encoder")
    for pooling in ("cls", "mean"):  # encoders pack block-diagonal, mean pooling too (test_packing.py)
        enc = resolve(cfg(model={"pooling": pooling}), minilm, AVX2_CPU, pairwise=True, packs=False, world=1)
        assert enc.packing is True, enc.reasons["packing"]


def test_auto_token_budget_keeps_activations_within_a_checkpointing_padded_trainers():
    """SmolLM2-135M on a machine with room: activations no larger than what a padded trainer that checkpoints
    (TRL's default) keeps for the batch (2 x 8 pairs x 512 tokens at the checkpointed cost), a multiple of 64 and
    at least one sequence, and no checkpointing."""
    r = resolve(cfg(batch_size=8), SMOLLM2, MachineFacts(device="cpu", bf16_fast=False, memory_bytes=64 * GB),
                pairwise=True, packs=False, world=1)
    budget = r.max_tokens_per_forward
    peer = 2 * 8 * 512 * activation_bytes_per_token(SMOLLM2, True)
    assert budget % 64 == 0 and 512 <= budget
    assert budget * activation_bytes_per_token(SMOLLM2, False) <= peer
    assert (budget + 64) * activation_bytes_per_token(SMOLLM2, False) > peer
    assert budget == 576  # the figure measured in issue 22 (4.36 GB against TRL's 4.66 GB in bf16)
    assert r.gradient_checkpointing is False
    # the peer keeps more for a bigger batch, and so may we; a token-sized batch is the peer's batch
    assert resolve(cfg(batch_size=32), SMOLLM2, MachineFacts(device="cpu", bf16_fast=False, memory_bytes=64 * GB),
                   pairwise=True, packs=False, world=1).max_tokens_per_forward > 3 * budget
    by_tokens = resolve(cfg(max_tokens_per_batch=4096), SMOLLM2, MachineFacts(device="cpu", bf16_fast=False,
                        memory_bytes=64 * GB), pairwise=True, packs=False, world=1)
    assert by_tokens.max_tokens_per_forward == 512  # the floor: one sequence


def test_a_small_machine_gets_a_smaller_budget_then_checkpointing():
    roomy = resolve(cfg(batch_size=32), SMOLLM2, MachineFacts(device="cpu", bf16_fast=False, memory_bytes=64 * GB),
                    pairwise=True, packs=False, world=1)
    # 5 GB: the training state (2.15 GB) plus one pair's activations (1.8 GB) exceed 60% of it
    small = MachineFacts(device="cpu", bf16_fast=False, memory_bytes=5 * GB)
    assert training_state_bytes(SMOLLM2, False) + 1024 * activation_bytes_per_token(SMOLLM2, False) > 0.6 * 5 * GB
    tight = resolve(cfg(batch_size=32), SMOLLM2, small, pairwise=True, packs=False, world=1)
    assert tight.gradient_checkpointing is True and "does not fit" in tight.reasons["gradient_checkpointing"]
    assert tight.max_tokens_per_forward >= 1024
    # told not to checkpoint, it gets what the machine's memory leaves (a pair over it runs as a pass of its own)
    off = resolve(cfg(batch_size=32, model={"gradient_checkpointing": False}), SMOLLM2, small, pairwise=True,
                  packs=False, world=1)
    room = (int(0.6 * 5 * GB) - training_state_bytes(SMOLLM2, False)) // activation_bytes_per_token(SMOLLM2, False)
    assert off.gradient_checkpointing is False and off.max_tokens_per_forward == max(512, room // 64 * 64)
    assert roomy.max_tokens_per_forward > off.max_tokens_per_forward


def test_explicit_settings_are_kept_as_given():
    r = resolve(cfg(packing=True, max_tokens_per_forward=700, model={"gradient_checkpointing": True}), SMOLLM2,
                AVX2_CPU, pairwise=True, packs=False, world=1)
    assert (r.packing, r.max_tokens_per_forward, r.gradient_checkpointing) == (True, 700, True)
    assert r.reasons == {"precision": r.reasons["precision"]}  # only precision was auto
    assert resolve(cfg(max_tokens_per_forward=None), SMOLLM2, AVX2_CPU, pairwise=True, packs=False,
                   world=1).max_tokens_per_forward is None


@pytest.mark.parametrize("value", ["sometimes", 1.5])
def test_auto_fields_reject_other_values_naming_the_key(value):
    from rewardkit.config import ConfigError

    with pytest.raises(ConfigError, match="train.packing"):
        cfg(packing=value)


def test_a_default_run_packs_and_records_what_auto_became(tiny_model_dir, hh_file, tmp_path, caplog):
    import rewardkit

    with caplog.at_level(logging.INFO, logger="rewardkit.training.resolve"):
        result = rewardkit.train({"model": {"name": str(tiny_model_dir("llama"))},
                                  "data": {"train": str(hh_file), "max_length": 64},
                                  "train": {"max_steps": 1, "tensorboard": False, "eval_zero_shot": False},
                                  "output_dir": str(tmp_path)})
    resolved = json.loads((tmp_path / "summary.json").read_text())["resolved"]
    assert resolved == result.metrics["resolved"]
    assert {"precision", "packing", "attention", "max_tokens_per_forward", "gradient_checkpointing"} <= set(resolved)
    assert resolved["packing"] is True and resolved["attention"] == "rewardkit_tree"
    assert resolved["precision"] in ("fp32", "bf16") and resolved["max_tokens_per_forward"] >= 128
    assert resolved["gradient_checkpointing"] is False
    assert any("resolved settings: precision" in r.getMessage() for r in caplog.records)
