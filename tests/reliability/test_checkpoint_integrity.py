"""A damaged checkpoint is named and skipped on --resume (the previous complete one is used), never a traceback."""

from __future__ import annotations

import json
import shutil

import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config
from rewardkit.models.reward_model import build_model
from rewardkit.training.checkpoint import MARKER, list_checkpoints, load_checkpoint
from rewardkit.training.manifest import CheckpointError, resume_checkpoint
from rewardkit.training.optim import build_optimizer, build_scheduler

FILES = ["model.safetensors", "optimizer.pt", "rng.pt", "scheduler.pt", "trainer_state.json"]


def _base(model_dir, data, out) -> dict:
    return {"model": {"name": str(model_dir)}, "data": {"train": str(data), "max_length": 64},
            "train": {"max_steps": 5, "save_every": 2, "batch_size": 2, "tensorboard": False, "precision": "fp32",
                      "eval_zero_shot": False},
            "output_dir": str(out)}


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """A finished run with checkpoints at steps 2 and 4."""
    root = tmp_path_factory.mktemp("ckpt")
    data = root / "d.jsonl"
    from ..conftest import HH_SAMPLE

    data.write_text("".join(json.dumps(r) + "\n" for r in HH_SAMPLE * 3))
    base = _base(tiny_model_dir("llama"), data, root / "run")
    rewardkit.train(load_config(None, None, base=base))
    assert [p.name for p in list_checkpoints(root / "run" / "checkpoints")] == ["step-00000002", "step-00000004"]
    return base


def _copy(trained, tmp_path):
    src = trained["output_dir"]
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return out / "checkpoints"


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # same size, one byte changed: only the checksum can tell
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def _resume(trained, ckpts):
    cfg = load_config(None, None, base=trained)
    model = build_model(cfg.model, seed=0)[0]
    optimizer = build_optimizer(model, cfg.train)
    scheduler = build_scheduler(optimizer, cfg.train, 5)
    return resume_checkpoint(list_checkpoints(ckpts), MARKER,
                             lambda p: load_checkpoint(p, model, optimizer, scheduler))


@pytest.mark.parametrize("how", ["truncate", "flip"])
@pytest.mark.parametrize("name", FILES)
def test_damaged_newest_checkpoint_is_named_and_the_previous_one_used(trained, tmp_path, name, how, caplog):
    ckpts = _copy(trained, tmp_path)
    _damage(ckpts / "step-00000004" / name, how)
    path, state = _resume(trained, ckpts)
    assert path.name == "step-00000002" and state["step"] == 2
    assert f"step-00000004/{name}" in caplog.text and "damaged" in caplog.text


@pytest.mark.parametrize("name", FILES)
def test_checkpoint_without_manifest_still_names_a_file_that_does_not_load(trained, tmp_path, name):
    ckpts = _copy(trained, tmp_path)
    for c in list_checkpoints(ckpts):
        (c / MARKER).write_text("ok\n")  # as written before manifests
        _damage(c / name, "truncate")
    with pytest.raises(CheckpointError) as info:
        _resume(trained, ckpts)
    msg = str(info.value)
    assert f"step-00000004/{name}" in msg and f"step-00000002/{name}" in msg


def test_cli_resume_falls_back_with_a_warning_and_fails_cleanly_when_none_loads(trained, tmp_path, capsys):
    import yaml

    ckpts = _copy(trained, tmp_path)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({**trained, "output_dir": str(ckpts.parent)}))
    for name in ("summary.json",):
        (ckpts.parent / name).unlink()
    shutil.rmtree(ckpts.parent / "model")  # a run killed after step 4's checkpoint
    _damage(ckpts / "step-00000004" / "model.safetensors", "flip")
    assert main(["train", str(cfg), "--resume"]) == 0
    assert json.loads((ckpts.parent / "summary.json").read_text())["steps"] == 5
    for c in list_checkpoints(ckpts):
        _damage(c / "optimizer.pt", "truncate")
    capsys.readouterr()
    assert main(["train", str(cfg), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint could be loaded" in err and "optimizer.pt" in err and "Traceback" not in err
