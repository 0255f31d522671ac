"""Length-grouped batch planning on the length column (trainer.epoch_local_batches) gives exactly the batches of
the per-mega-batch Python sort it replaced (issue 21: a million examples planned in under a second)."""

import numpy as np
import pytest
import torch

from rewardkit.training.distributed import local_batch
from rewardkit.training.trainer import epoch_local_batches


def reference(lengths, batch_size, seed, epoch, rank, world, group_by_length, mega):
    """The planning as it was written first (sorted() per mega-batch, longest first, stable on ties)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(len(lengths), generator=g).tolist()
    step = batch_size * world
    if group_by_length:
        span = step * mega
        perm = [i for s in range(0, len(perm), span)
                for i in sorted(perm[s:s + span], key=lambda i: lengths[i], reverse=True)]
    chunks = [perm[s:s + step] for s in range(0, len(perm), step)]
    if group_by_length:
        order = torch.randperm(len(chunks), generator=g).tolist()
        chunks = [chunks[i] for i in order]
    return [local_batch(c, rank, world, batch_size) for c in chunks]


@pytest.mark.parametrize("n,batch,world,rank,group,mega,top", [
    (1000, 8, 1, 0, True, 32, 5),       # many ties: stability decides the order
    (997, 4, 2, 1, True, 3, 400),       # a short last global batch and mega-batch
    (50, 8, 1, 0, True, 32, 1),         # every length equal
    (300, 4, 3, 2, False, 32, 50),      # no grouping
    (0, 8, 1, 0, True, 32, 5),
])
def test_same_batches_as_the_python_sort(n, batch, world, rank, group, mega, top):
    lengths = np.random.default_rng(n).integers(1, top + 1, n).tolist()
    for epoch in (0, 3):
        got = epoch_local_batches(lengths, batch, 7, epoch, rank, world, group, mega)
        assert got == reference(lengths, batch, 7, epoch, rank, world, group, mega)
    # the stored column (a numpy array) plans the same batches as a list
    assert epoch_local_batches(np.asarray(lengths, dtype=np.int32), batch, 7, 0, rank, world, group, mega) == \
        reference(lengths, batch, 7, 0, rank, world, group, mega)
