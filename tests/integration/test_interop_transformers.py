"""An exported model in plain transformers (no rewardkit code): manual forward, batched with either padding
side, and the text-classification pipeline give rewardkit's scores within 1e-4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import rewardkit
from rewardkit.export import export_model

from .export_helpers import CHAT_PROMPTS, CHAT_RESPONSES, TEXT_PROMPTS, TEXT_RESPONSES, make_rewardkit_dir

TOL = 1e-4


@dataclass
class Exported:
    src: Path
    out: Path
    want_text: list[float]
    """rewardkit's scores of TEXT_PROMPTS/TEXT_RESPONSES with the source (trained) directory."""
    want_chat: list[float] | None
    tok: object
    """The exported directory loaded with plain transformers."""
    model: object


@pytest.fixture(scope="module")
def exported(tokenizer_dirs, tmp_path_factory):
    """arch -> Exported, built once per module (loading is most of the cost on CPU)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cache = {}

    def get(arch: str) -> Exported:
        if arch not in cache:
            root = tmp_path_factory.mktemp(f"interop-{arch}")
            src = make_rewardkit_dir(tokenizer_dirs, arch, root / "model")
            export_model(src, root / "export")
            scorer = rewardkit.load_model(src)
            chat = scorer.score(CHAT_PROMPTS, CHAT_RESPONSES) if arch == "qwen2" else None
            cache[arch] = Exported(src, root / "export", scorer.score(TEXT_PROMPTS, TEXT_RESPONSES), chat,
                                   AutoTokenizer.from_pretrained(root / "export"),
                                   AutoModelForSequenceClassification.from_pretrained(root / "export").eval())
        return cache[arch]

    return get


def assert_close(got, want, tol=TOL):
    diff = max(abs(a - b) for a, b in zip(got, want, strict=True))
    assert diff <= tol, f"max |diff| {diff:.3g}: {got} vs {want}"


@pytest.mark.parametrize("arch", ["llama", "gpt2", "qwen2"])
def test_decoder_text_manual_forward_and_pipeline_give_rewardkit_scores(arch, exported):
    from transformers import pipeline

    e = exported(arch)
    want, tok, model = e.want_text, e.tok, e.model
    assert_close(rewardkit.load_model(e.out).score(TEXT_PROMPTS, TEXT_RESPONSES), want)
    texts = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    with torch.no_grad():
        one_by_one = [model(**tok(t, return_tensors="pt")).logits[0, 0].item() for t in texts]
        right = model(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0].tolist()
    assert_close(one_by_one, want)
    assert tok.padding_side == "right"
    assert_close(right, want)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, function_to_apply="none")
    assert_close([x["score"] for x in pipe(texts)], want)
    assert_close([x["score"] for x in pipe(texts, batch_size=3)], want)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_source_tokenizer_without_export_reads_the_wrong_token(arch, exported):
    """The control: the trained model's own directory, tokenized the plain way, does not give our scores
    (no EOS appended), which is what export fixes."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    e = exported(arch)
    want = e.want_text
    tok, model = AutoTokenizer.from_pretrained(e.src), AutoModelForSequenceClassification.from_pretrained(e.src)
    with torch.no_grad():
        got = [model(**tok(p + r, return_tensors="pt")).logits[0, 0].item()
               for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    assert max(abs(a - b) for a, b in zip(got, want, strict=True)) > 100 * TOL


def test_left_padding_matches_for_rope_and_differs_for_absolute_positions(exported):
    """transformers' position ids ignore the attention mask: with left padding, RoPE models (llama) keep their
    scores (relative positions), GPT-2's absolute positions shift and the scores move. Measured, and written
    in the model card as "pad on the right"."""
    diffs = {}
    for arch in ("llama", "gpt2"):
        e = exported(arch)
        want, tok, model = e.want_text, e.tok, e.model
        texts = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
        with torch.no_grad():
            left = model(**tok(texts, padding=True, padding_side="left", return_tensors="pt")).logits[:, 0].tolist()
        diffs[arch] = max(abs(a - b) for a, b in zip(left, want, strict=True))
    assert diffs["llama"] <= TOL
    assert diffs["gpt2"] > 100 * TOL


def test_chat_template_then_tokenize_gives_rewardkit_scores(exported):
    e = exported("qwen2")
    want, tok, model = e.want_chat, e.tok, e.model
    convs = [p + r for p, r in zip(CHAT_PROMPTS, CHAT_RESPONSES, strict=True)]
    texts = [tok.apply_chat_template(c, tokenize=False) for c in convs]
    assert all(t.endswith("<|im_end|>") for t in texts)  # the template's trailing newline is gone
    with torch.no_grad():
        via_text = model(**tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")).logits[:, 0]
        via_ids = [model(**tok.apply_chat_template(c, tokenize=True, return_dict=True, return_tensors="pt"))
                   .logits[0, 0].item() for c in convs]
    assert_close(via_text.tolist(), want)
    assert_close(via_ids, want)
    # the generation prompt keeps its newline: the policy's prompt is unchanged
    gen = tok.apply_chat_template(CHAT_PROMPTS[0], tokenize=False, add_generation_prompt=True)
    assert gen.endswith("<|im_start|>assistant\n")


def test_encoder_pair_manual_forward_and_pipeline_give_rewardkit_scores(exported):
    from transformers import pipeline

    e = exported("bert")
    want, tok, model = e.want_text, e.tok, e.model
    with torch.no_grad():
        batch = model(**tok(TEXT_PROMPTS, TEXT_RESPONSES, padding=True, return_tensors="pt")).logits[:, 0]
    assert_close(batch.tolist(), want)
    pipe = pipeline("text-classification", model=model, tokenizer=tok, function_to_apply="none")
    got = pipe([{"text": p, "text_pair": r} for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)])
    assert_close([x["score"] for x in got], want)


def test_empty_response_and_literal_eos_score_alike_in_source_export_and_transformers(exported):
    """The exported tokenizer appends EOS itself; rewardkit must not then append a second one (empty response),
    nor swallow an EOS written in the response text (transformers keeps it)."""
    e = exported("gpt2")
    prompts, responses = ["Q: hi\nA:", "Q: hi\nA:"], ["", " yes<|endoftext|>"]
    want = rewardkit.load_model(e.src).score(prompts, responses)
    assert_close(rewardkit.load_model(e.out).score(prompts, responses), want)
    with torch.no_grad():
        got = [e.model(**e.tok(p + r, return_tensors="pt")).logits[0, 0].item()
               for p, r in zip(prompts, responses, strict=True)]
    assert_close(got, want)


def test_truncation_true_reproduces_rewardkits_over_length_policy(tokenizer_dirs, tmp_path):
    """rewardkit cuts the prompt from the left (max_length 16 here); the exported tokenizer with truncation=True
    does the same and keeps the score token; without truncation the long examples score differently."""
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model")
    meta = json.loads((src / "rewardkit.json").read_text())
    meta["max_length"] = 16
    (src / "rewardkit.json").write_text(json.dumps(meta))
    export_model(src, tmp_path / "out")
    want = rewardkit.load_model(src).score(TEXT_PROMPTS, TEXT_RESPONSES)
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out").eval()
    texts = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    assert max(len(tok(t)["input_ids"]) for t in texts) > 16
    with torch.no_grad():
        cut = model(**tok(texts, truncation=True, padding=True, return_tensors="pt")).logits[:, 0].tolist()
        whole = model(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0].tolist()
    assert_close(cut, want)
    assert max(abs(a - b) for a, b in zip(whole, want, strict=True)) > 100 * TOL
