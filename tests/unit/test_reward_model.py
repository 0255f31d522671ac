"""The score is read at the recorded token, whatever the padding side, batch or pad == eos; a saved model
loads in plain transformers with the same scores."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rewardkit.data.collate import pad_batch
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import SequenceEncoder
from rewardkit.models.reward_model import ModelMeta, RewardModel, model_from_config
from rewardkit.serve.scorer import Scorer

from ..conftest import ARCH_TOKENIZER, DECODERS, load_test_tokenizer, tiny_config

TEXTS = [
    ("\n\nHuman: hi\n\nAssistant:", " Hello! How can I help you today?"),
    ("\n\nHuman: What is 2+2?\n\nAssistant:", " 4."),
    ("\n\nHuman: Tell me about the history of Rome in detail please.\n\nAssistant:",
     " Rome was founded, according to legend, in 753 BC, and grew from a small town into an empire."),
    ("Q:", " A"),
]


def make(arch, tokenizer_dirs, pad_equals_eos=False):
    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])
    kind = "encoder" if arch == "bert" else "decoder"
    torch.manual_seed(0)
    if pad_equals_eos:
        tok.pad_token = tok.eos_token
        cfg = tiny_config(arch, len(tok))
        cfg.num_labels = 1
        cfg.pad_token_id = tok.pad_token_id
        model = RewardModel(AutoModelForSequenceClassification.from_config(cfg), kind)
    else:
        model = model_from_config(tiny_config(arch, len(tok)), kind, tok)
    model.eval()
    encoder = SequenceEncoder(tok, kind, 128)
    renderer = Renderer(tok, kind)
    seqs = [encoder.encode(renderer.render(p, r)) for p, r in TEXTS]
    return model, tok, kind, seqs


def single_scores(model, seqs, pad_id):
    with torch.no_grad():
        return torch.cat([model(pad_batch([s], pad_id)) for s in seqs])


@pytest.mark.parametrize("arch", DECODERS)
@pytest.mark.parametrize("pad_equals_eos", [False, True])
def test_score_is_independent_of_padding_side(arch, pad_equals_eos, tokenizer_dirs):
    model, tok, _, seqs = make(arch, tokenizer_dirs, pad_equals_eos)
    if pad_equals_eos:
        assert tok.pad_token_id == tok.eos_token_id == seqs[0].input_ids[seqs[0].score_index]
    alone = single_scores(model, seqs, tok.pad_token_id)
    with torch.no_grad():
        right = model(pad_batch(seqs, tok.pad_token_id, "right"))
        left = model(pad_batch(seqs, tok.pad_token_id, "left"))
    torch.testing.assert_close(right, alone, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(left, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", DECODERS)
def test_score_is_read_at_the_recorded_token_not_the_last_non_pad(arch, tokenizer_dirs):
    """With pad == eos a "first pad" or "last non-pad" rule reads the wrong token; ours reads the score token."""
    model, tok, _, seqs = make(arch, tokenizer_dirs, pad_equals_eos=True)
    batch = pad_batch(seqs, tok.pad_token_id, "right")
    with torch.no_grad():
        hidden = model.transformer.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                              position_ids=batch.position_ids).last_hidden_state
        expected = model._head()(hidden[torch.arange(len(seqs)), batch.score_index])[:, 0]
        wrong = model._head()(hidden[torch.arange(len(seqs)), batch.score_index - 1])[:, 0]
        got = model(batch)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, wrong)


@pytest.mark.parametrize("arch", [*DECODERS, "bert"])
def test_score_is_independent_of_batch_size_and_neighbours(arch, tokenizer_dirs):
    model, tok, _, seqs = make(arch, tokenizer_dirs)
    alone = single_scores(model, seqs, tok.pad_token_id)
    with torch.no_grad():
        for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0]):
            got = model(pad_batch([seqs[i] for i in order], tok.pad_token_id))
            torch.testing.assert_close(got, alone[order], atol=1e-4, rtol=1e-4)
        doubled = model(pad_batch(seqs + seqs, tok.pad_token_id))
        torch.testing.assert_close(doubled, torch.cat([alone, alone]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", [*DECODERS, "bert"])
def test_saved_model_reloads_in_plain_transformers_with_the_same_scores(arch, tokenizer_dirs, tmp_path):
    model, tok, kind, seqs = make(arch, tokenizer_dirs)
    meta = ModelMeta(kind=kind, pooling="cls" if kind == "encoder" else "last", max_length=128,
                     score_token_id=None if kind == "encoder" else tok.eos_token_id)
    model.save_pretrained(tmp_path, tok, meta)
    ours = Scorer(model, tok, meta).score([p for p, _ in TEXTS], [r for _, r in TEXTS])

    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    plain_tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = [s.input_ids for s in seqs]
    width = max(map(len, ids))
    input_ids = torch.tensor([x + [plain_tok.pad_token_id] * (width - len(x)) for x in ids])
    mask = (torch.arange(width)[None, :] < torch.tensor([len(x) for x in ids])[:, None]).long()
    kwargs = {}
    if seqs[0].token_type_ids is not None:
        kwargs["token_type_ids"] = torch.tensor([t + [0] * (width - len(t)) for t in (s.token_type_ids for s in seqs)])
    with torch.no_grad():
        theirs = plain(input_ids=input_ids, attention_mask=mask, **kwargs).logits[:, 0]
    torch.testing.assert_close(theirs, torch.tensor(ours), atol=1e-4, rtol=1e-4)

    reloaded = Scorer.from_pretrained(tmp_path).score([p for p, _ in TEXTS], [r for _, r in TEXTS])
    torch.testing.assert_close(torch.tensor(reloaded), torch.tensor(ours), atol=1e-5, rtol=1e-5)


def test_decoder_pad_token_differs_from_eos_after_setup(tokenizer_dirs):
    model, tok, _, _ = make("llama", tokenizer_dirs)
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id
    assert model.transformer.config.pad_token_id == tok.pad_token_id
    assert model.transformer.get_input_embeddings().weight.shape[0] == len(tok)
