"""Every read-out (pooling x head) keeps the invariants: the score does not depend on padding side, batch or
neighbours; a saved model reloads with the same scores; last/cls heads load in plain transformers."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from rewardkit.data.collate import pad_batch
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import SequenceEncoder
from rewardkit.models.heads import HEAD_FILE, HeadSpec, combine, masked_mean
from rewardkit.models.reward_model import ModelMeta, load_reward_model, model_from_config

from ..conftest import ARCH_TOKENIZER, load_test_tokenizer, tiny_config
from .test_reward_model import TEXTS
from .test_reward_model import single_scores as alone

ATTRS = ["helpfulness", "correctness", "verbosity"]
HEADS = {
    "classifier-logit-diff": HeadSpec(head="classifier"),
    "classifier-probability": HeadSpec(head="classifier", reward_from="probability"),
    "per-token": HeadSpec(head="per_token"),
    "multi-mean": HeadSpec(head="multi", attributes=ATTRS),
    "multi-fixed": HeadSpec(head="multi", attributes=ATTRS, weighting="fixed", attribute_weights=[0.5, 0.3, 0.2]),
    "multi-learned": HeadSpec(head="multi", attributes=ATTRS, weighting="learned"),
    "mean-pool-scalar": HeadSpec(pooling="mean"),
    "mean-pool-classifier": HeadSpec(pooling="mean", head="classifier"),
    "ensemble": HeadSpec(head="ensemble", ensemble_size=3, ensemble_aggregate="mean_minus_std", ensemble_beta=1.0),
}
# every head on a decoder; on the encoder the read-outs whose code path differs from the decoder's
CASES = [("llama", name) for name in HEADS] + [("bert", n) for n in ("classifier-probability", "multi-learned",
                                                                    "mean-pool-scalar")]
# what is saved differs: side file (learned), pooling in rewardkit.json (mean), per-token, 2 or K labels
RELOAD = [("llama", "per-token"), ("llama", "multi-learned"), ("llama", "mean-pool-classifier"),
          ("bert", "mean-pool-scalar"), ("bert", "multi-fixed"), ("llama", "ensemble")]
PLAIN = [("llama", "classifier-logit-diff"), ("llama", "per-token"), ("llama", "multi-learned"),
         ("bert", "classifier-probability"), ("bert", "multi-mean"), ("bert", "ensemble")]


def make(arch, name, tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])  # fresh: model setup adds a pad token
    kind = "encoder" if arch == "bert" else "decoder"
    spec = HeadSpec(**{**HEADS[name].to_meta()})
    if spec.pooling == "last" and kind == "encoder":
        spec.pooling = "cls"
    torch.manual_seed(0)
    model = model_from_config(tiny_config(arch, len(tok)), kind, tok, spec)
    if not model.extras.empty:
        with torch.no_grad():  # learned weights away from their uniform start, so a lost file would show
            model.extras.attribute_logits.copy_(torch.tensor([1.0, -0.5, 0.2]))
    model.eval()
    encoder, renderer = SequenceEncoder(tok, kind, 128), Renderer(tok, kind)
    seqs = [encoder.encode(renderer.render(p, r)) for p, r in TEXTS]
    return model, tok, kind, seqs


@pytest.mark.parametrize("arch,name", CASES)
def test_every_head_scores_independently_of_padding_side_batch_and_neighbours(arch, name, tokenizer_dirs):
    model, tok, kind, seqs = make(arch, name, tokenizer_dirs)
    single = alone(model, seqs, tok.pad_token_id)
    sides = ("right", "left") if kind == "decoder" else ("right",)
    with torch.no_grad():
        for side in sides:
            for order in ([0, 1, 2, 3], [3, 1, 2, 0], [2, 0]):
                got = model(pad_batch([seqs[i] for i in order], tok.pad_token_id, side))
                torch.testing.assert_close(got, single[order], atol=1e-4, rtol=1e-4)
    assert single.std() > 0  # the head reads the input: different texts, different scores


@pytest.mark.parametrize("arch,name", RELOAD)
def test_every_head_reloads_through_rewardkit_with_the_same_scores(arch, name, tokenizer_dirs, tmp_path):
    model, tok, kind, seqs = make(arch, name, tokenizer_dirs)
    before = alone(model, seqs, tok.pad_token_id)
    meta = ModelMeta(kind=kind, pooling="ignored: the model's own read-out is saved", max_length=128)
    model.save_pretrained(tmp_path, tok, meta)
    reloaded, tok2, meta2 = load_reward_model(tmp_path)
    assert (meta2.head, meta2.pooling) == (model.spec.head, model.spec.pooling)
    torch.testing.assert_close(alone(reloaded, seqs, tok2.pad_token_id), before, atol=1e-5, rtol=1e-5)
    assert (tmp_path / HEAD_FILE).exists() == (name == "multi-learned")


@pytest.mark.parametrize("arch,name", PLAIN)
def test_last_and_cls_heads_load_in_plain_transformers_with_the_same_outputs(arch, name, tokenizer_dirs, tmp_path):
    """Plain transformers gives the head's raw outputs (2 logits, K attributes, the last token's value);
    combining them into one reward (logit difference, weighting) is rewardkit's, from rewardkit.json."""
    model, tok, kind, seqs = make(arch, name, tokenizer_dirs)
    model.save_pretrained(tmp_path, tok, ModelMeta(kind=kind, pooling="", max_length=128))
    batch = pad_batch(seqs, tok.pad_token_id, "right")
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    kwargs = {"token_type_ids": batch.token_type_ids} if batch.token_type_ids is not None else {}
    with torch.no_grad():
        theirs = plain(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs).logits
        ours = model(batch, full=True)
    torch.testing.assert_close(theirs, ours.logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(combine(theirs, model.spec, model.extras), ours.rewards, atol=1e-4, rtol=1e-4)


def test_per_token_values_are_the_scalar_head_applied_at_every_token_and_the_score_is_the_last(tokenizer_dirs):
    model, tok, _, seqs = make("llama", "per-token", tokenizer_dirs)
    batch = pad_batch(seqs, tok.pad_token_id, "left")
    with torch.no_grad():
        out = model(batch, full=True)
        # a prefix of a sequence gets, at its last token, the value the full sequence has at that position
        s = seqs[2]
        cut = s.response_start + 3
        prefix = pad_batch([type(s)(s.input_ids[:cut], None, s.response_start, cut - 1, s.prompt_tokens)],
                           tok.pad_token_id)
        prefix_score = model(prefix)
    rows = torch.arange(len(seqs))
    torch.testing.assert_close(out.rewards, out.token_values[rows, batch.score_index])
    first = batch.attention_mask[2].argmax()
    torch.testing.assert_close(prefix_score[0], out.token_values[2, first + cut - 1], atol=1e-4, rtol=1e-4)


def test_classifier_reward_is_the_logit_difference_or_the_accept_probability():
    z = torch.tensor([[0.5, 2.0], [1.0, -1.0]])
    torch.testing.assert_close(combine(z, HeadSpec(head="classifier"), None), torch.tensor([1.5, -2.0]))
    prob = combine(z, HeadSpec(head="classifier", reward_from="probability"), None)
    torch.testing.assert_close(prob, torch.sigmoid(torch.tensor([1.5, -2.0])))


def test_multi_head_weightings_combine_attributes_into_one_reward():
    z = torch.tensor([[1.0, 2.0, 4.0]])
    assert combine(z, HeadSpec(head="multi", attributes=ATTRS), None).item() == pytest.approx(7 / 3)
    fixed = HeadSpec(head="multi", attributes=ATTRS, weighting="fixed", attribute_weights=[0.5, 0.5, 0.0])
    assert combine(z, fixed, None).item() == pytest.approx(1.5)


def test_masked_mean_ignores_padding():
    h = torch.tensor([[[1.0], [3.0], [100.0]], [[100.0], [2.0], [4.0]]])
    m = torch.tensor([[1, 1, 0], [0, 1, 1]])
    torch.testing.assert_close(masked_mean(h, m), torch.tensor([[2.0], [3.0]]))


@pytest.mark.parametrize("spec,kind,message", [
    (HeadSpec(head="per_token", pooling="cls"), "encoder", "per_token needs a decoder"),
    (HeadSpec(head="multi"), "decoder", "needs model.attributes"),
    (HeadSpec(head="multi", attributes=ATTRS, weighting="fixed", attribute_weights=[1.0]), "decoder",
     "one weight per attribute"),
    (HeadSpec(pooling="cls"), "decoder", "pooling cls is for encoders"),
    (HeadSpec(pooling="last"), "encoder", "pooling last is for decoders"),
])
def test_read_outs_that_make_no_sense_fail_naming_the_setting(spec, kind, message):
    with pytest.raises(ValueError, match=message):
        spec.validate(kind)


def test_learned_weights_missing_from_a_saved_model_is_an_error(tokenizer_dirs, tmp_path):
    model, tok, kind, _ = make("llama", "multi-learned", tokenizer_dirs)
    model.save_pretrained(tmp_path, tok, ModelMeta(kind=kind, pooling="", max_length=128))
    (tmp_path / HEAD_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=HEAD_FILE):
        load_reward_model(tmp_path)


def _reference_mean_reward(model, seq, first: int, last: int | None = None) -> torch.Tensor:
    """The head applied to the plain mean of one unpadded sequence's last hidden states ``first .. last``
    (inclusive; default: its score token)."""
    ids = torch.tensor([seq.input_ids])
    kwargs = {"token_type_ids": torch.tensor([seq.token_type_ids])} if seq.token_type_ids is not None else {}
    with torch.no_grad():
        hidden = model.transformer.base_model(input_ids=ids, **kwargs).last_hidden_state[0]
        last = seq.score_index if last is None else last
        return model._head()(hidden[first:last + 1].mean(0)).float()[0]


def test_decoder_mean_pooling_averages_the_response_through_the_score_token(tokenizer_dirs):
    model, tok, _, seqs = make("llama", "mean-pool-scalar", tokenizer_dirs)
    assert model.spec.mean_span == "response"
    want = torch.stack([_reference_mean_reward(model, s, s.response_start) for s in seqs])
    with torch.no_grad():
        for side in ("right", "left"):
            torch.testing.assert_close(model(pad_batch(seqs, tok.pad_token_id, side)), want, atol=1e-5, rtol=1e-5)
    # a changed prompt moves the score only through what the response tokens read of it (causal attention)
    everything = torch.stack([_reference_mean_reward(model, s, 0) for s in seqs])
    assert not torch.allclose(everything, want, atol=1e-3)


def test_encoder_mean_pooling_still_averages_every_real_token(tokenizer_dirs):
    model, tok, _, seqs = make("bert", "mean-pool-scalar", tokenizer_dirs)
    assert model.spec.mean_span == "all"
    want = torch.stack([_reference_mean_reward(model, s, 0, len(s.input_ids) - 1) for s in seqs])
    with torch.no_grad():
        torch.testing.assert_close(model(pad_batch(seqs, tok.pad_token_id)), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="mean_span response is for decoders"):
        HeadSpec(pooling="mean", mean_span="response").validate("encoder")


def test_scoring_gives_the_training_read_out_for_decoder_mean_pooling(tokenizer_dirs, tmp_path):
    """Scorer (shared-prompt packed rows for responses to one prompt, padded batches for the rest) and the
    training forward (padded, either side) give the same rewards; so does the reloaded model."""
    from rewardkit.serve.scorer import Scorer, scoring_batches

    model, tok, kind, _ = make("llama", "multi-fixed", tokenizer_dirs)
    model = type(model)(model.hf, kind, HeadSpec(**{**model.spec.to_meta(), "pooling": "mean", "mean_span": None}))
    model.eval()
    meta = ModelMeta(kind=kind, pooling="mean", max_length=128, score_token_id=tok.eos_token_id)
    scorer = Scorer(model, tok, meta)
    prompts = [p for p, _ in TEXTS] + [TEXTS[0][0], TEXTS[2][0]]
    responses = [r for _, r in TEXTS] + [" Hi there.", " It was a city."]
    seqs = [scorer.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
    kinds = {type(b).__name__ for _, b in scoring_batches(model, seqs, tok.pad_token_id, 4096, 64)}
    assert kinds == {"PackedBatch", "TokenBatch"}  # both scoring layouts are exercised
    scored = torch.tensor(scorer.score(prompts, responses))
    with torch.no_grad():
        for side in ("right", "left"):
            torch.testing.assert_close(scored, model(pad_batch(seqs, tok.pad_token_id, side)), atol=1e-5, rtol=1e-5)
    model.save_pretrained(tmp_path, tok, meta)
    assert ModelMeta.load(tmp_path).mean_span == "response"
    reloaded = Scorer.from_pretrained(tmp_path)
    assert reloaded.model.spec.mean_span == "response"
    torch.testing.assert_close(torch.tensor(reloaded.score(prompts, responses)), scored, atol=1e-5, rtol=1e-5)


def test_a_decoder_mean_pooled_model_saved_before_mean_span_keeps_its_all_token_mean(tokenizer_dirs, tmp_path):
    """Older rewardkit.json files have no mean_span: those models were trained on the mean of every real token,
    and load with that read-out (with a warning), so their scores do not change."""
    import json

    model, tok, kind, seqs = make("llama", "mean-pool-scalar", tokenizer_dirs)
    model.save_pretrained(tmp_path, tok, ModelMeta(kind=kind, pooling="mean", max_length=128))
    meta_file = tmp_path / "rewardkit.json"
    data = json.loads(meta_file.read_text())
    del data["mean_span"]
    meta_file.write_text(json.dumps(data))
    reloaded, tok2, _ = load_reward_model(tmp_path)
    assert reloaded.spec.mean_span == "all"
    want = torch.stack([_reference_mean_reward(model, s, 0) for s in seqs])
    torch.testing.assert_close(alone(reloaded, seqs, tok2.pad_token_id), want, atol=1e-5, rtol=1e-5)
