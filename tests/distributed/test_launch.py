"""`rewardkit train --num-processes N` re-runs itself through Accelerate's launcher (no processes started here)."""

import sys

import pytest

from rewardkit.cli import main
from rewardkit.training.distributed import relaunch_command


def test_num_processes_relaunches_through_accelerate_with_the_overrides():
    cmd = relaunch_command("cfg.yaml", ["--train.lr", "3e-5"], 4, None, resume=True)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[3:6] == ["--multi_gpu", "--num_processes", "4"]
    assert cmd[6:] == ["-m", "rewardkit", "train", "cfg.yaml", "--resume", "--train.lr", "3e-5"]


def test_accelerate_config_file_chooses_the_back_end():
    cmd = relaunch_command("cfg.yaml", [], None, "configs/accelerate/fsdp.yaml")
    assert "--multi_gpu" not in cmd and "--num_processes" not in cmd
    assert cmd[3:5] == ["--config_file", "configs/accelerate/fsdp.yaml"]


def test_num_processes_inside_a_launched_process_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("model: {name: x}\ndata: {train: t.jsonl}\n")
    assert main(["train", str(cfg), "--num-processes", "2"]) == 2
    assert "already started the processes" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"])
def test_accelerate_recipes_parse_as_accelerate_configs(name):
    from accelerate.commands.config.config_args import load_config_from_file

    from ..conftest import REPO

    cfg = load_config_from_file(str(REPO / "configs" / "accelerate" / f"{name}.yaml"))
    assert cfg.num_processes == 8 and cfg.num_machines == 1
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_version"] == 2 and cfg.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        assert cfg.fsdp_config["fsdp_reshard_after_forward"] is True
    if name.startswith("deepspeed"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "deepspeed-zero3":
        assert cfg.deepspeed_config["zero3_save_16bit_model"] is True
