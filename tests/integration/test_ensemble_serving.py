"""An ensemble model through every front-end: `rewardkit score` columns, the HTTP server (/score, /get_reward),
the OpenRLHF adapter, export (num_labels = K, the aggregation in rewardkit.json and the card) and `rewardkit
eval` (uncertainty metrics and the report figure)."""

from __future__ import annotations

import json

import pytest
import torch

import rewardkit
from rewardkit.cli import main
from rewardkit.config import SplitConfig
from rewardkit.eval.evaluate import evaluate_pair_file
from rewardkit.eval.report import write_report
from rewardkit.export import export_model
from rewardkit.models.heads import HeadSpec
from rewardkit.serve.adapters import openrlhf_reward_func
from rewardkit.serve.scorer import Scorer
from rewardkit.serve.server import ServerConfig

from ..conftest import HH_SAMPLE
from ..unit.test_score_batch import SINGLES, write_jsonl
from .export_helpers import TEXT_PROMPTS, TEXT_RESPONSES, make_rewardkit_dir
from .test_server import TOKEN, Running

SPEC = HeadSpec(head="ensemble", ensemble_size=4, ensemble_aggregate="mean_minus_std", ensemble_beta=0.5)


@pytest.fixture(scope="module")
def ensemble_dir(tokenizer_dirs, tmp_path_factory):
    return make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path_factory.mktemp("ens") / "model", spec=SPEC)


@pytest.fixture(scope="module")
def scorer(ensemble_dir):
    return Scorer.from_pretrained(ensemble_dir)


def _k(scorer, prompts, responses) -> torch.Tensor:
    return torch.tensor([r["rewards_k"] for r in scorer.score_uncertainty(prompts, responses)])


def test_score_cli_writes_reward_mean_std_and_the_k_rewards(ensemble_dir, scorer, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLES + HH_SAMPLE[:2])
    out = tmp_path / "out.jsonl"
    assert main(["score", str(ensemble_dir), str(src), "-o", str(out), "--aggregate", "min"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    single = rows[0]
    k = torch.tensor(single["rewards_k"])
    assert len(single["rewards_k"]) == 4 and single["reward_std"] > 0
    assert single["reward"] == pytest.approx(k.min().item(), abs=1e-6)  # --aggregate min
    assert single["reward_mean"] == pytest.approx(k.mean().item(), abs=1e-6)
    assert single["reward_std"] == pytest.approx(k.std(correction=0).item(), abs=1e-6)
    pair = rows[len(SINGLES)]
    assert {"reward_chosen", "reward_chosen_mean", "reward_chosen_std", "rewards_k_chosen",
            "reward_rejected", "reward_rejected_std", "rewards_k_rejected"} <= set(pair)
    stored = scorer.score([SINGLES[0]["prompt"]], [SINGLES[0]["response"]])[0]  # default: mean - 0.5 std
    assert stored == pytest.approx(k.mean().item() - 0.5 * k.std(correction=0).item(), abs=1e-5)


def test_aggregate_on_a_plain_model_is_a_clear_error(tokenizer_dirs, tmp_path, capsys):
    plain = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "plain")
    src = write_jsonl(tmp_path / "in.jsonl", SINGLES[:1])
    assert main(["score", str(plain), str(src), "-o", str(tmp_path / "o.jsonl"), "--aggregate", "min"]) != 0
    assert "is not an ensemble" in capsys.readouterr().err


def test_server_returns_uncertainty_and_honours_a_per_request_aggregate(scorer):
    items = [{"prompt": p, "response": r} for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    k = _k(scorer, TEXT_PROMPTS, TEXT_RESPONSES)
    with Running(scorer, ServerConfig(api_key=TOKEN)) as srv:
        status, body = srv.post("/score", {"items": items})
        assert status == 200
        assert body["rewards"] == pytest.approx((k.mean(1) - 0.5 * k.std(1, correction=0)).tolist(), abs=1e-5)
        assert body["reward_std"] == pytest.approx(k.std(1, correction=0).tolist(), abs=1e-5)
        assert torch.allclose(torch.tensor(body["rewards_k"]), k, atol=1e-5)
        status, body = srv.post("/score", {"items": items, "aggregate": "mean_minus_std", "beta": 2.0})
        assert body["rewards"] == pytest.approx((k.mean(1) - 2.0 * k.std(1, correction=0)).tolist(), abs=1e-5)
        status, body = srv.post("/score", {"items": items, "aggregate": "median"})
        assert status == 422 and "aggregate" in json.dumps(body)
        queries = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
        status, body = srv.post("/get_reward", {"query": queries, "prompts": TEXT_PROMPTS, "aggregate": "min"})
        assert status == 200 and len(body["rewards_k"]) == len(queries)
        kq = torch.tensor(body["rewards_k"])
        assert body["rewards"] == pytest.approx(kq.min(1).values.tolist(), abs=1e-6)
        assert body["extra_logs"]["reward_std"] == pytest.approx(kq.std(1, correction=0).tolist(), abs=1e-5)


def test_openrlhf_adapter_returns_the_aggregate_and_logs_the_spread(scorer):
    queries = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    out = openrlhf_reward_func(scorer, aggregate="mean", with_uncertainty=True)(queries, TEXT_PROMPTS)
    assert out["rewards"].shape == (len(queries),)
    assert torch.allclose(out["rewards"], out["extra_logs"]["reward_mean"])
    assert (out["extra_logs"]["reward_std"] > 0).all()


def test_export_gives_the_k_scores_in_transformers_and_the_aggregation_in_rewardkit_json(ensemble_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "out"
    result = export_model(ensemble_dir, out)
    assert result.readout == "logits" and result.checks["interop_max_abs_diff"] <= 1e-4
    manifest = json.loads((out / "rewardkit.json").read_text())
    assert manifest["ensemble_size"] == 4
    assert manifest["export"]["ensemble"]["aggregate"] == "mean_minus_std"
    assert manifest["export"]["ensemble"]["beta"] == 0.5
    card = (out / "README.md").read_text()
    assert "ensemble of 4 reward heads" in card and "logits.mean(-1) - 0.5 * logits.std(-1, correction=0)" in card
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 4 and model.config.id2label[3] == "head_3"
    want = _k(rewardkit.load_model(ensemble_dir), TEXT_PROMPTS, TEXT_RESPONSES)
    with torch.no_grad():
        got = torch.stack([model(**tok(p + r, return_tensors="pt")).logits[0]
                           for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)])
    assert torch.allclose(got, want, atol=1e-4)


def test_eval_reports_uncertainty_metrics_and_the_figure(scorer, hh_file, tmp_path):
    ev = evaluate_pair_file(scorer, SplitConfig(path=str(hh_file)), n_boot=20)
    u = ev.metrics["uncertainty"]
    assert u["heads"] == 4 and u["pairs"] == ev.metrics["pairs"]
    assert u["accuracy"] == pytest.approx(ev.metrics["accuracy"], abs=1e-9)  # ranked by the same aggregate
    assert sum(q["count"] for q in u["by_quantile"]) == u["pairs"]
    html = write_report(ev, tmp_path / "report").read_text()
    assert "fig-uncertainty" in html and "AUROC of std for a wrong pair" in html
    assert (tmp_path / "report" / "uncertainty.png").exists()


def test_eval_cli_prints_the_uncertainty_figures_it_computed(ensemble_dir, hh_file, capsys):
    assert main(["eval", str(ensemble_dir), str(hh_file), "--json", "--bootstrap", "20"]) == 0
    u = json.loads(capsys.readouterr().out)["uncertainty"]
    assert main(["eval", str(ensemble_dir), str(hh_file), "--bootstrap", "20"]) == 0
    text = capsys.readouterr().out
    assert "ensemble (4 heads, reward mean_minus_std)" in text
    lo, hi = u["auroc_std_ci"]
    assert f"AUROC(std -> wrong) {u['auroc_std']:.4f} [{lo:.4f}, {hi:.4f}]" in text
    assert f"ECE ensemble        {u['ece_ensemble']:.4f}" in text
    quant = ", ".join(f"{q['accuracy']:.3f}" for q in u["by_quantile"])
    assert f"accuracy by std quartile (low -> high) {quant}" in text
