"""The LM-head judge through the trainer, the scorer and the saved directory, on a tiny random causal LM with
the real Qwen2 tokenizer (its chat template renders the judge question)."""

from __future__ import annotations

import json

import pytest
import torch

import rewardkit
from rewardkit.models.judge import judge_text

from ..conftest import REPO, load_test_tokenizer, tiny_config

PAIRS = str(REPO / "examples" / "data" / "pairs.jsonl")
BINARY = str(REPO / "examples" / "data" / "binary.jsonl")
PROMPTS = ["\n\nHuman: How do I make tea?\n\nAssistant:", "\n\nHuman: How do I make tea?\n\nAssistant:",
           "Who wrote Hamlet?"]
REPLIES = [" Boil water and steep the leaves.", " I will not tell you.", "William Shakespeare."]


@pytest.fixture(scope="module")
def tiny_causal_lm(tokenizer_dirs, tmp_path_factory):
    from transformers import Qwen2ForCausalLM

    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny-causal-qwen2")
    Qwen2ForCausalLM(tiny_config("qwen2", len(tok))).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _config(model_dir, out, loss="bradley_terry", data=PAIRS, fmt="pairs", **model) -> dict:
    return {"model": {"name": str(model_dir), "head": "judge", **model},
            "data": {"train": {"path": data}, "eval": {"path": data}, "format": fmt, "max_length": 96},
            "loss": {"name": loss}, "train": {"precision": "fp32", "max_steps": 3, "batch_size": 2, "lr": 1e-3, "eval_every": None,
                                              "tensorboard": False},
            "output_dir": str(out)}


@pytest.fixture(scope="module")
def trained_judge(tiny_causal_lm, tmp_path_factory):
    out = tmp_path_factory.mktemp("judge-run")
    return rewardkit.train(_config(tiny_causal_lm, out)), out


def test_judge_trains_with_bradley_terry_and_adds_no_parameters(trained_judge, tiny_causal_lm):
    result, out = trained_judge
    assert result.metrics["steps"] == 3 and result.metrics["eval"]["pairs"] > 0
    model = result.scorer.model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    # the judge's parameters are the causal LM's (plus the added pad row), nothing else
    n_base = sum(p.numel() for p in base.parameters())
    n_pad = base.config.hidden_size * (1 if base.config.tie_word_embeddings else 2)
    assert sum(p.numel() for p in model.parameters()) == n_base + n_pad


def test_saved_judge_records_template_token_ids_and_the_vllm_command(trained_judge):
    _, out = trained_judge
    meta = json.loads((out / "model" / "rewardkit.json").read_text())
    assert meta["head"] == "judge"
    judge = meta["judge"]
    tok = load_tokenizer_of(out / "model")
    assert tok.convert_ids_to_tokens([judge["pos_token_id"], judge["neg_token_id"]]) == ["Yes", "No"]
    assert judge["question"].startswith("Is the assistant's last reply")
    assert '"classifier_from_token": ["No", "Yes"]' in judge["vllm_command"]
    assert '"method": "from_2_way_softmax"' in judge["vllm_command"] and "Qwen2ForSequenceClassification" in \
        judge["vllm_command"]
    assert (out / "model" / "config.json").exists() and \
        json.loads((out / "model" / "config.json").read_text())["architectures"] == ["Qwen2ForCausalLM"]


def load_tokenizer_of(path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def test_exported_judge_scores_equal_plain_transformers_logit_difference(trained_judge):
    """What vLLM's from_2_way_softmax computes: logit(Yes) - logit(No) at the judge text's last token."""
    from transformers import AutoModelForCausalLM

    result, out = trained_judge
    scorer = rewardkit.load_model(out)
    ours = scorer.score(PROMPTS, REPLIES)
    assert ours == pytest.approx(result.scorer.score(PROMPTS, REPLIES), abs=1e-4)
    hf = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    tok = load_tokenizer_of(out / "model")
    meta = json.loads((out / "model" / "rewardkit.json").read_text())["judge"]
    for prompt, reply, score in zip(PROMPTS, REPLIES, ours, strict=True):
        ids = tok(judge_text(tok, meta, prompt, reply), add_special_tokens=False, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = hf(ids).logits[0, -1]
        assert score == pytest.approx(float(logits[meta["pos_token_id"]] - logits[meta["neg_token_id"]]), abs=1e-4)


def test_judge_score_does_not_depend_on_batching_or_prompt_sharing(trained_judge):
    result, _ = trained_judge
    scorer = result.scorer
    together = scorer.score(PROMPTS, REPLIES)
    alone = [scorer.score([p], [r])[0] for p, r in zip(PROMPTS, REPLIES, strict=True)]
    scorer.share_prompts = False
    unshared = scorer.score(PROMPTS, REPLIES)
    scorer.share_prompts = True
    assert together == pytest.approx(alone, abs=1e-4) and together == pytest.approx(unshared, abs=1e-4)


def test_judge_trains_on_binary_labels_with_cross_entropy(tiny_causal_lm, tmp_path):
    result = rewardkit.train(_config(tiny_causal_lm, tmp_path, loss="cross_entropy", data=BINARY, fmt="binary"))
    assert result.metrics["steps"] == 3 and "auc" in result.metrics["eval"]


def test_judge_with_lora_trains_and_saves_a_merged_causal_lm(tiny_causal_lm, tmp_path):
    cfg = _config(tiny_causal_lm, tmp_path, lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    result = rewardkit.train(cfg)
    reloaded = rewardkit.load_model(tmp_path)
    assert reloaded.score(PROMPTS, REPLIES) == pytest.approx(result.scorer.score(PROMPTS, REPLIES), abs=1e-4)


def test_answer_token_of_two_tokens_fails_before_training_naming_the_key(tiny_causal_lm, tmp_path):
    with pytest.raises(ValueError, match=r"model\.judge\.yes_token 'Yes indeed' is 2 tokens"):
        rewardkit.train(_config(tiny_causal_lm, tmp_path, judge={"yes_token": "Yes indeed"}))


def test_export_writes_a_causal_lm_whose_judge_logits_equal_rewardkit_scores(trained_judge, tmp_path):
    from rewardkit.export.exporter import export_model

    result, out = trained_judge
    res = export_model(out, tmp_path / "exported")
    assert res.readout == "judge" and res.checks["interop_max_abs_diff"] <= 1e-4
    assert res.checks["fidelity_max_abs_diff"] <= 1e-4
    meta = json.loads((tmp_path / "exported" / "rewardkit.json").read_text())
    assert meta["judge"]["vllm_command"].startswith(f"vllm serve {tmp_path / 'exported'} --runner pooling")
    assert not meta["export"]["tokenizer_appends_score_token"]
    assert rewardkit.load_model(tmp_path / "exported").score(PROMPTS, REPLIES) == \
        pytest.approx(result.scorer.score(PROMPTS, REPLIES), abs=1e-4)
    assert "vllm serve" in (tmp_path / "exported" / "README.md").read_text()


def test_served_judge_returns_the_scorer_rewards_over_http(trained_judge):
    from rewardkit.serve.server import ServerConfig

    from .test_server import TOKEN, Running

    _, out = trained_judge
    scorer = rewardkit.load_model(out)
    items = [{"prompt": p, "response": r} for p, r in zip(PROMPTS, REPLIES, strict=True)]
    with Running(scorer, ServerConfig(api_key=TOKEN, max_wait_ms=50)) as running:
        status, body = running.post("/score", items)
    assert status == 200
    assert body["rewards"] == pytest.approx(scorer.score(PROMPTS, REPLIES), abs=1e-4)
