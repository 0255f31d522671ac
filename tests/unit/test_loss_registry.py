"""Adding a pairwise loss is an entry in ``losses.PAIRWISE_LOSSES`` (+ ``TASKS``): the trainer's pairwise step
then runs it, with no second list to keep in step (docs/architecture.md). Checked with a throwaway loss."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from rewardkit import losses
from rewardkit.training import tasks


def test_a_pairwise_loss_added_to_the_table_runs_in_the_trainers_pairwise_step(monkeypatch):
    def hinge(r_chosen, r_rejected, margin=None):
        return torch.relu(1 - (r_chosen - r_rejected)).mean()

    monkeypatch.setitem(losses.PAIRWISE_LOSSES, "throwaway_hinge", hinge)
    monkeypatch.setitem(tasks.TASKS, "throwaway_hinge", tasks.PairTask)
    task = tasks.make_task(SimpleNamespace(loss=SimpleNamespace(name="throwaway_hinge")))
    assert isinstance(task, tasks.PairTask) and task.in_trainer
    assert losses.get_pairwise_loss("throwaway_hinge") is hinge


def test_token_level_pairwise_is_a_pair_task_outside_the_trainers_pairwise_step():
    cfg = SimpleNamespace(loss=SimpleNamespace(name="token_level_pairwise"), model=SimpleNamespace(head="per_token"))
    task = tasks.make_task(cfg)
    assert isinstance(task, tasks.PairTask) and not task.in_trainer
    for name in ("bradley_terry", "log_exp"):
        assert tasks.make_task(SimpleNamespace(loss=SimpleNamespace(name=name))).in_trainer
