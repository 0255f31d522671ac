"""A plain transformers *ForSequenceClassification directory (no rewardkit.json) scores as transformers reads it."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardkit.models.foreign import is_foreign_model
from rewardkit.serve.scorer import Scorer

PROMPTS = ["What is 2+2?", "Name a colour, please, and say why you like it."]
RESPONSES = ["4.", "Blue: it is calm, like the sea on a quiet morning."]


def _transformers_scores(d, texts):
    tok = AutoTokenizer.from_pretrained(str(d))
    hf = AutoModelForSequenceClassification.from_pretrained(str(d)).eval()
    out = []
    for t in texts:  # one at a time: no padding, transformers reads the last token
        enc = tok(t, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out.append(hf(**enc).logits[0, 0].item())
    return out


@pytest.mark.parametrize("arch", ["qwen2", "gpt2"])
def test_foreign_decoder_scores_equal_transformers_on_the_rendered_text(tiny_model_dir, arch):
    d = tiny_model_dir(arch)
    assert is_foreign_model(d)
    scorer = Scorer.from_pretrained(d)
    inferred = scorer.meta.training["inferred"]
    msgs = [([{"role": "user", "content": p}], [{"role": "assistant", "content": r}])
            for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    ours = scorer.score([m[0] for m in msgs], [m[1] for m in msgs])  # one padded batch of two
    if arch == "qwen2":  # has a chat template: [user, assistant] through it, cut after <|im_end|>
        assert inferred["rendering"] == "the tokenizer's chat template"
        tok = scorer.tokenizer
        texts = [tok.apply_chat_template(u + a, tokenize=False).rstrip() for u, a in msgs]
    else:  # gpt2 has none: the plain format, no EOS appended
        assert inferred["rendering"] == "rewardkit plain"
        assert "pad_token" in inferred
        texts = [f"\n\nHuman: {p}\n\nAssistant: {r}" for p, r in zip(PROMPTS, RESPONSES, strict=True)]
    assert ours == pytest.approx(_transformers_scores(d, texts), abs=1e-4)


def test_foreign_encoder_reads_cls_like_transformers(tiny_model_dir):
    d = tiny_model_dir("bert")
    scorer = Scorer.from_pretrained(d)
    ours = scorer.score(PROMPTS, RESPONSES)
    tok = AutoTokenizer.from_pretrained(str(d))
    hf = AutoModelForSequenceClassification.from_pretrained(str(d)).eval()
    enc = tok(PROMPTS, RESPONSES, return_tensors="pt", padding=True)
    with torch.no_grad():
        ref = hf(**enc).logits[:, 0].tolist()
    assert ours == pytest.approx(ref, abs=1e-4)


def test_a_directory_that_is_neither_is_refused_clearly(tmp_path):
    (tmp_path / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(FileNotFoundError, match="no rewardkit.json"):
        Scorer.from_pretrained(tmp_path)
