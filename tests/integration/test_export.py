"""`rewardkit export`: sources (run, model dir, LoRA checkpoint), merge, cast, shards, card, errors, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config
from rewardkit.export import ExportError, export_model, load_source
from rewardkit.export.tokenizer import trim_chat_template

from .export_helpers import TEXT_PROMPTS, TEXT_RESPONSES, make_rewardkit_dir
from .test_train_cli import write_config


def tensors(directory) -> dict[str, torch.Tensor]:
    out = {}
    for f in sorted(directory.glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            out.update({k: sf.get_tensor(k) for k in sf.keys()})
    return out


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """A finished LoRA run (tiny llama) with a checkpoint at step 4 of 6."""
    import yaml

    from ..conftest import HH_SAMPLE

    root = tmp_path_factory.mktemp("lora-run")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HH_SAMPLE * 2))
    cfg_path = write_config(root, tiny_model_dir("llama"), data, max_steps=6, save_every=4, lr=5e-3)
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["lora"] = {"r": 4, "alpha": 8}
    cfg_path.write_text(yaml.safe_dump(cfg))
    result = rewardkit.train(load_config(cfg_path))
    return result.output_dir


def test_lora_checkpoint_export_merges_adapters_and_trained_head(lora_run, tmp_path):
    ckpt = lora_run / "checkpoints" / "step-00000004"
    src = load_source(ckpt)
    assert src.kind == "checkpoint" and hasattr(src.model.hf, "merge_and_unload")
    want = src.model  # the rebuilt LoRA model with the checkpoint's state: the reference
    from rewardkit.serve.scorer import Scorer

    ref = Scorer(want, src.tokenizer, src.meta).score(TEXT_PROMPTS, TEXT_RESPONSES)
    trained_head = want.transformer.score.modules_to_save["default"].weight.detach().clone()
    base_head = want.transformer.score.original_module.weight.detach().clone()
    assert not torch.equal(trained_head, base_head)  # the head moved during training

    result = export_model(ckpt, tmp_path / "out")
    weights = tensors(tmp_path / "out")
    assert not any("lora" in k or "modules_to_save" in k or "original_module" in k for k in weights)
    assert torch.equal(weights["score.weight"], trained_head)
    got = rewardkit.load_model(tmp_path / "out").score(TEXT_PROMPTS, TEXT_RESPONSES)
    assert max(abs(a - b) for a, b in zip(got, ref, strict=True)) <= 1e-4
    assert result.checks["interop_max_abs_diff"] <= 1e-4
    meta = json.loads((tmp_path / "out" / "rewardkit.json").read_text())
    assert meta["export"]["source_kind"] == "checkpoint" and meta["training"]["steps"] == 4


def test_run_dir_export_card_has_training_data_metrics_and_usage(lora_run, tmp_path):
    result = export_model(lora_run, tmp_path / "out")
    card = (tmp_path / "out" / "README.md").read_text()
    summary = json.loads((lora_run / "summary.json").read_text())
    assert f"| accuracy | {summary['eval']['accuracy']:.4f} |" in card
    assert "pairs.jsonl" in card and "LoRA r=4" in card
    assert "AutoModelForSequenceClassification" in card and "reward_funcs" in card and "rewardkit serve" in card
    assert "add_special_tokens=False" in card
    assert f"{result.checks['interop_max_abs_diff']:.2e}" in card
    # the run's own model and the export score alike
    want = rewardkit.load_model(lora_run).score(TEXT_PROMPTS, TEXT_RESPONSES)
    got = rewardkit.load_model(tmp_path / "out").score(TEXT_PROMPTS, TEXT_RESPONSES)
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-4


def test_card_metrics_table_shows_intervals():
    from rewardkit.export.card import metrics_table

    rows = metrics_table({"pairs": 400, "accuracy": 0.6125, "accuracy_ci": [0.565, 0.66], "loss": 0.65})
    assert "| accuracy | 0.6125 | [0.5650, 0.6600] |" in rows
    assert "| loss | 0.6500 | - |" in rows and not any("accuracy_ci" in r for r in rows)


def test_bfloat16_export_is_cast_and_sharded_and_still_matches_transformers(tokenizer_dirs, tmp_path):
    src = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "model")
    result = export_model(src, tmp_path / "out", dtype="bfloat16", max_shard_size="1MB")
    out = tmp_path / "out"
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").exists()
    assert {t.dtype for t in tensors(out).values()} == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert result.checks["interop_max_abs_diff"] <= 1e-4  # same weights both ways
    assert 0 < result.checks["fidelity_max_abs_diff"]  # the cast is measured, not hidden


def test_mean_pooling_is_a_clear_error_unless_rewardkit_only(tokenizer_dirs, tmp_path):
    from rewardkit.models.heads import HeadSpec

    src = make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model", spec=HeadSpec(pooling="mean"))
    with pytest.raises(ExportError, match="pooling 'mean'.*--rewardkit-only"):
        export_model(src, tmp_path / "out")
    result = export_model(src, tmp_path / "out2", rewardkit_only=True)
    assert result.readout == "rewardkit_only" and "interop_max_abs_diff" not in result.checks
    assert result.checks["fidelity_max_abs_diff"] <= 1e-4  # still scores as trained through rewardkit
    assert "Not loadable as a transformers sequence classifier" in (tmp_path / "out2" / "README.md").read_text()


def test_multi_attribute_learned_weights_export_logits_and_the_weights_to_combine_them(tokenizer_dirs, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardkit.models.heads import HeadSpec

    spec = HeadSpec(head="multi", attributes=["helpful", "honest", "harmless"], weighting="learned")
    src = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "model", spec=spec)
    result = export_model(src, tmp_path / "out")
    out = tmp_path / "out"
    assert result.readout == "logits" and result.checks["interop_max_abs_diff"] <= 1e-4
    assert (out / "rewardkit_head.safetensors").exists()
    weights = json.loads((out / "rewardkit.json").read_text())["export"]["attribute_weights"]
    assert len(set(round(w, 4) for w in weights)) == 3 and abs(sum(weights) - 1) < 1e-6
    assert "logits @ w" in (out / "README.md").read_text()
    # a consumer without rewardkit: transformers logits, then the weights from rewardkit.json
    want = rewardkit.load_model(src).score(TEXT_PROMPTS, TEXT_RESPONSES)
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.id2label[1] == "honest"
    with torch.no_grad():
        got = [(model(**tok(p + r, return_tensors="pt")).logits[0] @ torch.tensor(weights)).item()
               for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1e-4


def test_bad_sources_and_existing_output_are_clear_errors(tokenizer_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a rewardkit model directory"):
        export_model(tmp_path, tmp_path / "out")
    src = make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_model(src, tmp_path / "taken")
    with pytest.raises(ValueError, match="dtype 'int8'"):
        export_model(src, tmp_path / "out", dtype="int8")


def test_chat_template_trim_keeps_generation_prompt_and_is_idempotent():
    from jinja2 import Environment

    tpl = "{% for m in messages %}<s>{{ m['content'] }}</s>\n{% endfor %}{% if add_generation_prompt %}<s>{% endif %}"
    trimmed = trim_chat_template(tpl)
    assert trim_chat_template(trimmed) == trimmed
    env = Environment()
    msgs = [{"content": "a"}, {"content": "b"}]
    assert env.from_string(trimmed).render(messages=msgs, add_generation_prompt=False) == "<s>a</s>\n<s>b</s>"
    assert env.from_string(trimmed).render(messages=msgs, add_generation_prompt=True) == "<s>a</s>\n<s>b</s>\n<s>"


def test_cli_export_writes_a_checked_directory(tokenizer_dirs, tmp_path, capsys):
    src = make_rewardkit_dir(tokenizer_dirs, "bert", tmp_path / "model")
    assert main(["export", str(src), str(tmp_path / "out"), "--dtype", "float32"]) == 0
    out = capsys.readouterr().out
    assert "plain transformers vs rewardkit" in out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "rewardkit.json", "README.md"):
        assert (tmp_path / "out" / name).exists(), name
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "out3")]) == 2
    assert "not a rewardkit model directory" in capsys.readouterr().err
