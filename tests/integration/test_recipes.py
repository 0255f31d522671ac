"""Every recipe in configs/recipes/ trains for 2 steps through the CLI on a tiny random model, and its saved
model reloads and scores. The real data each recipe names is swapped for the bundled example file of the same
format (examples/data/), so the test runs offline and fast; docs/recipes.md lists the figures on real data."""

import json
import math
import re

import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config

from ..conftest import REPO

RECIPES = sorted((REPO / "configs" / "recipes").glob("*.yaml"))
EXAMPLE_ATTRIBUTES = ["helpfulness", "correctness", "verbosity"]


def example_data(cfg) -> tuple[str, str]:
    """(example file, data.format) of the format the recipe's loss trains on."""
    if cfg.data.ratings.to_pairs != "off":
        return "scalar.jsonl", "scalar"  # ratings -> pairs inside the loader
    by_loss = {"cross_entropy": "binary", "mse": "scalar", "rmse": "scalar", "ranking": "ranked",
               "multi_attribute_mse": "multi", "step_bce": "steps", "step_ce": "steps"}
    fmt = by_loss.get(cfg.loss.name, "pairs")
    return f"{fmt}.jsonl", fmt


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_recipe_config_trains_two_steps_on_a_tiny_model_and_its_model_reloads(path, tiny_model_dir, tmp_path):
    cfg = load_config(path)
    arch = "bert" if cfg.model.name == "minilm-l6" else "llama"
    file, fmt = example_data(cfg)
    data = str(REPO / "examples" / "data" / file)
    out = tmp_path / path.stem
    over = ["--model.name", str(tiny_model_dir(arch)), "--model.gguf_file", "null", "--data.adapter", "null",
            "--data.format", fmt, "--data.train", data, "--data.eval", data, "--data.max_length", "64",
            "--train.max_steps", "2", "--train.batch_size", "2", "--train.eval_every", "null",
            "--train.tensorboard", "false", "--train.eval_zero_shot", "false", "--output_dir", str(out)]
    if cfg.model.head == "judge" and cfg.model.judge.mode == "pairwise":  # two replies share one context
        over[over.index("--data.max_length") + 1] = "256"
    if cfg.model.head == "multi":
        over += ["--model.attributes", json.dumps(EXAMPLE_ATTRIBUTES)]
        if cfg.model.weighting == "fixed":
            over += ["--model.attribute_weights", "[0.5, 0.3, 0.2]"]
    if cfg.attribute_weights is not None:  # the learned weighting's second stage, on example ratings -> pairs
        scalar = str(REPO / "examples" / "data" / "scalar.jsonl")
        over += ["--attribute_weights.train", scalar, "--attribute_weights.eval", scalar,
                 "--attribute_weights.steps", "20"]
    assert main(["train", str(path), *over]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2
    if cfg.attribute_weights is not None:
        assert summary["attribute_weights"]["train"]["pairs"] > 0
    meta = json.loads((out / "model" / "rewardkit.json").read_text())
    assert meta["head"] == cfg.model.head
    assert meta["training"]["loss"] == cfg.loss.name
    scorer = rewardkit.load_model(out)
    if scorer.is_pairwise_judge:  # no reward for one response alone: it compares two, in both orders
        judged = scorer.compare(["Who wrote Hamlet?"], ["William Shakespeare."], ["Charles Dickens."])
        scores = [judged[0].margin, judged[0].position_bias]
    else:
        scores = scorer.score(["Who wrote Hamlet?", "Who wrote Hamlet?"], ["William Shakespeare.", "Charles Dickens."])
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)


def test_recipes_table_lists_every_recipe_config_and_existing_tests():
    doc = (REPO / "docs" / "recipes.md").read_text()
    for path in RECIPES:
        assert f"configs/recipes/{path.name}" in doc, path.name
    tests = set(re.findall(r"`(tests/[\w/]+\.py)::(\w+)", doc))
    assert tests
    for file, name in tests:
        assert f"def {name}(" in (REPO / file).read_text(), f"{file}::{name}"
