"""The head registry (rewardkit/models/head_kinds.py): adding a head is one registered class, and the model,
export and card follow it without another edit. Checked by adding a throwaway head here."""

from __future__ import annotations

import pytest
import torch

from rewardkit.export.card import _combination
from rewardkit.export.exporter import consumer_reward, readout
from rewardkit.models.head_kinds import HEADS, HeadKind, head_kind, register_head
from rewardkit.models.heads import HeadSpec
from rewardkit.models.reward_model import ModelMeta, RewardModel
from rewardkit.types import TokenBatch

from ..conftest import tiny_config


@pytest.fixture
def negated_head():
    """A throwaway two-output head: reward = z_1 - 2 z_0, validated to need pooling last."""

    @register_head
    class Negated(HeadKind):
        name = "throwaway_negated"

        def num_labels(self, spec):
            return 2

        def validate(self, spec, kind):
            if spec.pooling != "last":
                raise ValueError("model.head throwaway_negated needs pooling last")

        def combine(self, z, spec, extras):
            return z[:, 1] - 2 * z[:, 0]

        def transformers_readout(self, meta):
            return "logits"

        def consumer_reward(self, z, meta, weights):
            return self.combine(z, meta, None)

        def card_lines(self, meta, weights):
            return ["reward = logits[1] - 2 logits[0]"]

    yield HEADS["throwaway_negated"]
    del HEADS["throwaway_negated"]


def _batch(n=3, width=7, vocab=50):
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([7, 5, 3])[:n]
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    ids = torch.randint(0, vocab, (n, width), generator=g) * mask
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return TokenBatch(ids, mask, pos, lengths - 1)


def test_a_registered_head_sizes_the_model_combines_its_outputs_and_drives_export_and_card(negated_head):
    from transformers import AutoModelForSequenceClassification

    spec = HeadSpec(head="throwaway_negated", pooling="last")
    spec.validate("decoder")
    assert spec.num_labels == 2 and spec.head_kind is negated_head
    cfg = tiny_config("llama", 50)
    cfg.num_labels = spec.num_labels
    torch.manual_seed(0)
    model = RewardModel(AutoModelForSequenceClassification.from_config(cfg), "decoder", spec).eval()
    with torch.no_grad():
        out = model(_batch(), full=True)
    assert out.logits.shape == (3, 2)
    assert torch.equal(out.rewards, out.logits[:, 1] - 2 * out.logits[:, 0])
    meta = ModelMeta(kind="decoder", **spec.to_meta())
    assert readout(meta) == "logits"
    assert torch.equal(consumer_reward(out.logits, meta, None), out.rewards)
    assert _combination(meta, None) == ["reward = logits[1] - 2 logits[0]"]


def test_a_registered_heads_validation_names_the_key(negated_head):
    with pytest.raises(ValueError, match="model.head throwaway_negated needs pooling last"):
        HeadSpec(head="throwaway_negated", pooling="mean").validate("decoder")


def test_an_unknown_head_is_an_error_listing_the_registered_ones():
    with pytest.raises(ValueError, match=r"model.head: unknown head 'nope'; choose one of scalar, classifier"):
        head_kind("nope")


def test_registering_a_taken_name_fails():
    class Again(HeadKind):
        name = "scalar"

    with pytest.raises(ValueError, match="already registered"):
        register_head(Again)


def test_padded_and_packed_batches_read_out_through_the_same_index_view():
    batch = _batch()
    index = batch.read_index()
    assert torch.equal(index.score_row, torch.arange(3)) and torch.equal(index.score_col, batch.score_index)
    assert torch.equal(index.token_col[1], torch.arange(7)) and torch.equal(index.token_mask, batch.attention_mask)
    assert torch.equal(index.score_pos, batch.score_index)
