"""Untrusted files never run code: pickles are not opened, YAML tags are not constructed, model repository
code is not imported unless the user asks for it.

Each malicious file, if it were loaded, would create a marker directory; the tests check the load is refused
with a clear error *and* that the marker does not exist.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from rewardkit.cli import main
from rewardkit.config import ConfigError, load_config
from rewardkit.models.reward_model import ModelMeta, load_reward_model
from rewardkit.training.checkpoint import load_checkpoint, save_checkpoint

from ..conftest import load_test_tokenizer, tiny_config


class _Payload:
    """Unpickling this calls ``os.mkdir(marker)``: what a hostile pickle would do with a worse command."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _pickle_only_model_dir(tiny_model_dir, tmp_path, marker):
    src = tiny_model_dir("llama")
    d = tmp_path / "pickled-model"
    shutil.copytree(src, d)
    (d / "model.safetensors").unlink()
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump({"model.embed_tokens.weight": _Payload(marker)}, f)
    ModelMeta(kind="decoder", pooling="last").save(d)
    return d


def test_pickle_only_model_directory_is_refused_without_unpickling(tiny_model_dir, tmp_path, capsys):
    marker = tmp_path / "pwned"
    d = _pickle_only_model_dir(tiny_model_dir, tmp_path, marker)
    with pytest.raises(FileNotFoundError) as info:
        load_reward_model(d)
    msg = str(info.value)
    assert "no .safetensors weights (it holds pytorch_model.bin)" in msg and "safetensors only" in msg
    assert "safe_serialization=True" in msg  # how to fix it
    assert main(["score", str(d), str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl")]) == 2
    assert "safetensors only" in capsys.readouterr().err
    assert not marker.exists()
    # the payload is real: unpickling it would have run the call
    with open(d / "pytorch_model.bin", "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_optimizer_state_is_loaded_with_weights_only(tokenizer_dirs, tmp_path):
    from rewardkit.models.reward_model import model_from_config

    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    model = model_from_config(tiny_config("llama", len(tok)), "decoder", tok)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    ckpt = save_checkpoint(tmp_path / "checkpoints", 1, model, opt, sched, {"step": 1})
    assert load_checkpoint(ckpt, model, opt, sched) == {"step": 1}  # the honest checkpoint loads
    marker = tmp_path / "pwned"
    torch.save({"state": {}, "param_groups": [], "evil": _Payload(marker)}, ckpt / "optimizer.pt")
    from rewardkit.training.manifest import CheckpointError

    # refused by weights_only, and named: the error says which file (tests/reliability/test_checkpoint_integrity.py)
    with pytest.raises(CheckpointError, match=r"optimizer\.pt: cannot be loaded \(UnpicklingError: Weights only load "
                       "failed"):
        load_checkpoint(ckpt, model, opt, sched)
    assert not marker.exists()


def test_yaml_config_with_a_python_tag_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f"model:\n  name: !!python/object/apply:os.mkdir ['{marker}']\ndata:\n  train: x.jsonl\n")
    with pytest.raises(ConfigError, match="python tags and other custom tags are refused"):
        load_config(cfg)
    assert main(["train", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "python/object/apply:os.mkdir" in err
    assert not marker.exists()


def _remote_code_model_dir(tiny_model_dir, tmp_path, marker):
    """A model directory whose config asks transformers to import code shipped next to the weights."""
    d = tmp_path / "remote-code-model"
    shutil.copytree(tiny_model_dir("llama"), d)
    (d / "evil_model.py").write_text(
        f"import os\nos.makedirs({str(marker)!r}, exist_ok=True)\n"
        "from transformers import LlamaConfig\n\nclass EvilConfig(LlamaConfig):\n    model_type = 'evil'\n")
    config = json.loads((d / "config.json").read_text())
    config.update(model_type="evil", auto_map={"AutoConfig": "evil_model.EvilConfig",
                                               "AutoModelForSequenceClassification": "evil_model.EvilConfig"})
    (d / "config.json").write_text(json.dumps(config))
    ModelMeta(kind="decoder", pooling="last").save(d)
    return d


def test_model_code_from_the_repository_is_not_run_unless_trusted(tiny_model_dir, tmp_path):
    from rewardkit.config import ModelConfig
    from rewardkit.models.reward_model import build_model

    marker = tmp_path / "pwned"
    d = _remote_code_model_dir(tiny_model_dir, tmp_path, marker)
    with pytest.raises(ValueError, match="trust_remote_code"):
        load_reward_model(d)
    with pytest.raises(ValueError, match="trust_remote_code"):
        build_model(ModelConfig(name=str(d)))
    assert not marker.exists()
    assert ModelConfig(name="x").trust_remote_code is False
