"""The task layer: each loss picks its data format, batches it for one forward, and computes the loss from the
model's outputs. Pure tensors here; the end-to-end runs are in tests/integration/test_recipes.py."""

import math

import pytest
import torch

from rewardkit.config import load_config
from rewardkit.data.errors import SkipReport
from rewardkit.data.tokenize import Encoded
from rewardkit.losses import ranking
from rewardkit.models.heads import RewardOutput
from rewardkit.training.tasks import (
    BinaryTask,
    EncodedExample,
    EncodedRanked,
    MultiTask,
    PairTask,
    RankedTask,
    ScalarTask,
    make_task,
)

from ..conftest import REPO


def cfg(loss="bradley_terry", **model):
    return load_config(None, None, base={"model": {"name": "x", **model}, "data": {}, "loss": {"name": loss}})


def seq(n, start=1):
    return Encoded(list(range(10, 10 + n)), None, start, n - 1, start)


@pytest.mark.parametrize("loss,task", [("bradley_terry", PairTask), ("log_exp", PairTask), ("cross_entropy", BinaryTask),
                                       ("mse", ScalarTask), ("rmse", ScalarTask), ("ranking", RankedTask)])
def test_each_loss_picks_its_task(loss, task):
    assert type(make_task(cfg(loss))) is task


def test_token_level_loss_without_a_per_token_head_is_an_error():
    with pytest.raises(ValueError, match="head per_token"):
        make_task(cfg("token_level_pairwise"))
    assert type(make_task(cfg("token_level_pairwise", head="per_token"))) is PairTask
    with pytest.raises(ValueError, match="head multi"):
        make_task(cfg("multi_attribute_mse"))
    assert type(make_task(cfg("multi_attribute_mse", head="multi", attributes=["a"]))) is MultiTask


def test_data_of_another_format_than_the_loss_expects_is_an_error_naming_the_split():
    c = cfg("ranking")
    data = str(REPO / "examples" / "data" / "binary.jsonl")
    split = load_config(None, None, base={"model": {"name": "x"}, "data": {"train": data}}).data.train
    with pytest.raises(ValueError, match=r"binary.jsonl: loss.name ranking trains on ranked data, but this split "
                                         r"holds binary"):
        make_task(c).load(split, c.data, SkipReport())


def test_ranked_batch_runs_all_k_responses_in_one_forward_and_the_loss_matches_the_grid():
    task = make_task(cfg("ranking"))
    items = [EncodedRanked([seq(3), seq(5), seq(4)], [0, 2, 1], "a:1"), EncodedRanked([seq(2), seq(6)], [1, 0], "a:2")]
    batch = task.collate(items, pad_id=0, side="left")
    assert batch.tokens.input_ids.shape == (5, 6)
    rewards = torch.tensor([3.0, 1.0, 2.0, 0.5, -0.5])
    got = task.loss(RewardOutput(rewards, rewards[:, None]), batch)
    grid = torch.tensor([[3.0, 1.0, 2.0], [0.5, -0.5, 0.0]])
    expected = ranking(grid, torch.tensor([[0, 2, 1], [1, 0, 0]]), torch.tensor([[1, 1, 1], [1, 1, 0]]).bool())
    torch.testing.assert_close(got, expected)
    # hand value: prompt 1 is ordered right (pairs d = 2, 1, 1), prompt 2 wrong (d = -1)
    sp = lambda d: math.log1p(math.exp(-d))  # noqa: E731
    assert got.item() == pytest.approx(((sp(2) + sp(1) + sp(1)) / 3 + sp(-1)) / 2, abs=1e-6)


def test_binary_task_reads_a_scalar_head_as_one_logit_and_applies_class_weights():
    c = load_config(None, None, base={"model": {"name": "x"}, "data": {},
                                      "loss": {"name": "cross_entropy", "class_weights": [3.0, 1.0]}})
    task = make_task(c)
    items = [EncodedExample(seq(3), 1, "a:1"), EncodedExample(seq(4), 0, "a:2")]
    batch = task.collate(items, 0, "right")
    z = torch.tensor([[2.0], [1.0]])
    got = task.loss(RewardOutput(z[:, 0], z), batch)
    # BCE with logit z: label 1 -> softplus(-2), label 0 -> softplus(1); weighted mean (w 1 and 3)
    expected = (math.log1p(math.exp(-2.0)) * 1 + math.log1p(math.exp(1.0)) * 3) / 4
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_multi_task_masks_attributes_a_record_did_not_rate():
    task = make_task(cfg("multi_attribute_mse", head="multi", attributes=["a", "b"]))
    items = [EncodedExample(seq(3), [1.0, math.nan], "x:1", [True, False]), EncodedExample(seq(3), [0.0, 2.0], "x:2",
                                                                                        [True, True])]
    batch = task.collate(items, 0, "right")
    logits = torch.tensor([[2.0, 100.0], [0.0, 0.0]])
    got = task.loss(RewardOutput(logits.mean(1), logits), batch)
    assert got.item() == pytest.approx((1 + 0 + 4) / 3)


def test_pair_regularizers_add_centering_and_l2():
    c = load_config(None, None, base={"model": {"name": "x"}, "data": {},
                                      "loss": {"name": "bradley_terry", "centering": 0.1, "l2": 0.5}})
    task = make_task(c)
    extra = task.pair_regularizers(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0]))
    assert extra.item() == pytest.approx(0.1 * (4 + 4) / 2 + 0.5 * (1 + 4 + 1 + 0) / 4)


class LengthModel(torch.nn.Module):
    """reward = number of real tokens: a model whose scores are known in advance."""

    def forward(self, batch, full=False):
        r = batch.attention_mask.sum(1).float()
        return RewardOutput(r, r[:, None]) if full else r


def test_ranked_evaluation_counts_pairs_the_scores_order_like_the_ranks():
    task = make_task(cfg("ranking"))
    # list 1: longest ranked best -> its 3 pairs right; list 2: ranks reversed -> its 1 pair wrong; a tie skipped
    items = [EncodedRanked([seq(6), seq(4), seq(2)], [0, 1, 2], "a:1"),
             EncodedRanked([seq(6), seq(3), seq(4)], [1, 0, 1], "a:2")]
    m = task.evaluate(LengthModel(), items, pad_id=0, device="cpu", batch_size=2)
    assert m["ranked_pairs"] == 5
    assert m["pair_accuracy"] == pytest.approx(3 / 5)  # list 2: 3 < 6 wrong, 3 < 4 wrong
    assert m["top1_accuracy"] == pytest.approx(1 / 2)
