"""Real multi-process training: 2 CPU processes (gloo) started by Accelerate's launcher, on a tiny model.

Each launch costs ~20-60 s of process start-up (two interpreters importing torch and transformers), so the
module is marked slow; CI runs it (`.ci/run` runs `-m slow`).

Tolerance against one process: the two-process run computes each half-batch's mean loss, weights it and
all-reduces the gradients, where one process takes the mean of the whole batch at once. The sums run in a
different order, so fp32 results differ by rounding (~1e-7 relative per step), which Adam carries through 6
steps: losses agree to 1e-5 and weights to 1e-5 (measured: weights within 1.4e-6, logged losses equal to 6
decimals). The data (15 pairs, global batch 4) makes every epoch end in an uneven global batch of 3, so the
comparison also covers the loss weighting of a short batch: with the old unweighted split (a short slice
counted as a full one) the two-process losses drifted from one process by up to 4e-4 by step 6 (measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

import rewardkit
from rewardkit.config import load_config

from ..conftest import HH_SAMPLE, REPO

pytestmark = pytest.mark.slow

TRAIN_PAIRS = 15  # global batch 4: the last global batch of an epoch holds 3 pairs (uneven split)
EVAL_PAIRS = 7  # odd: one process scores 4 pairs, the other 3 plus a padded repeat that must not count
STEPS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist-data")
    rows = [dict(r, chosen=r["chosen"] + f" ({i})") for i, r in enumerate(HH_SAMPLE * 4)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:TRAIN_PAIRS]))
    (d / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[1:1 + EVAL_PAIRS]))
    return d


def write_config(path, model_dir, data, out, batch_size, lora=False):
    model = {"name": str(model_dir)}
    if lora:
        model.update(lora={"r": 4, "alpha": 8}, gradient_checkpointing=True)
    cfg = {"model": model,
           "data": {"train": str(data / "train.jsonl"), "eval": str(data / "eval.jsonl"), "max_length": 64},
           "train": {"lr": 1e-3, "batch_size": batch_size, "max_steps": STEPS, "log_every": 1, "seed": 0,
                     "tensorboard": False, "precision": "fp32"},
           "output_dir": str(out)}
    path.write_text(yaml.safe_dump(cfg))
    return path


def launch(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def accelerate_launch(*args: str) -> list[str]:
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", *args]


def train_losses(run) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r["split"] == "train"]


def summary(run) -> dict:
    return json.loads((run / "summary.json").read_text())


def max_weight_diff(a, b) -> float:
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def single(tiny_model_dir, data, tmp_path_factory):
    """The reference: one process, global batch 4."""
    d = tmp_path_factory.mktemp("single")
    cfg = write_config(d / "cfg.yaml", tiny_model_dir("llama"), data, d / "run", batch_size=4)
    return rewardkit.train(load_config(cfg)).output_dir


@pytest.fixture(scope="module")
def ddp(tiny_model_dir, data, tmp_path_factory):
    """Two processes x batch 2, started by `rewardkit train --num-processes 2` (re-runs through accelerate)."""
    d = tmp_path_factory.mktemp("ddp")
    cfg = write_config(d / "cfg.yaml", tiny_model_dir("llama"), data, d / "run", batch_size=2)
    proc = launch([sys.executable, "-m", "rewardkit", "train", str(cfg), "--num-processes", "2"])
    return d / "run", cfg, proc


def test_two_processes_match_one_process_with_the_same_global_batch(single, ddp):
    run, _, _ = ddp
    one, two = train_losses(single), train_losses(run)
    assert len(one) == len(two) == STEPS
    assert two == pytest.approx(one, abs=1e-5)
    assert max_weight_diff(single, run) < 1e-5
    assert summary(run)["eval"]["loss"] == pytest.approx(summary(single)["eval"]["loss"], abs=1e-5)


def test_eval_counts_every_pair_exactly_once(single, ddp, data):
    run, _, proc = ddp
    n = len((data / "eval.jsonl").read_text().splitlines())
    s = summary(run)
    assert s["eval"]["pairs"] == s["zero_shot"]["pairs"] == n == EVAL_PAIRS
    assert s["eval"]["accuracy"] == summary(single)["eval"]["accuracy"]
    # and only the main process printed the result and wrote the logs
    assert proc.stdout.count("held-out pairwise accuracy") == 1
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in evals].count("eval") == 1


def test_accelerate_launch_rerun_saves_an_identical_model(ddp, tmp_path):
    run, cfg, _ = ddp
    again = tmp_path / "again"
    launch(accelerate_launch("--multi_gpu", "-m", "rewardkit", "train", str(cfg), "--output_dir", str(again)))
    a, b = load_file(str(run / "model" / "model.safetensors")), load_file(str(again / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert train_losses(again) == train_losses(run)


def test_fsdp_full_shard_matches_one_process_and_saves_a_plain_transformers_model(single, tiny_model_dir, data,
                                                                                   tmp_path):
    from transformers import AutoModelForSequenceClassification

    cfg = write_config(tmp_path / "cfg.yaml", tiny_model_dir("llama"), data, tmp_path / "run", batch_size=2)
    proc = launch(accelerate_launch("--config_file", str(REPO / "configs/accelerate/fsdp.yaml"), "--mixed_precision",
                                    "no", "-m", "rewardkit", "train", str(cfg)))
    assert "FSDP on CPU" in proc.stderr  # it did run sharded, not silently as DDP
    run = tmp_path / "run"
    assert train_losses(run) == pytest.approx(train_losses(single), abs=1e-5)
    assert max_weight_diff(single, run) < 1e-5
    assert summary(run)["eval"]["pairs"] == EVAL_PAIRS
    # the gathered full state dict loads in plain transformers, every weight present
    hf, info = AutoModelForSequenceClassification.from_pretrained(run / "model", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    prompts, responses = ["\n\nHuman: hi\n\nAssistant:"], [" hello"]
    assert rewardkit.load_model(run).score(prompts, responses) == \
        pytest.approx(rewardkit.load_model(single).score(prompts, responses), abs=1e-4)


def test_lora_with_gradient_checkpointing_on_two_processes_matches_one_process(tiny_model_dir, data, tmp_path):
    one = write_config(tmp_path / "one.yaml", tiny_model_dir("llama"), data, tmp_path / "one", batch_size=4, lora=True)
    ref = rewardkit.train(load_config(one)).output_dir
    two = write_config(tmp_path / "two.yaml", tiny_model_dir("llama"), data, tmp_path / "two", batch_size=2, lora=True)
    launch(accelerate_launch("--multi_gpu", "-m", "rewardkit", "train", str(two)))
    run = tmp_path / "two"
    assert train_losses(run) == pytest.approx(train_losses(ref), abs=1e-5)
    assert max_weight_diff(ref, run) < 1e-5
    before = load_file(str(tiny_model_dir("llama") / "model.safetensors"))
    after = load_file(str(run / "model" / "model.safetensors"))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[q], after[q])  # the LoRA update was merged into the saved weights
