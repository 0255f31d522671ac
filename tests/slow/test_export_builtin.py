"""Export with real weights (built-in SmolLM2-135M from GGUF, LoRA): the checkpoint and the run export to
directories that plain transformers scores like rewardkit, on real hh-rlhf text and on chat messages."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

import rewardkit
from rewardkit.config import load_config
from rewardkit.export import export_model

from ..conftest import REPO
from .test_builtin_models import real_texts

pytestmark = pytest.mark.slow


def test_smollm2_lora_checkpoint_and_run_export_score_alike_in_plain_transformers(tmp_path):
    cfg = load_config(REPO / "configs" / "smollm2-lora.yaml", [
        "--train.max_steps", "2", "--train.batch_size", "2", "--data.max_length", "96", "--data.train.stop", "8",
        "--data.eval.start", "2300", "--output_dir", str(tmp_path / "run"), "--train.tensorboard", "false",
        "--train.save_every", "1", "--train.eval_zero_shot", "false", "--train.lr", "1e-3"])
    result = rewardkit.train(cfg)
    texts = real_texts(4)
    prompts, responses = [p for p, _ in texts], [r for _, r in texts]
    ckpt = next((tmp_path / "run" / "checkpoints").glob("step-*"))
    checked = export_model(ckpt, tmp_path / "ckpt-export")
    assert checked.checks["interop_max_abs_diff"] <= 1e-4

    out = tmp_path / "export"
    export_model(tmp_path / "run", out)
    want = result.scorer.score(prompts, responses)
    tok, model = AutoTokenizer.from_pretrained(out), AutoModelForSequenceClassification.from_pretrained(out).eval()
    with torch.no_grad():
        got = model(**tok([p + r for p, r in texts], padding=True, return_tensors="pt")).logits[:, 0]
    torch.testing.assert_close(got, torch.tensor(want), atol=1e-4, rtol=1e-4)
    if tok.chat_template:  # the GGUF's chat template: messages score alike too
        msgs = [[{"role": "user", "content": "How do I make tea?"}], [{"role": "user", "content": "2+2?"}]]
        answers = [[{"role": "assistant", "content": "Boil water, steep the leaves."}],
                   [{"role": "assistant", "content": "4"}]]
        chat_want = rewardkit.load_model(out).score(msgs, answers)
        texts = [tok.apply_chat_template(m + a, tokenize=False) for m, a in zip(msgs, answers, strict=True)]
        with torch.no_grad():
            chat_got = model(**tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")).logits[:, 0]
        torch.testing.assert_close(chat_got, torch.tensor(chat_want), atol=1e-4, rtol=1e-4)
