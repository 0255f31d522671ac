"""Resumable checkpoints, written atomically.

A checkpoint is a directory ``checkpoints/step-00000050`` holding the model weights (safetensors), the
optimizer and scheduler states, the RNG states and the trainer state (step, data position). It is written to
a temporary directory and renamed into place, and it is valid only when its ``COMPLETE`` marker exists, so a
run killed mid-write never leaves a checkpoint that looks valid. Only the last ``keep_last`` are kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from .manifest import CheckpointError, load_file_or_fail, write_manifest

MARKER = "COMPLETE"
FAULT_ENV = "REWARDKIT_FAULT_PAUSE_CHECKPOINT"


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer, scheduler, trainer_state: dict,
                    keep_last: int = 2, extra: Callable[[Path], None] | None = None) -> Path:
    """``extra(directory)`` writes further files into the checkpoint before it is marked complete (the
    early-stopping best weights)."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        # a checkpoint of NaN weights would make --resume continue from garbage; keep the last good one
        raise FloatingPointError(f"refusing to save checkpoint at step {step}: non-finite weights in {bad[0]}"
                                 f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}")
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    _fault_pause(step)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    rng = _rng_state()
    rng["numpy"] = (rng["numpy"][0], torch.from_numpy(rng["numpy"][1].copy()), *rng["numpy"][2:])
    torch.save(rng, tmp / "rng.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(trainer_state, indent=2))
    if extra is not None:
        extra(tmp)
    write_manifest(tmp, MARKER)  # sizes and SHA-256 of every file, verified on resume (training/manifest.py)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fault_pause(step: int) -> None:
    """Crash-test hook: ``REWARDKIT_FAULT_PAUSE_CHECKPOINT=STEP:SECONDS`` sleeps inside the write of that
    step's checkpoint (weights written, marker not yet), so a test can kill the process mid-write."""
    spec = os.environ.get(FAULT_ENV)
    if spec:
        at, seconds = spec.split(":")
        if int(at) == step:
            time.sleep(float(seconds))


def list_checkpoints(root: Path) -> list[Path]:
    """Valid checkpoints, oldest first (directories without the COMPLETE marker are ignored)."""
    if not root.exists():
        return []
    found = [p for p in root.glob("step-*") if p.is_dir() and (p / MARKER).exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer, scheduler) -> dict:
    """Restore everything saved by :func:`save_checkpoint`; returns the trainer state.

    Only tensors and plain containers are unpickled (``weights_only=True``); weights come from safetensors.
    A file that is missing or does not load is a :class:`~rewardkit.training.manifest.CheckpointError` naming it.
    """
    def torch_file(p: Path):
        return torch.load(p, weights_only=True)

    load_file_or_fail(path / "model.safetensors", lambda p: load_model(model, str(p)))
    load_file_or_fail(path / "optimizer.pt", lambda p: optimizer.load_state_dict(torch_file(p)))
    load_file_or_fail(path / "scheduler.pt", lambda p: scheduler.load_state_dict(torch_file(p)))

    def rng_file(p: Path) -> None:
        rng = torch_file(p)
        rng["numpy"] = (rng["numpy"][0], rng["numpy"][1].numpy(), *rng["numpy"][2:])
        _set_rng_state(rng)

    load_file_or_fail(path / "rng.pt", rng_file)
    state = load_file_or_fail(path / "trainer_state.json", lambda p: json.loads(p.read_text()))
    if not isinstance(state, dict) or not isinstance(state.get("step"), int):
        raise CheckpointError(f"{path / 'trainer_state.json'}: not a trainer state (no integer 'step')")
    return state
