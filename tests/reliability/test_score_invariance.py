"""Scores that cannot drift: for every read-out (head x pooling), the same text scores the same whatever the
padding side, batch size, batch neighbours or packing, through the CLI as through the API, and after a
save and reload exactly as before saving (golden test: expected numbers are computed here, before saving).
"""

from __future__ import annotations

import json

import pytest
import torch

from rewardkit.cli import main
from rewardkit.data.collate import pad_batch
from rewardkit.data.packing import pack_groups
from rewardkit.models.heads import HeadSpec
from rewardkit.models.reward_model import ModelMeta, model_from_config
from rewardkit.serve.scorer import Scorer, prompt_groups, score_sequences

from ..conftest import ARCH_TOKENIZER, load_test_tokenizer, tiny_config

TOL = 1e-4
PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "Q: 2+2?", "Tell me a joke.",
           "\n\nHuman: " + "Explain photosynthesis in detail, please. " * 6 + "\n\nAssistant:", "Hi"]
RESPONSES = [" Mix flour, water, yeast and salt; knead, rise, bake.", " 4", " No.",
             " Plants turn light, water and CO2 into sugar and oxygen.", " Hello! How can I help you today?"]
NEIGHBOURS = [("Write a long story. " * 12, " Once upon a time " * 10), ("x", " y")]

READOUTS = [
    ("llama", HeadSpec()),
    ("llama", HeadSpec(head="classifier")),
    ("llama", HeadSpec(head="classifier", reward_from="probability")),
    ("llama", HeadSpec(head="per_token")),
    ("llama", HeadSpec(head="multi", attributes=["helpful", "safe", "brief"], weighting="learned")),
    ("llama", HeadSpec(pooling="mean")),
    ("bert", HeadSpec(pooling="cls")),
    ("bert", HeadSpec(head="classifier", pooling="cls")),
    ("bert", HeadSpec(pooling="mean")),
]
IDS = [f"{arch}-{s.head}-{s.pooling}-{s.reward_from if s.head == 'classifier' else s.weighting}"
       for arch, s in READOUTS]


def _kind(arch: str) -> str:
    return "encoder" if arch == "bert" else "decoder"


@pytest.fixture(scope="module", params=list(zip(READOUTS, IDS, strict=True)), ids=IDS)
def saved(request, tokenizer_dirs, tmp_path_factory):
    """(scores before saving, the reloaded Scorer, model directory) for one read-out."""
    (arch, spec), name = request.param
    kind = _kind(arch)
    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])
    torch.manual_seed(1234)
    model = model_from_config(tiny_config(arch, len(tok)), kind, tok, HeadSpec(**vars(spec))).eval()
    if spec.weighting == "learned":
        with torch.no_grad():  # away from the uniform start, so a lost side file would change the scores
            for p in model.extras.parameters():
                p.copy_(torch.randn_like(p))
    meta = ModelMeta(kind=kind, pooling=spec.pooling, max_length=128)
    before = Scorer(model, tok, meta).score(PROMPTS, RESPONSES)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    directory = tmp_path_factory.mktemp(name) / "model"
    model.save_pretrained(directory, tok, meta)
    return (before, state), Scorer.from_pretrained(directory), directory


def test_saved_model_reloads_and_scores_as_before_saving(saved):
    (before, state), scorer, _ = saved
    reloaded = scorer.model.state_dict()
    assert reloaded.keys() == state.keys()
    assert all(torch.equal(reloaded[k], state[k]) for k in state)  # every weight bit for bit, head extras too
    after = scorer.score(PROMPTS, RESPONSES)
    # 1e-6, not bit-exact: identical weights in differently aligned memory (mmap'd safetensors) can take
    # another SIMD kernel path; the observed difference is at most one float32 ulp (~7e-9)
    assert after == pytest.approx(before, abs=1e-6, rel=0)
    assert len(set(before)) == len(before)  # the texts really score differently


def _seqs(scorer):
    return [scorer.encode(p, r) for p, r in zip(PROMPTS, RESPONSES, strict=True)]


def test_score_is_independent_of_padding_side(saved):
    _, scorer, _ = saved
    if scorer.meta.kind == "encoder":
        pytest.skip("encoders always pad on the right: [CLS] sits at column 0 (trainer and scorer enforce it)")
    seqs, pad = _seqs(scorer), scorer.tokenizer.pad_token_id
    with torch.no_grad():
        right = scorer.model(pad_batch(seqs, pad, "right"))
        left = scorer.model(pad_batch(seqs, pad, "left"))
    torch.testing.assert_close(left, right, atol=TOL, rtol=0)


def test_score_is_independent_of_batch_size_and_neighbours(saved):
    _, scorer, _ = saved
    seqs, pad = _seqs(scorer), scorer.tokenizer.pad_token_id
    together = score_sequences(scorer.model, seqs, pad, "cpu", max_tokens=10**6, max_batch=64)
    alone = score_sequences(scorer.model, seqs, pad, "cpu", max_tokens=10**6, max_batch=1)
    others = [scorer.encode(p, r) for p, r in NEIGHBOURS]
    crowded = score_sequences(scorer.model, others + seqs[::-1] + others, pad, "cpu", max_tokens=10**6,
                              max_batch=64)[len(others):len(others) + len(seqs)][::-1]
    assert together == pytest.approx(alone, abs=TOL)
    assert crowded == pytest.approx(alone, abs=TOL)


def test_score_is_independent_of_packing(saved):
    _, scorer, _ = saved
    seqs, pad = _seqs(scorer), scorer.tokenizer.pad_token_id
    padded = score_sequences(scorer.model, seqs, pad, "cpu", max_tokens=10**6, max_batch=1)
    # several sequences share each packed row (block-diagonal attention)
    packed_batch = pack_groups([[s] for s in seqs], scorer.meta.kind, pad, row_tokens=4096)
    assert packed_batch.input_ids.shape[0] < len(seqs)
    with torch.no_grad():
        packed = scorer.model(packed_batch).tolist()
    assert packed == pytest.approx(padded, abs=TOL)


def test_cli_score_gives_the_api_scores(saved, tmp_path):
    _, scorer, directory = saved
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n"
                           for p, r in zip(PROMPTS, RESPONSES, strict=True)))
    assert main(["score", str(directory), str(src), "-o", str(out), "--max-batch", "2"]) == 0
    cli = [json.loads(line)["reward"] for line in out.read_text().splitlines()]
    assert cli == pytest.approx(scorer.score(PROMPTS, RESPONSES), abs=TOL)


def test_responses_to_one_prompt_score_as_if_alone(saved):
    """Decoders compute a shared prompt once (packed tree rows); the scores must not change. Some prompts have
    several responses (of different lengths, one repeated), some one; the order is mixed."""
    _, scorer, _ = saved
    texts = [(p, r) for p in PROMPTS[:4] for r in RESPONSES] + [(PROMPTS[4], RESPONSES[0]), (PROMPTS[0], " 4")]
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()
    seqs, pad = [scorer.encode(*texts[i]) for i in order], scorer.tokenizer.pad_token_id
    if scorer.meta.kind == "decoder":  # the four multi-response prompts are found (one BPE-merged pair aside)
        groups, _ = prompt_groups(seqs)
        assert len(groups) >= 4 and sum(map(len, groups)) >= 20
    alone = score_sequences(scorer.model, seqs, pad, "cpu", max_tokens=10**6, max_batch=1, share_prompts=False)
    for budget, max_batch in ((10**6, 64), (300, 64), (10**6, 3)):
        shared = score_sequences(scorer.model, seqs, pad, "cpu", max_tokens=budget, max_batch=max_batch)
        assert shared == pytest.approx(alone, abs=TOL)
    assert len(set(alone)) > len(alone) // 2  # the responses really score differently
