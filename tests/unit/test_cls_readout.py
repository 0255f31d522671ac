"""The [CLS]-only last layer gives the same logits and gradients as the full encoder, with any padding."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from rewardkit.models.cls_readout import cls_only, cls_only_layer

COMMON = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
SUPPORTED = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig, "electra": tf.ElectraConfig,
             "xlm-roberta": tf.XLMRobertaConfig}


def _model(config_cls, attn: str, **extra):
    torch.manual_seed(0)
    cfg = config_cls(**COMMON, **extra)
    cfg._attn_implementation = attn
    return tf.AutoModelForSequenceClassification.from_config(cfg).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 300, (4, 11), generator=g)
    mask = torch.ones_like(ids)
    for row, length in enumerate((11, 7, 3, 9)):  # right padding of different widths, one row unpadded
        mask[row, length:] = 0
        ids[row, length:] = 1
    return ids, mask


def _logits_and_grads(model, ids, mask, shortcut: bool):
    model.zero_grad()
    if shortcut:
        with cls_only(model) as active:
            assert active
            logits = model(input_ids=ids, attention_mask=mask).logits
    else:
        logits = model(input_ids=ids, attention_mask=mask).logits
    (logits * torch.tensor([1.0, -2.0])).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("arch", sorted(SUPPORTED))
def test_cls_only_equals_full_layer(arch, attn):
    model = _model(SUPPORTED[arch], attn)
    ids, mask = _batch()
    full, full_grads = _logits_and_grads(model, ids, mask, shortcut=False)
    fast, fast_grads = _logits_and_grads(model, ids, mask, shortcut=True)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-6)
    assert full_grads.keys() == fast_grads.keys()
    for name, grad in full_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    # the instance override is gone afterwards: the backbone returns every row again
    hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert hidden.shape[1] == ids.shape[1]
    assert "forward" not in vars(cls_only_layer(model))


def test_cls_only_shrinks_the_last_layer_output():
    model = _model(tf.BertConfig, "sdpa")
    ids, mask = _batch()
    with cls_only(model):
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert hidden.shape == (4, 1, 32)


def test_unsupported_architectures_run_the_full_layer():
    rel = _model(tf.BertConfig, "eager", position_embedding_type="relative_key")
    distil = tf.AutoModelForSequenceClassification.from_config(
        tf.DistilBertConfig(vocab_size=300, dim=32, hidden_dim=64, n_layers=2, n_heads=4, max_position_embeddings=64))
    ids, mask = _batch()
    for model in (rel, distil):
        model.eval()
        assert cls_only_layer(model) is None
        before = model(input_ids=ids, attention_mask=mask).logits
        with cls_only(model) as active:
            assert not active
            after = model(input_ids=ids, attention_mask=mask).logits
        torch.testing.assert_close(after, before, rtol=0, atol=0)
