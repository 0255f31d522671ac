"""How the training data and the loss are split across processes (pure functions, no processes started)."""

import pytest
import torch

from rewardkit.training.distributed import local_batch
from rewardkit.training.trainer import epoch_local_batches


@pytest.mark.parametrize("n,world,batch", [(15, 2, 2), (16, 2, 2), (7, 4, 2), (1, 2, 3), (9, 3, 4)])
def test_each_pair_is_trained_once_per_epoch_across_processes(n, world, batch):
    lengths = list(range(n))
    per_rank = [epoch_local_batches(lengths, batch, seed=3, epoch=1, rank=r, world=world) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1  # every process runs the same number of micro-batches
    counted = sorted(i for batches in per_rank for b in batches if b.weight for i in b.indices)
    assert counted == list(range(n))


@pytest.mark.parametrize("chunk_len,world,batch", [(4, 2, 2), (3, 2, 2), (1, 2, 2), (5, 3, 2), (2, 4, 1)])
def test_weighted_local_losses_average_to_the_global_batch_mean(chunk_len, world, batch):
    """DDP averages gradients over processes; with the weights, that average is the mean over the global
    batch, as one process would compute it (padded repeats count zero)."""
    losses = torch.arange(1.0, chunk_len + 1.0, dtype=torch.float64) ** 2
    chunk = list(range(chunk_len))
    ddp = 0.0
    for rank in range(world):
        lb = local_batch(chunk, rank, world, batch)
        ddp += lb.weight * losses[lb.indices].mean().item() / world
    assert ddp == pytest.approx(losses.mean().item(), rel=1e-12)


def test_one_process_batches_have_weight_one():
    batches = epoch_local_batches(list(range(10)), 4, seed=0, epoch=0)
    assert [len(b.indices) for b in batches if len(b.indices) == 2] == [2]
    assert all(b.weight == 1.0 for b in batches)
