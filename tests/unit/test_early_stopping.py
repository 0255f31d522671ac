"""train.early_stopping: the saved model is the best evaluation's, patience stops training, bad settings fail."""

import json

import pytest
import torch
from safetensors.torch import load_file

import rewardkit
from rewardkit.cli import main
from rewardkit.config import ConfigError, EarlyStoppingConfig
from rewardkit.training.early_stopping import BEST_FILE, EarlyStopping, selection_metric
from rewardkit.training.tasks import BinaryTask, PairTask, RankedTask, ScalarTask

from ..integration.test_train_cli import write_config


def _cfg(tmp_path, model_dir, data, early_stopping, **train):
    import yaml

    train = {"eval_every": 1, "max_steps": 5, "eval_zero_shot": True, **train}
    path = write_config(tmp_path, model_dir, data, early_stopping=early_stopping, **train)
    return yaml.safe_load(path.read_text())


def _evals(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["split"] == "eval"]


def test_the_saved_model_is_the_best_evaluations_and_summary_records_it(tiny_model_dir, hh_file, tmp_path):
    """Selecting on the *highest* eval loss makes the best step an early one (training lowers the loss), so the
    best is not the last step: the saved weights must be that step's (its checkpoint's), not the last ones."""
    cfg = _cfg(tmp_path, tiny_model_dir("llama"), hh_file, {"metric": "loss", "mode": "max"}, save_every=1,
               keep_last=10)
    result = rewardkit.train(cfg)
    run = result.output_dir
    evals = _evals(run)
    assert [e["step"] for e in evals] == [1, 2, 3, 4, 5]  # every step evaluated, the last one at the end
    best = max(evals, key=lambda e: e["loss"])
    summary = json.loads((run / "summary.json").read_text())
    early = summary["early_stopping"]
    assert early["best_step"] == best["step"] < 5 and early["best"] == pytest.approx(best["loss"])
    assert early["metric"] == "loss" and early["mode"] == "max" and not early["stopped_early"]
    assert summary["eval"]["loss"] == pytest.approx(best["loss"])  # the selected evaluation's metrics
    assert early["last_eval"]["loss"] == pytest.approx(evals[-1]["loss"])
    # the saved weights are the best step's checkpoint weights (the checkpoint holds the RewardModel's state)
    ckpt = run / "checkpoints" / f"step-{best['step']:08d}"
    want = {k.removeprefix("hf."): v for k, v in load_file(str(ckpt / "model.safetensors")).items()}
    saved = load_file(str(run / "model" / "model.safetensors"))
    assert saved.keys() <= want.keys()
    for k, v in saved.items():
        torch.testing.assert_close(v, want[k], rtol=0, atol=0)
    last = {k.removeprefix("hf."): v for k, v in
            load_file(str(run / "checkpoints" / "step-00000004" / "model.safetensors")).items()}
    assert any(not torch.equal(v, last[k]) for k, v in saved.items())  # and not the later weights
    assert (ckpt / BEST_FILE).exists()  # checkpoints carry the best weights, so --resume keeps them
    meta = json.loads((run / "model" / "rewardkit.json").read_text())
    assert meta["training"]["best_step"] == best["step"]
    # the reloaded model scores the evaluation pairs as the selected evaluation did
    from rewardkit.config import load_config
    from rewardkit.data.dataset import encode_pairs, load_pairs
    from rewardkit.training.trainer import evaluate_pairs

    scorer = rewardkit.load_model(run)
    c = load_config(run / "config.yaml")
    pairs = encode_pairs(load_pairs(c.data.eval, c.data), scorer.renderer, scorer.encoder)
    m = evaluate_pairs(scorer.model, pairs, scorer.tokenizer.pad_token_id, "cpu", 32)
    assert m["loss"] == pytest.approx(best["loss"], abs=1e-5)


def test_patience_stops_training_after_evaluations_without_improvement(tiny_model_dir, hh_file, tmp_path):
    cfg = _cfg(tmp_path, tiny_model_dir("llama"), hh_file, {"metric": "loss", "mode": "max", "patience": 1})
    result = rewardkit.train(cfg)
    evals = _evals(result.output_dir)
    early = result.metrics["early_stopping"]
    # the loss falls from step 1 on, so the second evaluation does not improve on the first: stop there
    assert evals[1]["loss"] < evals[0]["loss"]
    assert early["stopped_early"] and early["best_step"] == 1 and early["last_step"] == 2
    assert result.metrics["steps"] == 2 and [e["step"] for e in evals] == [1, 2]
    train_steps = [json.loads(x)["step"] for x in (result.output_dir / "metrics.jsonl").read_text().splitlines()
                   if json.loads(x)["split"] == "train"]
    assert max(train_steps) == 2


def test_early_stopping_turns_on_from_the_command_line(tiny_model_dir, hh_file, tmp_path, capsys):
    path = write_config(tmp_path, tiny_model_dir("llama"), hh_file, max_steps=4, eval_every=2)
    assert main(["train", str(path), "--train.early_stopping.patience", "3"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    early = summary["early_stopping"]
    assert (early["metric"], early["mode"], early["patience"]) == ("accuracy", "max", 3)
    assert early["evaluations"] == 2 and early["best_step"] in (2, 4)


@pytest.mark.parametrize("train,data_eval,message", [
    ({"early_stopping": {}}, True, "needs train.eval_every"),
    ({"early_stopping": {}, "eval_every": 1}, False, "needs data.eval"),
    ({"early_stopping": {"patience": 0}, "eval_every": 1}, True, "train.early_stopping.patience: must be >= 1"),
    ({"early_stopping": {"metric": "nonsense"}, "eval_every": 1}, True, "'nonsense' is not an evaluation metric"),
])
def test_early_stopping_settings_that_cannot_work_fail_naming_the_setting(train, data_eval, message, tiny_model_dir,
                                                                         hh_file, tmp_path):
    cfg = {"model": {"name": str(tiny_model_dir("llama"))},
           "data": {"train": str(hh_file), **({"eval": str(hh_file)} if data_eval else {}), "max_length": 64},
           "train": {"max_steps": 2, "tensorboard": False, **train}, "output_dir": str(tmp_path / "run")}
    with pytest.raises(ConfigError, match=message):
        rewardkit.train(cfg)
    assert not (tmp_path / "run" / "model").exists()  # nothing trained or saved


def test_the_default_metric_is_the_tasks_and_losses_are_minimised():
    def task(cls):
        return cls.__new__(cls)  # the class attributes are all selection_metric needs

    auto = EarlyStoppingConfig()
    assert selection_metric(auto, task(PairTask)) == ("accuracy", "max")
    assert selection_metric(auto, task(RankedTask)) == ("pair_accuracy", "max")
    assert selection_metric(auto, task(BinaryTask)) == ("auc", "max")
    assert selection_metric(auto, task(ScalarTask)) == ("pearson", "max")
    assert selection_metric(EarlyStoppingConfig(metric="loss"), task(ScalarTask)) == ("loss", "min")
    assert selection_metric(EarlyStoppingConfig(metric="rmse", mode="max"), task(ScalarTask)) == ("rmse", "max")


def test_ties_keep_the_earlier_step_and_min_delta_sets_what_counts_as_better():
    model = torch.nn.Linear(1, 1)
    es = EarlyStopping("accuracy", "max", patience=2, min_delta=0.01)
    assert not es.update(1, {"accuracy": 0.5}, model)
    assert not es.update(2, {"accuracy": 0.5}, model)  # a tie: the earlier step stays best
    assert es.update(3, {"accuracy": 0.505}, model)  # within min_delta: not better; 2 evaluations since the best
    assert es.best_step == 1 and es.stopped_at == 3


def test_resuming_keeps_the_best_weights_found_before_the_checkpoint(tiny_model_dir, hh_file, tmp_path):
    """The best step (1) comes before the checkpoint (2): a run resumed from that checkpoint must still save
    step 1's weights, which only the checkpoint's copy of the best weights holds."""
    import shutil

    cfg = _cfg(tmp_path, tiny_model_dir("llama"), hh_file, {"metric": "loss", "mode": "max"}, save_every=2,
               max_steps=4)
    first = rewardkit.train(cfg)
    run = first.output_dir
    assert first.metrics["early_stopping"]["best_step"] == 1
    want = load_file(str(run / "model" / "model.safetensors"))
    shutil.rmtree(run / "model")
    (run / "summary.json").unlink()
    resumed = rewardkit.train(cfg, resume=True)
    assert resumed.metrics["early_stopping"]["best_step"] == 1
    got = load_file(str(run / "model" / "model.safetensors"))
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0)
