"""Multi-process pieces of the training loop, on Accelerate: data sharding, sharded evaluation, global
metrics and saving a model whose parameters are sharded (FSDP, DeepSpeed ZeRO-3).

The rule throughout: every example counts exactly once, whatever the number of processes.

* Training: a global batch of ``batch_size * world`` pairs is cut into one slice per process. When the last
  global batch of an epoch is short, a process may get fewer pairs or none; the one with none repeats a pair
  (every process must run forward and backward, or the gradient all-reduce hangs) with weight 0. Each
  process scales its mean loss by ``local_pairs * world / global_pairs``, so the gradient DDP averages is
  exactly the mean over the global batch, as in one process with the whole batch.
* Evaluation: each process scores a contiguous shard of the pairs, padded to equal length so that every
  process runs the same number of forwards (FSDP and ZeRO-3 all-gather parameters inside each forward); the
  rewards are gathered with their indices and the padding dropped before the metrics.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from ..data.collate import pad_batch
from ..data.dataset import EncodedPair
from ..models.reward_model import RewardModel
from ..scoring import evaluation_mode

log = logging.getLogger(__name__)


def make_accelerator(grad_accum: int = 1):
    """An ``Accelerator`` that also runs multi-process on CPU-only machines.

    Accelerate picks its CPU (gloo) back end only when asked with ``cpu=True``; a ``torchrun`` or ``accelerate
    launch --multi_gpu`` start on a machine without CUDA would otherwise leave every process thinking it is
    alone, all writing the same output directory. We ask for it whenever a launcher set ``WORLD_SIZE > 1``
    and CUDA is absent. ``accelerate launch --use_fsdp`` (or an FSDP config file) on such a machine would
    still fall back to DDP, since Accelerate routes FSDP only on accelerators; torch's FSDP2 runs on CPU with
    gloo, so we switch the state to FSDP (used by the tests; useful to debug a recipe without GPUs).
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedType

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = world > 1 and not torch.cuda.is_available()
    accelerator = Accelerator(gradient_accumulation_steps=grad_accum, cpu=cpu)
    if world > 1 and accelerator.num_processes != world:
        raise RuntimeError(f"launched with WORLD_SIZE={world} but Accelerate set up {accelerator.num_processes} "
                           "process(es); check the launcher settings")
    wants_fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if cpu and wants_fsdp and accelerator.distributed_type == DistributedType.MULTI_CPU:
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* settings the launcher exported
        if plugin.fsdp_version != 2:
            raise ValueError("FSDP on CPU needs fsdp_version: 2 (FSDP1 wants a CUDA device)")
        from accelerate.state import PartialState

        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
        # as Accelerate does for FSDP itself: a later AcceleratorState() re-reads the PartialState's value
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP
        log.warning("FSDP on CPU (gloo): for testing recipes; it is slower than DDP on CPU")
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and cpu:
        raise ValueError("DeepSpeed needs CUDA devices: Accelerate does not run DeepSpeed on CPU; use DDP or "
                         "FSDP (configs/accelerate/fsdp.yaml) to try a multi-process run on CPU")
    return accelerator


def shards_parameters(accelerator) -> bool:
    """True when no process holds the full weights (FSDP, DeepSpeed ZeRO-3): forwards are collective and
    the full state dict must be gathered to save."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return False


def check_backend(accelerator, tc, resume: bool) -> None:
    """Refuse the settings a back end does not support yet, rather than train something else than asked."""
    from accelerate.utils import DistributedType

    if (tc.save_every or resume) and shards_parameters(accelerator):
        raise ValueError("train.save_every and --resume are not supported yet with FSDP or DeepSpeed ZeRO-3 "
                         "(the checkpoint format holds full weights); the final model is saved")
    if accelerator.distributed_type == DistributedType.DEEPSPEED and tc.grad_accum != 1:
        raise ValueError("with DeepSpeed set train.grad_accum to 1 and gradient_accumulation_steps in the "
                         "DeepSpeed config instead (DeepSpeed accumulates and scales the loss itself)")


# --- training data ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalBatch:
    indices: list[int]
    """The pairs this process trains on in this micro-batch."""
    weight: float
    """Multiplies this process's mean loss: ``len(real pairs) * world / len(global batch)``; 0 for a repeat."""


def local_batch(chunk: list[int], rank: int, world: int, batch_size: int) -> LocalBatch:
    """This process's slice of one global batch ``chunk`` (at most ``batch_size * world`` pairs)."""
    mine = chunk[rank * batch_size:(rank + 1) * batch_size]
    if not mine:  # short last batch: keep the collective in step, contribute nothing
        return LocalBatch(chunk[:1], 0.0)
    return LocalBatch(mine, len(mine) * world / len(chunk))


def global_mean_loss(accelerator, loss_sums: list[float], counts: list[int]) -> float:
    """Mean loss per pair over every process since the last call (each pair counted once)."""
    t = torch.tensor([sum(loss_sums), float(sum(counts))], dtype=torch.float64, device=accelerator.device)
    if accelerator.num_processes > 1:
        t = accelerator.reduce(t, reduction="sum")
    return float(t[0] / t[1]) if t[1] > 0 else float("nan")


def grad_norm_tensor(norm) -> torch.Tensor:
    """The total gradient norm as a plain tensor: FSDP2 returns a replicated DTensor, DeepSpeed a float."""
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return torch.as_tensor(norm)


# --- evaluation ---------------------------------------------------------------------------------------------

def eval_model(accelerator, model, raw_model: RewardModel):
    """Which module to run for evaluation: under DDP the plain module (its forward needs no collective, and
    DDP's own forward may broadcast buffers); with sharded parameters the wrapped one, which gathers them."""
    return model if shards_parameters(accelerator) else raw_model


@torch.no_grad()
def score_pairs_sharded(accelerator, model, pairs: list[EncodedPair], pad_id: int,
                        batch_pairs: int) -> tuple[list[float], list[float]]:
    """Rewards of every pair's chosen and rejected response, in order, each process scoring its shard.

    The shards are contiguous and padded (with repeats of the shard's last pair) to ``ceil(n / world)`` pairs,
    scored in batches of ``batch_pairs`` sorted by length, so every process runs the same number of forwards.
    Every process returns the same rewards; each pair appears exactly once.
    """
    n, world, rank = len(pairs), accelerator.num_processes, accelerator.process_index
    per = -(-n // world)
    mine = list(range(rank * per, min(n, (rank + 1) * per)))
    real = len(mine)
    if not mine:
        mine = [n - 1]  # more processes than pairs: score something, report nothing
        real = 0
    mine += [mine[-1]] * (per - len(mine))
    order = sorted(range(len(mine)), key=lambda j: -max(len(pairs[mine[j]].chosen.input_ids),
                                                        len(pairs[mine[j]].rejected.input_ids)))
    rewards: dict[int, tuple[float, float]] = {}
    with evaluation_mode(model):
        for s in range(0, len(order), batch_pairs):
            js = order[s:s + batch_pairs]
            chunk = [pairs[mine[j]] for j in js]
            seqs = [p.chosen for p in chunk] + [p.rejected for p in chunk]
            out = model(pad_batch(seqs, pad_id, "right").to(accelerator.device)).float().tolist()
            for k, j in enumerate(js):
                if j < real:
                    rewards[mine[j]] = (out[k], out[len(js) + k])
    gathered = list(rewards.items())
    if world > 1:
        from accelerate.utils import gather_object

        gathered = gather_object([gathered])  # one list per process
        gathered = [item for part in gathered for item in part]
    scored = dict(gathered)
    if len(scored) != n or len(gathered) != n:
        raise RuntimeError(f"sharded evaluation scored {len(gathered)} results for {len(scored)} of {n} pairs")
    return [scored[i][0] for i in range(n)], [scored[i][1] for i in range(n)]


# --- saving -------------------------------------------------------------------------------------------------

def full_state_dict(accelerator, model) -> dict[str, torch.Tensor] | None:
    """The full (unsharded) state dict of the ``RewardModel`` on the main process, None elsewhere.

    Collective under FSDP and ZeRO-3: every process must call it. Keys are those of ``RewardModel``
    (``hf.…``).
    """
    sd = accelerator.get_state_dict(model)
    # FSDP2 on CPU: torch returns the DTensor shards on every rank (its CPU offload, which gathers to rank 0,
    # is a no-op there); gather them, on every rank in the same key order (full_tensor is a collective)
    sd = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in sd.items()}
    if not accelerator.is_main_process:
        return None
    return {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
            for k, v in sd.items()}


# --- launching ----------------------------------------------------------------------------------------------

def relaunch_command(config: str, overrides: list[str], num_processes: int | None, accelerate_config: str | None,
                     resume: bool = False) -> list[str]:
    """``rewardkit train --num-processes N [--accelerate-config F]`` re-executed through Accelerate's launcher.

    Without a config file the launcher's torchrun mode (``--multi_gpu``) starts the processes: one per GPU, or
    gloo processes on a CPU-only machine (``make_accelerator``). A config file (``configs/accelerate/*.yaml``)
    chooses DDP, FSDP or DeepSpeed; ``--num-processes`` overrides its process count.
    """
    import sys

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("--num-processes / --accelerate-config inside a launched process: drop them, the launcher "
                         "already started the processes")
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        cmd += ["--config_file", accelerate_config]
    else:
        cmd += ["--multi_gpu"]
    if num_processes:
        cmd += ["--num_processes", str(num_processes)]
    cmd += ["-m", "rewardkit", "train", config, *(["--resume"] if resume else []), *overrides]
    return cmd


def is_main_launch() -> bool:
    """True in the process that should print (rank 0, or no launcher)."""
    return int(os.environ.get("RANK", "0")) == 0
