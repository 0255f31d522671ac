"""Process reward models end to end on a tiny random decoder: training from every step layout, scoring per step
through the API and the CLI."""

import json
import math

import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config
from rewardkit.data.steps import Stepwise

from ..conftest import REPO

STEPS = REPO / "examples" / "data" / "steps"
LAYOUTS = {"documented": (REPO / "examples" / "data" / "steps.jsonl", None),
           "math-shepherd": (STEPS / "math-shepherd.jsonl", "math-shepherd"),
           "prm800k": (STEPS / "prm800k.jsonl", "prm800k"),
           "trl-stepwise": (STEPS / "trl-stepwise.jsonl", "trl-stepwise")}


def _config(model_dir, data, adapter, out, loss="step_bce", **extra):
    cfg = {"model": {"name": str(model_dir), "head": "step", "step_outputs": 1 if loss == "step_bce" else 2},
           "data": {"train": str(data), "eval": str(data), "format": "steps", "adapter": adapter, "max_length": 128},
           "loss": {"name": loss},
           "train": {"precision": "fp32", "lr": 1e-3, "batch_size": 4, "max_steps": 4, "tensorboard": False, "eval_zero_shot": False},
           "output_dir": str(out)}
    for key, value in extra.items():
        section, name = key.split("__")
        cfg[section][name] = value
    return load_config(None, None, base=cfg)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_a_prm_trains_from_each_layout_and_scores_per_step(layout, tiny_model_dir, tmp_path):
    data, adapter = LAYOUTS[layout]
    result = rewardkit.train(_config(tiny_model_dir("llama"), data, adapter, tmp_path / "run"))
    m = result.metrics["eval"]
    assert m["steps"] > 0 and 0 <= m["step_accuracy"] <= 1 and math.isfinite(m["loss"])
    assert "earliest_error_f1" in m and "earliest_error_accuracy_erroneous" in m
    truncation = result.metrics["data"]["train_truncation"]
    assert truncation["solutions"] > 0 and truncation["steps"] >= truncation["solutions"]
    scorer = rewardkit.load_model(tmp_path / "run")
    assert scorer.meta.head == "step" and scorer.meta.steps["separator"] == "\n\n"
    (out,) = scorer.score_steps(["Start at 2. Add 3, add 4."], [["2 + 3 = 5", "5 + 4 = 9"]])
    assert len(out.step_rewards) == 2 and all(0 < p < 1 for p in out.step_rewards)
    assert out.reward == pytest.approx(min(out.step_rewards))


def test_step_ce_with_a_step_token_trains_and_the_token_travels(tiny_model_dir, tmp_path):
    cfg = _config(tiny_model_dir("llama"), LAYOUTS["documented"][0], None, tmp_path / "run", loss="step_ce",
                  data__steps={"step_token": "<|step|>"}, loss__step_target="until_first_error",
                  loss__class_weights=[2.0, 1.0], model__step_aggregate="prod")
    rewardkit.train(cfg)
    scorer = rewardkit.load_model(tmp_path / "run")
    tid = scorer.meta.steps["step_token_id"]
    assert scorer.tokenizer.convert_tokens_to_ids("<|step|>") == tid and scorer.meta.step_aggregate == "prod"
    enc = scorer.step_encoder.encode(Stepwise("p", ["a", "b"], [None, None], "x"))
    assert [enc.input_ids[e] for e in enc.step_ends] == [tid, tid]
    (out,) = scorer.score_steps(["p"], [["a", "b"]])
    assert out.reward == pytest.approx(out.step_rewards[0] * out.step_rewards[1])


def test_loss_and_head_must_match(tiny_model_dir, tmp_path):
    cfg = _config(tiny_model_dir("llama"), LAYOUTS["documented"][0], None, tmp_path / "run", loss="step_ce",
                  model__step_outputs=1)
    with pytest.raises(ValueError, match="step_outputs 2"):
        rewardkit.train(cfg)


def test_cli_score_writes_step_rewards_and_the_aggregate(tiny_model_dir, tmp_path, capsys):
    rewardkit.train(_config(tiny_model_dir("llama"), LAYOUTS["documented"][0], None, tmp_path / "run"))
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"prompt": "Start at 2. Add 3.", "steps": ["2 + 3 = 5"], "id": 1}) + "\n"
                   + json.dumps({"prompt": "Start at 1. Add 1, add 1.", "steps": ["1 + 1 = 2", "2 + 1 = 3"]}) + "\n")
    dst = tmp_path / "out.jsonl"
    assert main(["score", str(tmp_path / "run"), str(src), "-o", str(dst)]) == 0
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [len(r["step_rewards"]) for r in rows] == [1, 2] and rows[0]["id"] == 1
    assert all(r["reward"] == pytest.approx(min(r["step_rewards"])) for r in rows)
    direct = rewardkit.load_model(tmp_path / "run").score_steps([rows[1]["prompt"]], [rows[1]["steps"]])[0]
    assert rows[1]["step_rewards"] == pytest.approx(direct.step_rewards, abs=1e-6)


def test_cli_eval_reports_step_metrics_with_figures(tiny_model_dir, tmp_path, capsys):
    data = LAYOUTS["documented"][0]
    rewardkit.train(_config(tiny_model_dir("llama"), data, None, tmp_path / "run"))
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), str(data), "--report", str(tmp_path / "rep"), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)
    assert m["solutions"] == 12 and m["steps"] == 43  # every labelled step of the example file (one is null)
    assert m["best_of_n_problems"] == 6 and 0 <= m["best_of_n_min"] <= 1 and m["best_of_n_majority_vote"] is not None
    assert (tmp_path / "rep" / "step_report.png").stat().st_size > 0
    assert "earliest_error_f1" in (tmp_path / "rep" / "report.html").read_text()
    assert main(["eval", str(tmp_path / "run"), str(STEPS / "math-shepherd.jsonl"), "--adapter", "math-shepherd"]) == 0
    assert "earliest error: erroneous" in capsys.readouterr().out
