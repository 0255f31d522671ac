"""`rewardkit train` with a weighted mixture of training sources and several named eval sets (issue 21)."""

import json

import yaml

from rewardkit.cli import main

from ..conftest import HH_SAMPLE


def write(path, n, tag):
    rows = []
    for i in range(n):
        r = dict(HH_SAMPLE[i % len(HH_SAMPLE)])
        r["chosen"] += f" [{tag} {i}]"
        rows.append(json.dumps(r))
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_mixture_and_named_eval_sets_are_reported_apart(tiny_model_dir, tmp_path, capsys):
    a, b = write(tmp_path / "big.jsonl", 60, "a"), write(tmp_path / "small.jsonl", 20, "b")
    ev1, ev2 = write(tmp_path / "dev_a.jsonl", 8, "x"), write(tmp_path / "dev_b.jsonl", 12, "y")
    cfg = {"model": {"name": str(tiny_model_dir("llama"))},
           "data": {"train": [{"path": a, "weight": 0.25}, {"path": b, "name": "small", "weight": 0.75},
                              {"path": ev1, "count": 5}],
                    "eval": [{"path": ev1, "name": "dev_a"}, {"path": ev2, "name": "dev_b"}],
                    "max_length": 64, "num_proc": 1},
           "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 4, "eval_every": 2, "log_every": 1,
                     "tensorboard": False, "early_stopping": {"eval_set": "dev_b", "metric": "loss"}},
           "output_dir": str(tmp_path / "run")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    sources = {s["name"]: s for s in summary["data"]["sources"]}
    # the weighted pool (60 + 20 = 80 examples) split 0.25 / 0.75; the counted source adds exactly 5
    assert sources["big"]["used"] == 20 and sources["small"]["used"] == 60 and sources["dev_a"]["used"] == 5
    assert sources["big"]["examples"] == 60 and sources["small"]["skipped"] == 0
    assert summary["data"]["train_pairs"] == 85
    assert set(summary["data"]["eval_sets"]) == {"dev_a", "dev_b"}
    assert summary["data"]["eval_sets"]["dev_b"]["examples"] == 12
    # each set's final metrics apart; the run's "eval" is the driving set's (dev_b)
    assert summary["eval"]["sets"]["dev_a"]["pairs"] == 8 and summary["eval"]["sets"]["dev_b"]["pairs"] == 12
    assert summary["eval"]["pairs"] == 12 and summary["data"]["eval_pairs"] == 12
    assert summary["early_stopping"]["metric"] == "loss"
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    splits = {x["split"] for x in lines}
    assert {"eval", "eval/dev_a", "eval/dev_b", "eval_zero_shot/dev_a"} <= splits
    at2 = {x["split"]: x for x in lines if x["step"] == 2}
    assert at2["eval"]["loss"] == at2["eval/dev_b"]["loss"] != at2["eval/dev_a"]["loss"]


def test_second_run_reads_the_tokenized_cache(tiny_model_dir, tmp_path):
    data = write(tmp_path / "d.jsonl", 24, "c")
    runs = []
    for k in range(2):
        cfg = {"model": {"name": str(tiny_model_dir("llama"))},
               "data": {"train": data, "eval": data, "max_length": 64, "cache_dir": str(tmp_path / "cache")},
               "train": {"batch_size": 4, "max_steps": 2, "tensorboard": False, "eval_zero_shot": False},
               "output_dir": str(tmp_path / f"run{k}")}
        path = tmp_path / f"cfg{k}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        assert main(["train", str(path)]) == 0
        runs.append(json.loads((tmp_path / f"run{k}" / "summary.json").read_text()))
    assert runs[0]["data"]["sources"][0]["cached"] is False and runs[1]["data"]["sources"][0]["cached"] is True
    assert runs[0]["eval"]["loss"] == runs[1]["eval"]["loss"]  # the same items, the same run
    assert runs[0]["data"]["train_truncation"] == runs[1]["data"]["train_truncation"]


def test_eval_command_tokenizes_once_and_reuses_the_cache(tiny_model_dir, tmp_path, monkeypatch, capsys):
    data = write(tmp_path / "d.jsonl", 16, "e")
    cfg = {"model": {"name": str(tiny_model_dir("llama"))}, "data": {"train": data, "max_length": 64},
           "train": {"batch_size": 4, "max_steps": 1, "tensorboard": False}, "output_dir": str(tmp_path / "run")}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    cache = tmp_path / "eval-cache"
    monkeypatch.setenv("REWARDKIT_CACHE_DIR", str(cache))
    outs = []
    for _ in range(2):
        capsys.readouterr()
        assert main(["eval", str(tmp_path / "run" / "model"), data, "--json", "--bootstrap", "10"]) == 0
        outs.append(json.loads(capsys.readouterr().out))
        assert len(list(cache.glob("*/meta.json"))) == 1  # one entry, written by the first call, read by the second
    assert outs[0]["accuracy"] == outs[1]["accuracy"] and outs[0]["truncation"] == outs[1]["truncation"]
    assert outs[1]["truncation"]["sequences"] == 32
    # `rewardkit score` reuses its own entry: the same rewards and counts, one more entry
    outputs = []
    for k in range(2):
        out = tmp_path / f"scored{k}.jsonl"
        assert main(["score", str(tmp_path / "run" / "model"), data, "-o", str(out)]) == 0
        outputs.append([json.loads(x) for x in out.read_text().splitlines()])
        assert len(list(cache.glob("*/meta.json"))) == 2
    assert outputs[0] == outputs[1] and outputs[0][3]["reward_chosen"] is not None
