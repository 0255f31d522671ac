"""`rewardkit train` never silently replaces a finished run, and a run that fails validation changes nothing."""

from __future__ import annotations

import json

import pytest

import rewardkit
from rewardkit.cli import main
from rewardkit.config import load_config


def _cfg(tmp_path, model_dir, data, out):
    return load_config(None, None, base={
        "model": {"name": str(model_dir)}, "data": {"train": str(data), "max_length": 64},
        "train": {"max_steps": 1, "batch_size": 2, "tensorboard": False, "precision": "fp32",
                  "eval_zero_shot": False},
        "output_dir": str(out)})


def test_finished_run_is_refused_unless_overwrite_and_failed_validation_keeps_its_config(
        tiny_model_dir, hh_file, tmp_path):
    out = tmp_path / "run"
    cfg = _cfg(tmp_path, tiny_model_dir("llama"), hh_file, out)
    rewardkit.train(cfg)
    data = json.loads((out / "summary.json").read_text())["data"]
    # no eval split: no eval truncation counts (they used to repeat the train ones)
    assert data["eval_truncation"] is None and data["train_truncation"]["sequences"] > 0
    weights = (out / "model" / "model.safetensors").read_bytes()
    config = (out / "config.yaml").read_text()
    with pytest.raises(FileExistsError, match="holds a finished run .*pass --overwrite"):
        rewardkit.train(cfg)
    # --overwrite with data that fails validation: the earlier run, its config.yaml included, stays as it was
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "q", "chosen": 5, "rejected": "b"}) + "\n")
    bad_cfg = load_config(None, ["--data.train", str(bad), "--train.lr", "0.5"],
                          base=json.loads(json.dumps(rewardkit.config.to_dict(cfg))))
    with pytest.raises(rewardkit.data.errors.DataError):
        rewardkit.train(bad_cfg, overwrite=True)
    assert (out / "config.yaml").read_text() == config
    assert (out / "model" / "model.safetensors").read_bytes() == weights
    # a valid --overwrite replaces it, and the new config.yaml describes the new run
    rewardkit.train(load_config(None, ["--train.lr", "0.5"], base=rewardkit.config.to_dict(cfg)), overwrite=True)
    assert "lr: 0.5" in (out / "config.yaml").read_text()


def test_cli_refuses_a_finished_run_and_a_resume_with_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    (out / "model").mkdir(parents=True)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {{name: x}}\ndata: {{train: t.jsonl}}\noutput_dir: {out}\n")
    assert main(["train", str(cfg)]) == 2
    assert f"output_dir {out} holds a finished run (model); pass --overwrite" in capsys.readouterr().err
    assert main(["train", str(cfg), "--resume", "--overwrite"]) == 2
    assert "pass one of them" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["file", "file_parent", "unwritable"])
def test_invalid_or_unwritable_output_dir_is_a_message_naming_the_path(case, tmp_path, capsys):
    if case == "unwritable":
        out, expect = "/sys/rk-output-dir", "output_dir /sys/rk-output-dir: cannot write in /sys"
    else:
        (tmp_path / "f").write_text("x")
        out = str(tmp_path / "f") if case == "file" else str(tmp_path / "f" / "run")
        expect = f"output_dir {out}: {tmp_path / 'f'} is a file, not a directory"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model: {{name: x}}\ndata: {{train: t.jsonl}}\noutput_dir: {out}\n")
    assert main(["train", str(cfg)]) == 2
    assert expect in capsys.readouterr().err
