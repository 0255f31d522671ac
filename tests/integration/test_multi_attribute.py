"""Multi-attribute models end to end: `rewardkit eval` on multi-attribute ratings (per-attribute metrics, printed
and in --json), and the second stage of `weighting: learned` that fits the attribute weights on preference pairs
(`rewardkit fit-weights`, `rewardkit.fit_attribute_weights` and the `attribute_weights` config section)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import rewardkit
from rewardkit.cli import main
from rewardkit.eval.metrics import multi_attribute_metrics
from rewardkit.models.heads import HEAD_FILE
from rewardkit.training.tasks import score_outputs

from ..conftest import REPO

MULTI = REPO / "examples" / "data" / "multi.jsonl"
ATTRS = ["helpfulness", "correctness", "verbosity"]
PROMPT = "Name a fruit and say something about it."
ANSWERS = [f"{fruit} {fact}" for fruit in ("Apple.", "A banana!", "Cherries, obviously", "Grapes", "Mango")
           for fact in ("", " It is sweet.", " Many people eat it every single day of the year.", " Yes.",
                        " It grows on trees, mostly in warm places, and tastes good.")]


def _train_args(tiny, out: Path) -> list[str]:
    return ["train", str(REPO / "configs" / "recipes" / "encoder-multi-learned-usr.yaml"), "--model.name", str(tiny),
            "--data.adapter", "null", "--data.format", "multi", "--data.train", str(MULTI), "--data.eval", str(MULTI),
            "--data.max_length", "64", "--model.attributes", json.dumps(ATTRS), "--train.max_steps", "3",
            "--train.batch_size", "2", "--train.lr", "1e-3", "--train.eval_every", "null", "--train.tensorboard",
            "false", "--train.eval_zero_shot", "false", "--attribute_weights", "null", "--output_dir", str(out)]


@pytest.fixture(scope="module")
def multi_run(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("multi") / "run"
    assert main(_train_args(tiny_model_dir("bert"), out)) == 0
    return out


def _outputs(run: Path, prompts, responses) -> torch.Tensor:
    scorer = rewardkit.load_model(run)
    seqs = [scorer.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
    return score_outputs(scorer.model, seqs, scorer.tokenizer.pad_token_id, scorer.device)[1]


def test_eval_multi_attribute_ratings_through_the_cli_gives_per_attribute_metrics(multi_run, tmp_path, capsys):
    rows = [json.loads(line) for line in MULTI.read_text().splitlines() if line.strip()]
    assert main(["eval", str(multi_run), str(MULTI), "--json", "--bootstrap", "40", "--report",
                 str(tmp_path / "rep")]) == 0
    m = json.loads(capsys.readouterr().out)
    z = _outputs(multi_run, [r["prompt"] for r in rows], [r["response"] for r in rows]).double().numpy()
    target = {a: np.array([np.nan if r["scores"].get(a) is None else r["scores"][a] for r in rows]) for a in ATTRS}
    direct = multi_attribute_metrics({a: z[:, k] for k, a in enumerate(ATTRS)}, target)
    assert m["format"] == "multi" and m["examples_scored"] == len(rows)
    assert set(m["attributes"]) == set(ATTRS)
    for a in ATTRS:
        assert m["attributes"][a]["n"] == int(np.isfinite(target[a]).sum())  # missing ratings left out, not 0
        assert m["attributes"][a]["rmse"] == pytest.approx(direct["attributes"][a]["rmse"], rel=1e-5)
        assert m["attributes"][a]["pearson"] == pytest.approx(direct["attributes"][a]["pearson"], abs=1e-5)
    assert m["attributes"]["verbosity"]["n"] < len(rows)
    assert m["pearson"] == pytest.approx(direct["mean"]["pearson"], abs=1e-5)
    assert len(m["pearson_ci"]) == 2 and "pearson_ci" in m["attributes"]["helpfulness"]
    assert "Per attribute" in (tmp_path / "rep" / "report.html").read_text()

    assert main(["eval", str(multi_run), str(MULTI), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert "multi:" in text and all(a in text for a in ATTRS)


def test_eval_multi_attribute_data_on_a_single_reward_model_is_an_error_naming_the_head(tiny_model_dir, tmp_path,
                                                                                     capsys):
    out = tmp_path / "scalar"
    args = _train_args(tiny_model_dir("bert"), out)
    args[1] = str(REPO / "configs" / "recipes" / "encoder-ranking-oasst.yaml")
    args[args.index("--data.format") + 1] = "ranked"
    for flag in ("--data.train", "--data.eval"):
        args[args.index(flag) + 1] = str(REPO / "examples" / "data" / "ranked.jsonl")
    i = args.index("--model.attributes")
    del args[i:i + 2]
    assert main(args) == 0
    assert main(["eval", str(out), str(MULTI), "--json"]) == 2
    assert "head multi" in capsys.readouterr().err


def _pairs_by_first_attribute(run: Path, path: Path) -> tuple[torch.Tensor, list[dict]]:
    """Pairs of ANSWERS ordered by the model's own first attribute output: weights that favour that attribute
    rank them right, a uniform mean of all three does not always."""
    z = _outputs(run, [PROMPT] * len(ANSWERS), ANSWERS)
    rows = []
    for i in range(len(ANSWERS)):
        for j in range(i + 1, len(ANSWERS)):
            hi, lo = (i, j) if z[i, 0] > z[j, 0] else (j, i)
            rows.append({"prompt": PROMPT, "chosen": ANSWERS[hi], "rejected": ANSWERS[lo]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return z, rows


def test_fit_weights_learns_attribute_weights_that_rank_the_fitting_pairs_better_than_uniform(multi_run, tmp_path,
                                                                                             capsys):
    z, rows = _pairs_by_first_attribute(multi_run, tmp_path / "pairs.jsonl")
    # the uniform reward as fit-weights combines it (z . [1/K]*K in fp32): a mean() sums in another order, and a
    # near-tie between two answers (seen under bf16 on an AVX512-BF16 CPU) then flips one pair of 300
    uniform = torch.full((len(ATTRS),), 1.0 / len(ATTRS))
    r = z.float() @ uniform
    uniform_acc = float(np.mean([(r[ANSWERS.index(row["chosen"])] > r[ANSWERS.index(row["rejected"])]).item()
                                 for row in rows]))
    assert uniform_acc < 0.95  # the task is not already solved by the uniform mean
    assert main(["fit-weights", str(multi_run), str(tmp_path / "pairs.jsonl"), "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["attributes"] == ATTRS and sum(fit["weights"]) == pytest.approx(1.0, abs=1e-6)
    assert fit["train"]["pairs"] == len(rows)
    assert fit["train"]["uniform"]["accuracy"] == pytest.approx(uniform_acc)
    assert fit["train"]["fitted"]["accuracy"] > fit["train"]["uniform"]["accuracy"]
    assert max(fit["weights"]) == fit["weights"][0] > 1 / 3 + 0.1  # the weights moved, to the attribute that ranks

    # saved: the head file holds the fitted logits and the reloaded model's reward is z . weights
    logits = load_file(str(multi_run / "model" / HEAD_FILE))["attribute_logits"]
    assert logits.softmax(0).tolist() == pytest.approx(fit["weights"], abs=1e-6)
    rewards = rewardkit.load_model(multi_run).score([PROMPT] * 3, ANSWERS[:3])
    assert rewards == pytest.approx((z[:3].double() @ torch.tensor(fit["weights"], dtype=torch.float64)).tolist(),
                                    abs=1e-5)
    meta = json.loads((multi_run / "model" / "rewardkit.json").read_text())
    assert meta["training"]["attribute_weights"]["weights"] == fit["weights"]


def test_fit_weights_reads_ab_judgments_through_data_overrides(multi_run, tmp_path, capsys):
    _, rows = _pairs_by_first_attribute(multi_run, tmp_path / "pairs.jsonl")
    ab = [{"question": r["prompt"], "response_a": r["chosen"], "response_b": r["rejected"], "winner": "model_a"}
          if i % 2 else {"question": r["prompt"], "response_a": r["rejected"], "response_b": r["chosen"],
                         "winner": "model_b"} for i, r in enumerate(rows)]
    path = tmp_path / "ab.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ab))
    assert main(["fit-weights", str(multi_run), str(path), "--json", "--dry-run"]) == 2  # not pairs as written
    capsys.readouterr()
    assert main(["fit-weights", str(multi_run), str(path), "--json", "--dry-run", "--data.format", "ab",
                 "--data.fields.prompt", "question", "--data.winner.a", "model_a", "--data.winner.b", "model_b"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["train"]["pairs"] == len(rows)
    assert fit["train"]["fitted"]["accuracy"] > fit["train"]["uniform"]["accuracy"]


def test_fit_weights_refuses_a_model_without_learned_weighting(tiny_model_dir, tmp_path):
    out = tmp_path / "fixed"
    assert main(_train_args(tiny_model_dir("bert"), out) + ["--model.weighting", "mean"]) == 0
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}) + "\n")
    with pytest.raises(ValueError, match="weighting learned"):
        rewardkit.fit_attribute_weights(str(out), str(tmp_path / "p.jsonl"))


def test_attribute_weights_config_section_fits_the_weights_after_training(tiny_model_dir, multi_run, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    _pairs_by_first_attribute(multi_run, pairs)  # pairs of any kind: this test checks the stage runs and saves
    out = tmp_path / "staged"
    args = _train_args(tiny_model_dir("bert"), out) + ["--attribute_weights.train", str(pairs),
                                                         "--attribute_weights.eval", str(pairs),
                                                         "--attribute_weights.steps", "50"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    fit = summary["attribute_weights"]
    assert fit["train"]["pairs"] == fit["eval"]["pairs"] > 0
    assert fit["scale"] > 0 and fit["train"]["fitted"]["accuracy"] >= 0
    logits = load_file(str(out / "model" / HEAD_FILE))["attribute_logits"]
    assert logits.softmax(0).tolist() == pytest.approx(fit["weights"], abs=1e-6)
    assert not torch.allclose(logits, torch.zeros_like(logits))
