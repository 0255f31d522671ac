"""A real training process killed with SIGKILL, resumed with --resume, ends where an unbroken run ends.

The run is killed twice: once inside a checkpoint write (held open by the crash-test hook
``REWARDKIT_FAULT_PAUSE_CHECKPOINT``, after the weights are written and before the COMPLETE marker), and once
between checkpoints. Each resume must pick the newest *complete* checkpoint, ignore the partial one, and
reproduce the data order, optimizer, scheduler and RNG (dropout is on) so exactly that the final parameters
equal those of a run that was never interrupted (fp32, CPU, within 1e-5).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import rewardkit
from rewardkit.config import load_config
from rewardkit.training.checkpoint import FAULT_ENV, MARKER, list_checkpoints

from ..conftest import REPO

MAX_STEPS = 25
SAVE_EVERY = 5


def _config(tmp_path: Path, name: str, model_dir: Path, data: Path) -> Path:
    cfg = {"model": {"name": str(model_dir), "dropout": True},
           "data": {"train": str(data), "max_length": 64},
           "train": {"lr": 1e-3, "batch_size": 2, "max_steps": MAX_STEPS, "save_every": SAVE_EVERY, "keep_last": 3,
                     "warmup_ratio": 0.1, "seed": 3, "log_every": 1, "precision": "fp32", "tensorboard": False,
                     "eval_zero_shot": False},
           "output_dir": str(tmp_path / name)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(cfg: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rewardkit", "train", str(cfg), *extra], cwd=REPO,
                            # one thread: the kill points need no speed, and fp32 CPU results stay comparable
                            env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                                 **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready, what: str, timeout: float = 300.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if ready():
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited (rc {proc.returncode}) before {what}:\n{proc.stderr.read()}")
        time.sleep(0.01)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _last_logged_step(run: Path) -> int:
    path = run / "metrics.jsonl"
    if not path.exists():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.endswith("}")]
    return max(steps, default=0)


@pytest.mark.slow  # three training subprocesses: ~30-40 s on an idle 2-core machine, minutes on a busy one
def test_sigkill_mid_checkpoint_and_mid_run_then_resume_gives_the_uninterrupted_parameters(
        tiny_model_dir, hh_file, tmp_path):
    model_dir = tiny_model_dir("gpt2")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses run: the same float summation order
    try:
        reference = rewardkit.train(load_config(_config(tmp_path, "straight", model_dir, hh_file)))
    finally:
        torch.set_num_threads(threads)
    expected = load_file(str(reference.output_dir / "model" / "model.safetensors"))

    cfg = _config(tmp_path, "killed", model_dir, hh_file)
    run = tmp_path / "killed"
    ckpts = run / "checkpoints"

    # 1. killed while writing the step-10 checkpoint: weights on disk, no COMPLETE marker yet
    proc = _start(cfg, env={FAULT_ENV: "10:60"})
    partial = ckpts / ".tmp-step-00000010"
    _wait_for(proc, lambda: (partial / "model.safetensors").exists(), "the step-10 checkpoint write")
    time.sleep(0.3)  # inside the hook's pause now
    _kill(proc)
    assert partial.is_dir() and not (partial / MARKER).exists()
    assert [p.name for p in list_checkpoints(ckpts)] == ["step-00000005"]  # the partial one is ignored

    # 2. resumed from step 5, killed again between checkpoints (after step 15 was saved)
    proc = _start(cfg, "--resume")
    _wait_for(proc, lambda: (ckpts / "step-00000015" / MARKER).exists() and _last_logged_step(run) >= 17,
              "step 17")
    _kill(proc)
    killed_at = _last_logged_step(run)
    assert killed_at < MAX_STEPS and not (run / "summary.json").exists(), "the run finished before the kill"
    assert not partial.exists()  # the stale temporary directory was replaced when step 10 was written again

    # 3. resumed to the end, from the newest complete checkpoint
    newest = list_checkpoints(ckpts)[-1]
    assert int(newest.name.split("-")[1]) >= 15
    proc = _start(cfg, "--resume")
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"resumed from {newest} at step" in err
    got = load_file(str(run / "model" / "model.safetensors"))
    assert got.keys() == expected.keys()
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], atol=1e-5, rtol=0)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == MAX_STEPS and summary["precision"] == "fp32"
    # the run really moved: the final weights differ from the starting ones
    start = load_file(str(model_dir / "model.safetensors"))
    assert any(not torch.equal(start[k], got[k]) for k in start if k in got and start[k].shape == got[k].shape)
