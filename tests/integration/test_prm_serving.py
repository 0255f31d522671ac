"""A process reward model exported as a token classifier (transformers, vLLM settings) and served over HTTP."""

import json

import pytest
import torch

from rewardkit.cli import main
from rewardkit.config import StepsConfig
from rewardkit.data.step_tokenize import add_step_token
from rewardkit.data.steps import Stepwise
from rewardkit.export.step_export import SERVING_FILE, transformers_step_scores
from rewardkit.models.heads import HeadSpec
from rewardkit.models.reward_model import ModelMeta, model_from_config
from rewardkit.serve.scorer import Scorer
from rewardkit.serve.server import ServerConfig

from ..conftest import load_test_tokenizer, tiny_config
from .test_server import TOKEN, Running

PROMPT = "Start at 2. Add 3, add 4. What is the result?"
STEPS = ["2 + 3 = 5", "5 + 4 = 10"]


def _saved_step_model(tokenizer_dirs, path, outputs=1, step_token=None, aggregate="min"):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    torch.manual_seed(0)
    model = model_from_config(tiny_config("llama", len(tok)), "decoder", tok,
                              HeadSpec(head="step", step_outputs=outputs, step_aggregate=aggregate))
    tid = add_step_token(tok, StepsConfig(step_token=step_token), model.transformer)
    with torch.no_grad():  # a head away from zero, so the export's 2-class rewrite is really exercised
        model.transformer.score.weight.normal_(0, 1.0)
    meta = ModelMeta(kind="decoder", pooling="last", head="step", step_outputs=outputs, step_aggregate=aggregate,
                     max_length=256, score_token_id=tok.eos_token_id, base_model="tiny-llama",
                     steps={"separator": "\n\n", "step_token": step_token, "step_token_id": tid,
                            "truncation": "drop_steps"})
    model.save_pretrained(path, tok, meta)
    return Scorer.from_pretrained(path)


@pytest.mark.parametrize("outputs, step_token", [(1, None), (2, "<|step|>")])
def test_export_writes_a_token_classifier_with_the_same_step_scores(tokenizer_dirs, tmp_path, outputs, step_token):
    source = _saved_step_model(tokenizer_dirs, tmp_path / "m", outputs, step_token)
    want = source.score_steps([PROMPT], [STEPS])[0]
    assert main(["export", str(tmp_path / "m"), str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForTokenClassification"] and cfg["id2label"] == {"0": "wrong", "1": "right"}
    enc = source.step_encoder.encode(Stepwise(PROMPT, STEPS, [None, None], "t"))
    plain = transformers_step_scores(out, enc.input_ids, enc.step_ends)
    assert plain == pytest.approx(want.step_rewards, abs=1e-5)
    serving = json.loads((out / SERVING_FILE).read_text())["vllm"]["pooler_config"]
    assert serving["pooling_type"] == "STEP" and "returned_token_ids" not in serving
    if step_token:
        assert serving["step_tag_id"] == source.tokenizer.convert_tokens_to_ids(step_token)
        assert [enc.input_ids[e] for e in enc.step_ends] == [serving["step_tag_id"]] * 2
    else:
        assert "warning" in json.loads((out / SERVING_FILE).read_text())
    reloaded = Scorer.from_pretrained(out).score_steps([PROMPT], [STEPS])[0]
    assert reloaded.step_rewards == pytest.approx(want.step_rewards, abs=1e-5)
    card = (out / "README.md").read_text()
    assert "AutoModelForTokenClassification" in card and "--pooler-config" in card


def test_server_answers_step_requests_with_the_api_scores(tokenizer_dirs, tmp_path):
    scorer = _saved_step_model(tokenizer_dirs, tmp_path / "m", aggregate="mean")
    want = scorer.score_steps([PROMPT, PROMPT], [STEPS, STEPS[:1]])
    with Running(scorer, ServerConfig(api_key=TOKEN)) as srv:
        status, body = srv.post("/score", {"items": [{"prompt": PROMPT, "steps": STEPS},
                                                     {"prompt": PROMPT, "response": STEPS[0]}]})
        assert status == 200
        assert body["step_rewards"][0] == pytest.approx(want[0].step_rewards, abs=1e-5)
        assert body["step_rewards"][1] == pytest.approx(want[1].step_rewards, abs=1e-5)
        assert body["rewards"] == pytest.approx([w.reward for w in want], abs=1e-5)
        status, body = srv.post("/score", [{"prompt": PROMPT, "steps": ["ok", "  "]}])
        assert status == 422 and json.dumps(body).count("empty_step")


def test_export_from_a_checkpoint_keeps_the_step_settings_and_the_trained_scores(tiny_model_dir, tmp_path):
    """A checkpoint is rebuilt from the run's config: the step token must be added again (an embedding row) and
    the step rendering must reach rewardkit.json, else the export scores other tokens than the training did.
    With a constant lr, step 2 of a 4-step run is the final model of a 2-step run of the same seed."""
    import rewardkit

    from .test_prm import LAYOUTS, _config

    def run(out, **extra):
        cfg = _config(tiny_model_dir("llama"), LAYOUTS["documented"][0], None, out, loss="step_ce",
                      data__steps={"step_token": "<|step|>", "separator": "\n"}, model__step_aggregate="mean",
                      train__scheduler="constant", train__warmup_ratio=0.0, **extra)
        return rewardkit.train(cfg)

    run(tmp_path / "long", train__max_steps=4, train__save_every=2)
    run(tmp_path / "short", train__max_steps=2)
    trained = rewardkit.load_model(tmp_path / "short")
    assert main(["export", str(tmp_path / "long" / "checkpoints" / "step-00000002"), str(tmp_path / "out")]) == 0
    exported = Scorer.from_pretrained(tmp_path / "out")
    steps = exported.meta.steps
    assert steps["step_token"] == "<|step|>" and steps["separator"] == "\n" and exported.meta.step_aggregate == "mean"
    tid = exported.tokenizer.convert_tokens_to_ids("<|step|>")
    assert steps["step_token_id"] == tid == trained.meta.steps["step_token_id"]
    serving = json.loads((tmp_path / "out" / SERVING_FILE).read_text())
    assert serving["vllm"]["pooler_config"]["step_tag_id"] == tid and "warning" not in serving
    want = trained.score_steps([PROMPT, "Start at 1. Add 1."], [STEPS, ["1 + 1 = 2"]])
    got = exported.score_steps([PROMPT, "Start at 1. Add 1."], [STEPS, ["1 + 1 = 2"]])
    for w, g in zip(want, got, strict=True):
        assert g.step_rewards == pytest.approx(w.step_rewards, abs=1e-5)
        assert g.reward == pytest.approx(w.reward, abs=1e-5)
    enc = exported.step_encoder.encode(Stepwise(PROMPT, STEPS, [None, None], "t"))
    assert [enc.input_ids[e] for e in enc.step_ends] == [tid, tid]
