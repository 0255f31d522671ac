"""Truncated weights and pickle-only backbones: an error naming the file, before transformers opens it."""

from __future__ import annotations

import shutil

import pytest
import torch

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config
from rewardkit.models.weights_check import WeightsError, check_safetensors

from .test_untrusted import _pickle_only_model_dir


def _train_cfg(model_dir, hh_file, tmp_path):
    return load_config(None, None, base={"model": {"name": str(model_dir)}, "data": {"train": str(hh_file)},
                                         "train": {"max_steps": 1, "tensorboard": False},
                                         "output_dir": str(tmp_path / "run")})


def test_pickle_only_backbone_is_refused_before_transformers_opens_it(tiny_model_dir, hh_file, tmp_path,
                                                                      monkeypatch):
    marker = tmp_path / "pwned"
    d = _pickle_only_model_dir(tiny_model_dir, tmp_path, marker)
    (d / "rewardkit.json").unlink()  # a plain backbone directory, as downloaded

    def no_torch_load(*a, **k):
        raise AssertionError("torch.load was called on a pickle backbone")

    monkeypatch.setattr(torch, "load", no_torch_load)
    with pytest.raises(WeightsError, match=r"only pickle weights \(pytorch_model\.bin\).*does not open pickle"):
        rewardkit.train(_train_cfg(d, hh_file, tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("cut", [4, 100, -50])
def test_truncated_safetensors_backbone_is_named(tiny_model_dir, hh_file, tmp_path, capsys, cut):
    d = tmp_path / "backbone"
    shutil.copytree(tiny_model_dir("llama"), d)
    weights = d / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:cut] if cut > 0 else data[:cut])
    with pytest.raises(WeightsError) as info:
        check_safetensors(weights)
    assert str(info.value).startswith(f"{weights}: ") and "truncated" in str(info.value)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {{name: {d}}}\ndata: {{train: {hh_file}}}\noutput_dir: {tmp_path / 'run'}\n"
                   "train: {max_steps: 1, tensorboard: false}\n")
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"rewardkit: error: {weights}: " in err and "Traceback" not in err


def test_truncated_reward_model_is_named_by_score(tiny_model_dir, tmp_path, capsys):
    from ..unit.test_score_batch import SINGLES, save_rewardkit_model, write_jsonl

    model = save_rewardkit_model(tiny_model_dir("llama"), tmp_path / "rm")
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])
    src = write_jsonl(tmp_path / "in.jsonl", SINGLES)
    assert main(["score", str(model), str(src), "-o", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert f"{weights}: " in err and "the file is truncated" in err
    assert not (tmp_path / "out.jsonl").exists()
