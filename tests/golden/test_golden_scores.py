"""Golden scores: tiny models trained a few fp32 steps with a fixed seed, one per head kind, saved and scored.

The goldens (``golden_scores.json``) were computed on the code *before* the issue-14 restructure (one scoring
engine, one read-out, a head registry) and pin that it changed no number: the per-step training losses, the
held-out loss, and the scores of the saved model through ``rewardkit.load_model``.

On the machine that wrote them the comparison is bit-exact (``REWARDKIT_GOLDEN_EXACT=1``); elsewhere a CPU with
other vector units may round matmuls differently, so the default is a 1e-5 relative tolerance.
Regenerate (only when a change is *meant* to move numbers): ``REWARDKIT_UPDATE_GOLDEN=1 pytest tests/golden``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml

import rewardkit
from rewardkit.config import load_config

GOLDEN = Path(__file__).with_name("golden_scores.json")

PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:",
           "Q: name a colour", "\n\nHuman: Tell me a joke.\n\nAssistant:"]
RESPONSES = [" Mix flour, water and yeast, then bake.", " 4.", " blue, or perhaps a very long answer about red",
             " No."]

# case -> (architecture, model section, loss section, train section overrides)
CASES = {
    "scalar_last": ("llama", {}, {}, {}),
    "scalar_last_packed": ("llama", {}, {}, {"packing": True}),
    "scalar_log_exp_gpt2": ("gpt2", {}, {"name": "log_exp"}, {}),
    "classifier_logit_diff": ("llama", {"head": "classifier"}, {}, {}),
    "classifier_probability": ("qwen2", {"head": "classifier", "reward_from": "probability"}, {}, {}),
    "per_token": ("llama", {"head": "per_token"}, {"name": "token_level_pairwise"}, {}),
    "multi_learned": ("llama", {"head": "multi", "attributes": ["help", "safe"], "weighting": "learned"}, {}, {}),
    "multi_fixed": ("llama", {"head": "multi", "attributes": ["help", "safe"], "weighting": "fixed",
                              "attribute_weights": [0.25, 0.75]}, {}, {}),
    "mean_response": ("llama", {"pooling": "mean"}, {}, {}),
    "mean_response_packed": ("llama", {"pooling": "mean"}, {}, {"packing": True}),
    "encoder_cls": ("bert", {}, {}, {}),
    # padded, as when the golden was written: `packing: auto` now packs it, which moves every score by one constant
    # (the reward offset a pairwise loss leaves free; tests/unit/test_packing.py shows it)
    "encoder_mean": ("bert", {"pooling": "mean"}, {}, {"packing": False}),
    "encoder_classifier_packed": ("bert", {"head": "classifier"}, {}, {"packing": True}),
}


def _run(case: str, tiny_model_dir, data: Path, tmp_path: Path) -> dict:
    arch, model, loss, train = CASES[case]
    cfg = {"model": {"name": str(tiny_model_dir(arch)), "dropout": False, **model},
           "data": {"train": str(data), "eval": str(data), "max_length": 64},
           "loss": loss,
           "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 3, "log_every": 1, "seed": 0, "tensorboard": False,
                     "precision": "fp32", "eval_zero_shot": False,
                     # whole micro-batches per pass, as when the goldens were written (before the `auto` token
                     # budget): cut into passes, the sums round differently, and encoder mean pooling turns that
                     # into a constant shift of every score (the offset Bradley-Terry leaves free; test_packing.py)
                     "max_tokens_per_forward": None, **train},
           "output_dir": str(tmp_path / "run")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = rewardkit.train(load_config(path))
    lines = [json.loads(x) for x in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    scores = rewardkit.load_model(result.output_dir).score(PROMPTS, RESPONSES)
    return {"train_losses": [x["loss"] for x in lines if x["split"] == "train"],
            "eval_loss": result.metrics["eval"]["loss"], "scores": [float(s) for s in scores]}


def _close(got: float, want: float) -> bool:
    if os.environ.get("REWARDKIT_GOLDEN_EXACT") == "1":
        return got == want
    return math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_model_scores_and_training_losses_match_the_goldens(case, tiny_model_dir, hh_file, tmp_path):
    got = _run(case, tiny_model_dir, hh_file, tmp_path)
    if os.environ.get("REWARDKIT_UPDATE_GOLDEN") == "1":
        table = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        table[case] = got
        GOLDEN.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
        pytest.skip("golden written")
    want = json.loads(GOLDEN.read_text())[case]
    assert len(got["train_losses"]) == len(want["train_losses"]) == 3
    for key in ("train_losses", "scores"):
        bad = [(i, g, w) for i, (g, w) in enumerate(zip(got[key], want[key], strict=True)) if not _close(g, w)]
        assert not bad, f"{case} {key}: (index, got, golden) {bad}"
    assert _close(got["eval_loss"], want["eval_loss"]), (got["eval_loss"], want["eval_loss"])
