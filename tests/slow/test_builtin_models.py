"""Real pretrained weights shipped in packages (offline): train a few steps, save, reload in plain transformers."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rewardkit
from rewardkit.config import load_config
from rewardkit.data.readers import read_records

from ..conftest import REPO

pytestmark = pytest.mark.slow


def real_texts(n=6):
    from rewardkit.data.formats import split_implicit_prompt

    out = []
    for rec in list(read_records("builtin:hh-rlhf-harmless"))[2000:2000 + n]:
        prompt, chosen, _ = split_implicit_prompt(rec.data["chosen"], rec.data["rejected"])
        out.append((prompt, chosen))
    return out


def plain_transformers_scores(model_dir, scorer, texts):
    """Score our encoded ids with a plain AutoModelForSequenceClassification (right padding, its pad id)."""
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    seqs = [scorer.encode(p, r) for p, r in texts]
    width = max(len(s.input_ids) for s in seqs)
    ids = torch.tensor([s.input_ids + [tok.pad_token_id] * (width - len(s.input_ids)) for s in seqs])
    mask = torch.tensor([[1] * len(s.input_ids) + [0] * (width - len(s.input_ids)) for s in seqs])
    kwargs = {}
    if seqs[0].token_type_ids is not None:
        kwargs["token_type_ids"] = torch.tensor([s.token_type_ids + [0] * (width - len(s.token_type_ids))
                                                 for s in seqs])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, **kwargs).logits[:, 0]


def test_quickstart_config_with_real_minilm_trains_saves_and_reloads_in_transformers(tmp_path):
    cfg = load_config(REPO / "configs" / "quickstart.yaml", [
        "--train.max_steps", "4", "--data.train.stop", "64", "--data.eval.start", "2280",
        "--output_dir", str(tmp_path / "run"), "--train.tensorboard", "false"])
    result = rewardkit.train(cfg)
    assert result.metrics["steps"] == 4 and result.metrics["eval"]["pairs"] > 0
    texts = real_texts()
    ours = torch.tensor(result.scorer.score([p for p, _ in texts], [r for _, r in texts]))
    theirs = plain_transformers_scores(tmp_path / "run" / "model", result.scorer, texts)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)


def test_smollm2_gguf_with_lora_saves_merged_weights_and_trained_head(tmp_path):
    cfg = load_config(REPO / "configs" / "smollm2-lora.yaml", [
        "--train.max_steps", "2", "--train.batch_size", "2", "--data.max_length", "96", "--data.train.stop", "8",
        "--data.eval.start", "2300", "--output_dir", str(tmp_path / "run"), "--train.tensorboard", "false",
        "--train.save_every", "null", "--train.eval_zero_shot", "false", "--train.lr", "1e-3"])
    result = rewardkit.train(cfg)
    model_dir = tmp_path / "run" / "model"
    weights = load_file(str(model_dir / "model.safetensors"))
    assert not any("lora" in k for k in weights), "adapters must be merged into the base weights"
    assert "score.weight" in weights
    texts = real_texts(4)
    ours = torch.tensor(result.scorer.score([p for p, _ in texts], [r for _, r in texts]))
    theirs = plain_transformers_scores(model_dir, result.scorer, texts)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    reloaded = rewardkit.load_model(tmp_path / "run")
    torch.testing.assert_close(torch.tensor(reloaded.score([p for p, _ in texts], [r for _, r in texts])), ours,
                               atol=1e-4, rtol=1e-4)
