"""Adding a pairwise loss is an entry in ``losses.PAIRWISE_LOSSES`` (+ ``TASKS``): ``PairTask`` then trains it,
with no second list to keep in step (docs/architecture.md). Checked with a throwaway loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rewardkit import losses
from rewardkit.config import load_config
from rewardkit.data.dataset import EncodedPair
from rewardkit.data.tokenize import Encoded
from rewardkit.models.heads import RewardOutput
from rewardkit.training import tasks


def cfg(loss: str, **model):
    return load_config(None, None, base={"model": {"name": "x", **model}, "data": {}, "loss": {"name": loss}})


def pair(n_chosen: int, n_rejected: int, where: str) -> EncodedPair:
    def seq(n):
        return Encoded(list(range(10, 10 + n)), None, n - 1, n - 1, 1)

    return EncodedPair(seq(n_chosen), seq(n_rejected), None, where, n_chosen, n_rejected)


def test_a_pairwise_loss_added_to_the_table_is_the_loss_the_pair_task_computes(monkeypatch):
    seen = []

    def hinge(r_chosen, r_rejected, margin=None):
        seen.append((r_chosen.tolist(), r_rejected.tolist(), margin))
        return torch.relu(1 - (r_chosen - r_rejected)).mean()

    monkeypatch.setitem(losses.PAIRWISE_LOSSES, "throwaway_hinge", hinge)
    monkeypatch.setitem(tasks.TASKS, "throwaway_hinge", tasks.PairTask)
    c = cfg("bradley_terry")
    task = tasks.make_task(dataclasses.replace(c, loss=dataclasses.replace(c.loss, name="throwaway_hinge")))
    assert isinstance(task, tasks.PairTask) and task.packs and task.budgets
    batch = task.collate([pair(3, 2, "a:1"), pair(4, 5, "a:2")], pad_id=0, side="right")
    assert batch.tokens.input_ids.shape == (4, 5)  # chosen rows, then rejected rows
    rewards = torch.tensor([2.0, 0.5, 0.0, 1.0])
    loss = task.loss(RewardOutput(rewards, rewards[:, None]), batch)
    assert seen == [([2.0, 0.5], [0.0, 1.0], None)]  # no margin field, loss.margin 0: no margin passed
    assert loss.item() == pytest.approx((0.0 + 1.5) / 2)


def test_bradley_terry_through_the_pair_task_uses_the_margins_and_regularizers():
    c = cfg("bradley_terry")
    c = dataclasses.replace(c, loss=dataclasses.replace(c.loss, margin=0.5, centering=0.1))
    task = tasks.make_task(c)
    batch = task.collate([pair(3, 2, "a:1"), pair(4, 5, "a:2")], pad_id=0, side="left")
    rewards = torch.tensor([2.0, 0.5, 0.0, 1.0])
    got = task.loss(RewardOutput(rewards, rewards[:, None]), batch)
    margin = torch.tensor([0.5, 0.5])
    want = (losses.bradley_terry(rewards[:2], rewards[2:], margin)
            + losses.reward_centering(rewards[:2], rewards[2:], 0.1))
    assert got.item() == pytest.approx(want.item())


def test_token_level_pairwise_is_a_pair_task_that_packs_without_token_budgets():
    """It packs (its per-token values are read back per branch) but keeps whole micro-batches: pairs with no
    compared token leave its mean, so a batch cut by tokens would weight the other pairs differently."""
    task = tasks.make_task(cfg("token_level_pairwise", head="per_token"))
    assert isinstance(task, tasks.PairTask) and task.score_loss is None and task.packs and not task.budgets
    for name in ("bradley_terry", "log_exp"):
        assert tasks.make_task(cfg(name)).score_loss is losses.PAIRWISE_LOSSES[name]


def test_an_ensemble_with_a_loss_that_is_not_pairwise_is_a_config_error():
    with pytest.raises(ValueError, match="head ensemble"):
        tasks.make_task(cfg("ranking", head="ensemble", ensemble_size=3))
