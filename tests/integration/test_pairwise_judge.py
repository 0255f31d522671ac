"""The pairwise LM-head judge (both replies in one context, logit(A) - logit(B), both orders averaged) through the
trainer, the scorer, the server and export, on a tiny random causal LM with the real Qwen2 tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

import rewardkit
from rewardkit.models.judge import judge_text

from .test_judge_head import BINARY, PAIRS, _config, load_tokenizer_of, tiny_causal_lm  # noqa: F401

PROMPTS = ["\n\nHuman: How do I make tea?\n\nAssistant:", "Who wrote Hamlet?", "Who wrote Hamlet?"]
FIRST = [" Boil water and steep the leaves.", "William Shakespeare.", "I don't know."]
SECOND = [" I will not tell you.", "Charles Dickens wrote it in 1850.", "William Shakespeare."]


def _pairwise(model_dir, out, **kw) -> dict:
    cfg = _config(model_dir, out, judge={"mode": "pairwise"}, **kw)
    cfg["data"]["max_length"] = 256  # two replies and the conversation in one context
    return cfg


@pytest.fixture(scope="module")
def trained_pairwise(tiny_causal_lm, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("pairwise-judge-run")
    return rewardkit.train(_pairwise(tiny_causal_lm, out)), out


def _plain_margin(hf, tok, settings, prompt, first, second) -> float:
    """What plain transformers (and vLLM's from_2_way_softmax classifier) computes for one order."""
    ids = tok(judge_text(tok, settings, prompt, first, second), add_special_tokens=False,
              return_tensors="pt").input_ids
    with torch.no_grad():
        z = hf(ids).logits[0, -1].float()
    return float(z[settings["pos_token_id"]] - z[settings["neg_token_id"]])


def test_training_loss_is_bradley_terry_on_the_order_averaged_margin(tiny_causal_lm):  # noqa: F811
    """The trainer's pairwise step on a pairwise judge's encoded pair equals BT on (m(c, r) - m(r, c)) / 2
    computed independently (PairwiseJudge, full LM logits)."""
    from rewardkit.config import load_config
    from rewardkit.data.collate import pair_batch
    from rewardkit.data.dataset import encode_pairs
    from rewardkit.data.formats import Pair
    from rewardkit.losses import bradley_terry
    from rewardkit.models.judge import PairwiseJudge
    from rewardkit.models.reward_model import build_model
    from rewardkit.training.trainer import text_encoders

    cfg = load_config(base=_pairwise(tiny_causal_lm, "unused"))
    model, tok, kind = build_model(cfg.model, seed=0)
    model.eval()
    renderer, encoder = text_encoders(model, tok, kind, cfg.data)
    pair = Pair(PROMPTS[0], FIRST[0], SECOND[0], None, "t:1")
    (enc,) = encode_pairs([pair], renderer, encoder)
    batch = pair_batch([enc.chosen], [enc.rejected], [0.0], tok.pad_token_id, "right")
    with torch.no_grad():
        rewards = model(batch.tokens).float()
    ours = bradley_terry(rewards[:1], rewards[1:])
    judge = PairwiseJudge(model.hf, tok, cfg.model.judge, max_length=256)
    with torch.no_grad():
        reference = judge.loss([pair.prompt], [pair.chosen], [pair.rejected])
    settings = model.judge_settings
    m_cr = _plain_margin(model.hf, tok, settings, pair.prompt, pair.chosen, pair.rejected)
    m_rc = _plain_margin(model.hf, tok, settings, pair.prompt, pair.rejected, pair.chosen)
    assert float(ours) == pytest.approx(float(reference), abs=1e-5)
    assert float(ours) == pytest.approx(float(-torch.nn.functional.logsigmoid(torch.tensor((m_cr - m_rc) / 2))),
                                        abs=1e-5)
    assert float(rewards[0] - rewards[1]) == pytest.approx((m_cr - m_rc) / 2, abs=1e-5)


def test_pairwise_judge_trains_and_its_eval_accuracy_is_the_order_averaged_margin_sign(trained_pairwise):
    from rewardkit.config import SplitConfig
    from rewardkit.eval.evaluate import evaluate_pair_file

    result, out = trained_pairwise
    assert result.metrics["steps"] == 3 and result.metrics["eval"]["pairs"] > 0
    meta = json.loads((out / "model" / "rewardkit.json").read_text())["judge"]
    assert meta["mode"] == "pairwise" and (meta["pos_piece"], meta["neg_piece"]) == ("A", "B")
    assert '"classifier_from_token": ["B", "A"]' in meta["vllm_command"]
    scorer = rewardkit.load_model(out)
    ev = evaluate_pair_file(scorer, SplitConfig(path=PAIRS))
    judged = scorer.compare([p.prompt for p in ev.pairs], [p.chosen for p in ev.pairs],
                            [p.rejected for p in ev.pairs])
    assert ev.metrics["accuracy"] == pytest.approx(sum(j.margin > 0 for j in judged) / len(judged))
    assert ev.r_chosen - ev.r_rejected == pytest.approx([j.margin for j in judged], abs=1e-4)
    assert ev.metrics["position_bias"]["mean"] == pytest.approx(
        sum(j.position_bias for j in judged) / len(judged), abs=1e-4)
    assert result.metrics["eval"]["accuracy"] == pytest.approx(ev.metrics["accuracy"])


def test_compare_is_antisymmetric_and_reports_the_position_bias(trained_pairwise):
    scorer = trained_pairwise[0].scorer
    ab = scorer.compare(PROMPTS, FIRST, SECOND)
    ba = scorer.compare(PROMPTS, SECOND, FIRST)
    for x, y in zip(ab, ba, strict=True):
        assert x.margin == pytest.approx(-y.margin, abs=1e-5)
        assert x.position_bias == pytest.approx(y.position_bias, abs=1e-5)
        assert x.margin == pytest.approx((x.margin_a_first - x.margin_b_first) / 2, abs=1e-6)
        assert x.position_bias == pytest.approx((x.margin_a_first + x.margin_b_first) / 2, abs=1e-6)
    assert any(abs(x.position_bias) > 1e-3 for x in ab)  # a random judge has a bias: it is not averaged away here


def test_saved_pairwise_judge_equals_plain_transformers_in_both_orders(trained_pairwise):
    from transformers import AutoModelForCausalLM

    _, out = trained_pairwise
    scorer = rewardkit.load_model(out)
    hf = AutoModelForCausalLM.from_pretrained(out / "model").eval()
    tok = load_tokenizer_of(out / "model")
    settings = json.loads((out / "model" / "rewardkit.json").read_text())["judge"]
    for p, x, y, j in zip(PROMPTS, FIRST, SECOND, scorer.compare(PROMPTS, FIRST, SECOND), strict=True):
        m_xy, m_yx = _plain_margin(hf, tok, settings, p, x, y), _plain_margin(hf, tok, settings, p, y, x)
        assert j.margin_a_first == pytest.approx(m_xy, abs=1e-4) and j.margin_b_first == pytest.approx(m_yx, abs=1e-4)
        assert j.margin == pytest.approx((m_xy - m_yx) / 2, abs=1e-4)


def test_compare_does_not_depend_on_batching_or_prompt_sharing_and_one_order_reads_a_first(trained_pairwise):
    scorer = trained_pairwise[0].scorer
    together = scorer.compare(PROMPTS, FIRST, SECOND)
    alone = [scorer.compare([p], [x], [y])[0] for p, x, y in zip(PROMPTS, FIRST, SECOND, strict=True)]
    scorer.share_prompts = False
    unshared = scorer.compare(PROMPTS, FIRST, SECOND)
    scorer.share_prompts = True
    margins = [j.margin for j in together]
    assert margins == pytest.approx([j.margin for j in alone], abs=1e-4)
    assert margins == pytest.approx([j.margin for j in unshared], abs=1e-4)
    one = scorer.compare(PROMPTS, FIRST, SECOND, both_orders=False)
    assert [j.margin for j in one] == pytest.approx([j.margin_a_first for j in together], abs=1e-4)
    assert all(j.position_bias is None and j.margin_b_first is None for j in one)


def test_pairwise_judge_has_no_single_reward_and_trains_on_pairs_only(trained_pairwise, tiny_causal_lm, tmp_path):  # noqa: F811
    scorer = trained_pairwise[0].scorer
    with pytest.raises(ValueError, match=r"pairwise judges two responses.*Scorer\.compare"):
        scorer.score(PROMPTS, FIRST)
    with pytest.raises(ValueError, match=r"trains on pairs \(loss bradley_terry or log_exp\)"):
        rewardkit.train(_pairwise(tiny_causal_lm, tmp_path, loss="cross_entropy", data=BINARY, fmt="binary"))


def test_pairwise_judge_as_a_trl_reward_function_compares_with_the_reference_column(trained_pairwise):
    scorer = trained_pairwise[0].scorer
    rewards = scorer(prompts=PROMPTS, completions=FIRST, reference=SECOND, trainer_state=None)
    assert rewards == pytest.approx([j.margin for j in scorer.compare(PROMPTS, FIRST, SECOND)], abs=1e-5)
    assert rewards == pytest.approx(scorer.score_against(PROMPTS, FIRST, SECOND), abs=1e-5)
    with pytest.raises(ValueError, match="'reference' column"):
        scorer(prompts=PROMPTS, completions=FIRST)


def test_export_writes_a_causal_lm_whose_logits_give_the_compare_margins(trained_pairwise, tmp_path):
    from rewardkit.export.exporter import export_model

    result, out = trained_pairwise
    res = export_model(out, tmp_path / "exported")
    assert res.readout == "judge" and res.checks["interop_max_abs_diff"] <= 1e-4
    assert res.checks["fidelity_max_abs_diff"] <= 1e-4 and res.checks["probes"] >= 2
    meta = json.loads((tmp_path / "exported" / "rewardkit.json").read_text())
    assert meta["judge"]["vllm_command"].startswith(f"vllm serve {tmp_path / 'exported'} --runner pooling")
    assert "(m(x, y) - m(y, x)) / 2" in meta["export"]["serving"]["reward"]
    exported = rewardkit.load_model(tmp_path / "exported")
    assert [j.margin for j in exported.compare(PROMPTS, FIRST, SECOND)] == \
        pytest.approx([j.margin for j in result.scorer.compare(PROMPTS, FIRST, SECOND)], abs=1e-4)
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "scorer.compare(" in card and "vllm serve" in card


def test_served_pairwise_judge_compares_over_http_and_refuses_single_rewards(trained_pairwise):
    from rewardkit.serve.server import ServerConfig

    from .test_server import TOKEN, Running

    _, out = trained_pairwise
    scorer = rewardkit.load_model(out)
    items = [{"prompt": p, "response_a": x, "response_b": y} for p, x, y in zip(PROMPTS, FIRST, SECOND, strict=True)]
    expected = scorer.compare(PROMPTS, FIRST, SECOND)
    with Running(scorer, ServerConfig(api_key=TOKEN, max_wait_ms=50)) as running:
        status, body = running.post("/compare", {"items": items})
        one_status, one = running.post("/compare", {"items": items, "both_orders": False})
        bad_status, bad = running.post("/compare", {"items": [{"prompt": "q", "response_a": "x"}]})
        score_status, score = running.post("/score", [{"prompt": "q", "response": "x"}])
    assert status == 200
    assert body["margins"] == pytest.approx([j.margin for j in expected], abs=1e-4)
    assert body["position_bias"] == pytest.approx([j.position_bias for j in expected], abs=1e-4)
    assert body["margins_a_first"] == pytest.approx([j.margin_a_first for j in expected], abs=1e-4)
    assert one_status == 200 and one["margins"] == pytest.approx([j.margin_a_first for j in expected], abs=1e-4)
    assert one["position_bias"] == [None, None, None]
    assert bad_status == 422 and bad["detail"][0]["loc"] == ["body", "items", 0, "response_b"]
    assert score_status == 422 and "POST /compare" in json.dumps(score)


def test_score_file_of_pairs_gives_margin_both_orders_and_position_bias(trained_pairwise, tmp_path, capsys):
    from rewardkit.cli import main

    _, out = trained_pairwise
    scorer = rewardkit.load_model(out)
    src = tmp_path / "pairs.jsonl"
    records = [{"prompt": p, "chosen": x, "rejected": y, "id": i}
               for i, (p, x, y) in enumerate(zip(PROMPTS, FIRST, SECOND, strict=True))]
    single = {"prompt": "Who wrote Hamlet?", "response": "William Shakespeare."}
    src.write_text("\n".join(json.dumps(r) for r in [records[0], single, *records[1:]]) + "\n")
    dest = tmp_path / "scored.jsonl"
    # a single response has no pairwise-judge reward: a clear error naming file and line, no traceback
    assert main(["score", str(out), str(src), "-o", str(dest)]) == 2
    assert f"{src}:2" in capsys.readouterr().err and not dest.exists()
    assert main(["score", str(out), str(src), "-o", str(dest), "--on-invalid", "skip"]) == 0
    rows = [json.loads(line) for line in dest.read_text().splitlines()]
    expected = scorer.compare(PROMPTS, FIRST, SECOND)
    assert [r.get("id") for r in rows] == [0, None, 1, 2]  # input order kept, the single row written unchanged
    assert rows[1]["margin"] is None and rows[1]["position_bias"] is None
    scored = [rows[0], *rows[2:]]
    assert [r["margin"] for r in scored] == pytest.approx([j.margin for j in expected], abs=1e-4)
    assert [r["margin_chosen_as_a"] for r in scored] == pytest.approx([j.margin_a_first for j in expected], abs=1e-4)
    assert [r["margin_rejected_as_a"] for r in scored] == pytest.approx([j.margin_b_first for j in expected],
                                                                       abs=1e-4)
    assert [r["position_bias"] for r in scored] == pytest.approx([j.position_bias for j in expected], abs=1e-4)
    for r in scored:  # the order-averaged margin and the bias are the half difference and half sum of the orders
        assert r["margin"] == pytest.approx((r["margin_chosen_as_a"] - r["margin_rejected_as_a"]) / 2, abs=1e-5)
        assert r["position_bias"] == pytest.approx((r["margin_chosen_as_a"] + r["margin_rejected_as_a"]) / 2,
                                                   abs=1e-5)
    # A/B records: the same comparison under the ab field names
    ab = tmp_path / "ab.jsonl"
    ab.write_text("\n".join(json.dumps({"prompt": p, "response_a": x, "response_b": y})
                            for p, x, y in zip(PROMPTS, FIRST, SECOND, strict=True)) + "\n")
    assert main(["score", str(out), str(ab), "-o", str(tmp_path / "ab-out.jsonl"), "--data.format", "ab"]) == 0
    ab_rows = [json.loads(line) for line in (tmp_path / "ab-out.jsonl").read_text().splitlines()]
    assert [r["margin_a_as_a"] for r in ab_rows] == pytest.approx([j.margin_a_first for j in expected], abs=1e-4)
    assert [r["margin"] for r in ab_rows] == pytest.approx([j.margin for j in expected], abs=1e-4)
