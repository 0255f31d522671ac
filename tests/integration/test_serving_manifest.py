"""Exports for serving engines: problem_type regression (raw scores, no sigmoid), the serving manifest in
rewardkit.json and the card, heads an engine cannot express, and `serve --engine vllm`'s start-up checks.
vLLM itself runs in tests/slow/test_vllm_parity.py."""

import json

import pytest
from transformers import pipeline

import rewardkit
from rewardkit.export import ExportError, export_model
from rewardkit.serve.server import ServerConfig

from .export_helpers import TEXT_PROMPTS, TEXT_RESPONSES, make_rewardkit_dir


@pytest.fixture(scope="module")
def exported(tokenizer_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("manifest")
    src = make_rewardkit_dir(tokenizer_dirs, "qwen2", tmp / "model")
    export_model(src, tmp / "out", engines=("vllm", "sglang"))
    return src, tmp / "out"


def test_text_classification_pipeline_returns_raw_rewards_not_a_sigmoid(exported):
    src, out = exported
    want = rewardkit.load_model(src).score(TEXT_PROMPTS, TEXT_RESPONSES)
    assert max(abs(w) for w in want) > 1  # scores outside (0, 1): a sigmoid could not give them
    pipe = pipeline("text-classification", model=str(out))  # the pipeline's default function_to_apply
    got = [pipe(p + r, truncation=True)[0]["score"] for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    assert got == pytest.approx(want, abs=1e-4)
    assert json.loads((out / "config.json").read_text())["problem_type"] == "regression"


def test_manifest_says_activation_score_token_template_and_engine_commands(exported):
    _, out = exported
    manifest = json.loads((out / "rewardkit.json").read_text())["export"]["serving"]
    assert manifest["activation"] == "identity" and manifest["problem_type"] == "regression"
    assert manifest["tokenizer_appends_score_token"] is True and manifest["pooling"] == "LAST"
    assert manifest["chat_template"] is True and manifest["reward"] == "outputs[0]"
    vllm = manifest["engines"]["vllm"]
    assert vllm["supported"] and vllm["serve"].startswith("vllm serve PATH --runner pooling --dtype float32")
    assert "--is-embedding" in manifest["engines"]["sglang"]["serve"]
    card = (out / "README.md").read_text()
    assert "## Serving engines (vLLM, SGLang)" in card and "problem_type: \"regression\"" in card
    assert vllm["serve"] in card


def test_engine_that_cannot_express_the_head_fails_export_naming_why(tokenizer_dirs, tmp_path):
    from rewardkit.models.heads import HeadSpec

    src = make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model", spec=HeadSpec(pooling="mean"))
    with pytest.raises(ExportError, match="cannot export for vllm: pooling 'mean'.*rewardkit serve"):
        export_model(src, tmp_path / "out", rewardkit_only=True, engines=("vllm",))
    export_model(src, tmp_path / "out2", rewardkit_only=True)
    manifest = json.loads((tmp_path / "out2" / "rewardkit.json").read_text())["export"]["serving"]
    assert manifest["engines"]["vllm"]["supported"] is False and manifest["activation"] is None
    assert "problem_type" not in json.loads((tmp_path / "out2" / "config.json").read_text())


def test_multi_attribute_head_maps_to_num_labels_k_with_its_weights(tokenizer_dirs, tmp_path):
    from rewardkit.models.heads import HeadSpec

    spec = HeadSpec(head="multi", attributes=["helpful", "honest", "harmless"], weighting="fixed",
                    attribute_weights=[0.5, 0.3, 0.2])
    src = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "model", spec=spec)
    export_model(src, tmp_path / "out", engines=("vllm",))
    manifest = json.loads((tmp_path / "out" / "rewardkit.json").read_text())["export"]["serving"]
    assert manifest["outputs"] == 3 and manifest["attribute_weights"] == [0.5, 0.3, 0.2]
    assert "num_labels=3" in manifest["engines"]["vllm"]["how"]


def test_vllm_engine_needs_an_export_with_raw_outputs(exported, tmp_path):
    from rewardkit.serve.vllm_engine import check_vllm_model

    src, out = exported
    check_vllm_model(out)  # an export: fine
    with pytest.raises(ValueError, match="problem_type is None, not 'regression'.*rewardkit export"):
        check_vllm_model(src)  # a training output: vLLM would apply a sigmoid
    with pytest.raises(ValueError, match="needs model_dir"):
        ServerConfig(engine="vllm")
    with pytest.raises(ValueError, match="choose rewardkit or vllm"):
        ServerConfig(engine="sglang")


def test_reward_from_engine_outputs_follows_the_head(exported):
    from rewardkit.serve.front_end import FrontEnd
    from rewardkit.serve.vllm_engine import reward_from_outputs

    _, out = exported
    assert reward_from_outputs([1.25], FrontEnd.from_export(out)) == 1.25  # what the vLLM path holds
