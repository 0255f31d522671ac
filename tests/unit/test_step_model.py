"""The step read-out on a tiny random decoder: causal, batch- and padding-independent; save/load round trip."""

import pytest
import torch

from rewardkit.config import StepsConfig
from rewardkit.data.render import Renderer
from rewardkit.data.step_tokenize import StepEncoder, add_step_token
from rewardkit.data.steps import Stepwise
from rewardkit.models.heads import HeadSpec
from rewardkit.models.reward_model import ModelMeta, model_from_config
from rewardkit.serve.scorer import Scorer
from rewardkit.step_scoring import score_step_sequences, step_batch, step_logits

from ..conftest import load_test_tokenizer, tiny_config

PROMPT = "Start at 2. Add 3, add 4, subtract 1. What is the result?"
SOLUTIONS = [["2 + 3 = 5", "5 + 4 = 9", "9 - 1 = 8"], ["2 + 3 = 6", "6 + 4 = 10"], ["2 + 3 = 5"]]


def _setup(tokenizer_dirs, outputs=1, step_token=None, arch="llama"):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2" if arch == "llama" else "qwen2")
    torch.manual_seed(0)
    model = model_from_config(tiny_config(arch, len(tok)), "decoder", tok, HeadSpec(head="step", step_outputs=outputs))
    cfg = StepsConfig(step_token=step_token)
    add_step_token(tok, cfg, model.transformer)
    enc = StepEncoder(tok, Renderer(tok, "decoder"), cfg, 256)
    items = [enc.encode(Stepwise(PROMPT, s, [None] * len(s), f"t:{i}")) for i, s in enumerate(SOLUTIONS)]
    return model.eval(), tok, enc, items


@pytest.mark.parametrize("outputs", [1, 2])
def test_step_scores_do_not_depend_on_padding_side_or_neighbours(tokenizer_dirs, outputs):
    model, tok, _, items = _setup(tokenizer_dirs, outputs)
    pad = tok.pad_token_id
    alone = [score_step_sequences(model, [x], pad, "cpu")[0] for x in items]
    together = score_step_sequences(model, items, pad, "cpu")
    with torch.no_grad():
        tokens, index = step_batch(items, pad, "left")
        left = torch.sigmoid(step_logits(model, tokens, index)[..., 0]) if outputs == 1 else \
            step_logits(model, tokens, index).softmax(-1)[..., 1]
    for i, x in enumerate(items):
        assert len(together[i]) == len(x.step_ends)
        torch.testing.assert_close(torch.tensor(together[i]), torch.tensor(alone[i]), atol=1e-5, rtol=0)
        torch.testing.assert_close(left[i, :len(x.step_ends)], torch.tensor(alone[i]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("step_token", [None, "<|step|>"])
def test_a_steps_score_does_not_see_the_steps_after_it(tokenizer_dirs, step_token):
    model, tok, _, items = _setup(tokenizer_dirs, step_token=step_token)
    full, prefix = score_step_sequences(model, [items[0], items[2]], tok.pad_token_id, "cpu")
    assert prefix[0] == pytest.approx(full[0], abs=1e-5)  # "2 + 3 = 5" scored alone and as the first of three
    assert full[1] != pytest.approx(full[0], abs=1e-6)  # the read-out moves along the steps


def _scorer(model, tok, step_token=None, aggregate="min"):
    meta = ModelMeta(kind="decoder", pooling="last", head="step", step_outputs=model.spec.step_outputs,
                     step_aggregate=aggregate, max_length=256, score_token_id=tok.eos_token_id,
                     steps={"separator": "\n\n", "step_token": step_token, "step_token_id": None,
                            "truncation": "drop_steps"})
    model.spec.step_aggregate = aggregate
    return Scorer(model, tok, meta)


def test_score_steps_returns_step_rewards_and_the_aggregate(tokenizer_dirs):
    model, tok, _, items = _setup(tokenizer_dirs)
    scorer = _scorer(model, tok)
    out = scorer.score_steps([PROMPT] * 3, SOLUTIONS)
    probs = score_step_sequences(model, items, tok.pad_token_id, "cpu")
    for o, p in zip(out, probs, strict=True):
        assert o.step_rewards == pytest.approx(p, abs=1e-6) and o.reward == pytest.approx(min(p))
    prod = scorer.score_steps([PROMPT], SOLUTIONS[:1], aggregate="prod")[0]
    assert prod.reward == pytest.approx(float(torch.tensor(probs[0]).prod()), abs=1e-6)
    # Scorer.score on a step model cuts the response at the separator: the same aggregate reward
    assert scorer.score([PROMPT], ["\n\n".join(SOLUTIONS[0])])[0] == pytest.approx(out[0].reward, abs=1e-6)


def test_saved_step_model_reloads_with_the_same_step_scores(tokenizer_dirs, tmp_path):
    model, tok, _, _ = _setup(tokenizer_dirs, outputs=2, step_token="<|step|>")
    scorer = _scorer(model, tok, "<|step|>", "mean")
    before = scorer.score_steps([PROMPT] * 3, SOLUTIONS)
    model.save_pretrained(tmp_path / "m", tok, scorer.meta)
    again = Scorer.from_pretrained(tmp_path / "m")
    assert again.meta.step_aggregate == "mean" and again.meta.step_outputs == 2
    after = again.score_steps([PROMPT] * 3, SOLUTIONS)
    for a, b in zip(before, after, strict=True):
        assert a.step_rewards == pytest.approx(b.step_rewards, abs=1e-5) and a.reward == pytest.approx(b.reward, abs=1e-5)


def test_scoring_a_non_step_model_by_steps_is_a_clear_error(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    model = model_from_config(tiny_config("llama", len(tok)), "decoder", tok)
    scorer = Scorer(model, tok, ModelMeta(kind="decoder", pooling="last"))
    with pytest.raises(ValueError, match="no step head"):
        scorer.score_steps([PROMPT], SOLUTIONS[:1])


def test_step_head_on_an_encoder_is_refused():
    with pytest.raises(ValueError, match="decoder"):
        HeadSpec(head="step", pooling="cls").validate("encoder")
