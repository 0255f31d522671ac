"""Export with real weights: a LoRA checkpoint of the built-in SmolLM2-135M (loaded from GGUF) exports to a
directory that plain transformers scores like rewardkit, on real hh-rlhf text and on chat messages."""

import pytest
import torch
from safetensors.torch import save_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rewardkit
from rewardkit.config import dump_config, load_config
from rewardkit.export import export_model, load_source
from rewardkit.models.reward_model import build_model
from rewardkit.serve.scorer import Scorer

from ..conftest import REPO
from .test_builtin_models import real_texts

pytestmark = pytest.mark.slow


def fake_lora_checkpoint(run):
    """RUN/config.yaml + RUN/checkpoints/step-00000001 as the trainer writes them, with LoRA adapters and a head
    moved off their initial values (training itself takes minutes on a shared CPU and is tested elsewhere)."""
    cfg = load_config(REPO / "configs" / "smollm2-lora.yaml", ["--output_dir", str(run), "--data.max_length", "96"])
    model, _, _ = build_model(cfg.model, seed=0)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.add_(torch.randn_like(p) * 0.05)
    ckpt = run / "checkpoints" / "step-00000001"
    ckpt.mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    save_model(model, str(ckpt / "model.safetensors"))
    (ckpt / "COMPLETE").write_text("ok\n")
    return ckpt


def test_smollm2_lora_checkpoint_export_scores_alike_in_plain_transformers(tmp_path):
    ckpt = fake_lora_checkpoint(tmp_path / "run")
    texts = real_texts(4)
    prompts, responses = [p for p, _ in texts], [r for _, r in texts]
    src = load_source(ckpt)
    want = Scorer(src.model, src.tokenizer, src.meta).score(prompts, responses)  # the LoRA model, unmerged
    out = tmp_path / "export"
    result = export_model(ckpt, out)
    assert result.checks["interop_max_abs_diff"] <= 1e-4
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        got = model(**tok([p + r for p, r in texts], truncation=True, padding=True, return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-4, rtol=1e-4)
    assert tok.chat_template  # SmolLM2-Instruct's template (ChatML): messages score alike too
    msgs = [[{"role": "user", "content": "How do I make tea?"}], [{"role": "user", "content": "2+2?"}]]
    answers = [[{"role": "assistant", "content": "Boil water, steep the leaves."}],
               [{"role": "assistant", "content": "4"}]]
    chat_want = rewardkit.load_model(out).score(msgs, answers)
    chat = [tok.apply_chat_template(m + a, tokenize=False) for m, a in zip(msgs, answers, strict=True)]
    with torch.no_grad():
        chat_got = model(**tok(chat, add_special_tokens=False, truncation=True, padding=True,
                             return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(chat_got, torch.tensor(chat_want), atol=1e-4, rtol=1e-4)
