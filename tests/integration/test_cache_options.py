"""`rewardkit eval` and `rewardkit score` honour `--data.cache` and `--data.cache_dir`, and their entries are
invalidated by a changed file, tokenizer or tokenization setting (docs/data.md: how the cache is keyed)."""

import json

import pytest
import yaml

from rewardkit.cli import main

from .test_data_mixture import write


def _entries(d):
    return sorted(p.parent.name for p in d.glob("*/meta.json")) if d.exists() else []


@pytest.fixture
def trained(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cache-opts")
    data = write(tmp / "train.jsonl", 16, "t")
    cfg = {"model": {"name": str(tiny_model_dir("llama"))}, "data": {"train": data, "max_length": 64},
           "train": {"batch_size": 4, "max_steps": 1, "tensorboard": False}, "output_dir": str(tmp / "run")}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp / "cfg.yaml")]) == 0
    return tmp / "run" / "model"


def _eval(model, data, capsys, *extra):
    capsys.readouterr()
    assert main(["eval", str(model), data, "--json", "--bootstrap", "10", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _score(model, data, out, *extra):
    assert main(["score", str(model), data, "-o", str(out), "--overwrite", *extra]) == 0
    return [json.loads(x) for x in out.read_text().splitlines()]


def test_cache_off_writes_no_entry_and_cache_dir_moves_it(trained, tmp_path, monkeypatch, capsys):
    default = tmp_path / "default-cache"
    monkeypatch.setenv("REWARDKIT_CACHE_DIR", str(default))
    data = write(tmp_path / "d.jsonl", 12, "o")
    off = _eval(trained, data, capsys, "--data.cache", "false")
    scored_off = _score(trained, data, tmp_path / "s.jsonl", "--data.cache", "false")
    assert _entries(default) == []
    mine = tmp_path / "my-cache"
    on = _eval(trained, data, capsys, "--data.cache_dir", str(mine))
    scored_on = _score(trained, data, tmp_path / "s.jsonl", "--data.cache_dir", str(mine))
    assert _entries(default) == [] and len(_entries(mine)) == 2  # one for eval's pairs, one for score's sequences
    again = _eval(trained, data, capsys, "--data.cache_dir", str(mine))
    assert _score(trained, data, tmp_path / "s.jsonl", "--data.cache_dir", str(mine)) == scored_on == scored_off
    assert len(_entries(mine)) == 2  # both read back, nothing new
    for key in ("accuracy", "truncation", "mean_margin"):
        assert off[key] == on[key] == again[key]


def test_changed_file_tokenizer_or_setting_is_tokenized_again(trained, tiny_model_dir, tmp_path, monkeypatch,
                                                              capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("REWARDKIT_CACHE_DIR", str(cache))
    path = tmp_path / "d.jsonl"
    data = write(path, 12, "v")
    first = _eval(trained, data, capsys)
    assert len(_entries(cache)) == 1
    assert _eval(trained, data, capsys) == first and len(_entries(cache)) == 1
    # the file's content changes (same name): a new entry, and the metrics are the new file's
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["chosen"], rows[0]["rejected"] = rows[0]["rejected"], rows[0]["chosen"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    edited = _eval(trained, data, capsys)
    assert len(_entries(cache)) == 2
    assert edited == _eval(trained, data, capsys, "--data.cache", "false")
    assert edited["mean_margin"] != first["mean_margin"]
    # a tokenization setting of the model (its max_length) changes: a new entry with other truncation counts
    meta_path = trained / "rewardkit.json"
    meta = json.loads(meta_path.read_text())
    assert meta["max_length"] == 64
    meta["max_length"] = 24
    meta_path.write_text(json.dumps(meta))
    short = _eval(trained, data, capsys)
    assert len(_entries(cache)) == 3 and short["truncation"] != edited["truncation"]
    # another tokenizer (a model with the Qwen2 vocabulary): a new entry
    _eval(tiny_model_dir("qwen2"), data, capsys)
    assert len(_entries(cache)) == 4
    # score: its own keys, also by the file's content
    s1 = _score(trained, data, tmp_path / "s.jsonl")
    rows[1]["chosen"] += " (edited)"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s2 = _score(trained, data, tmp_path / "s.jsonl")
    assert len(_entries(cache)) == 6 and s1[1] != s2[1] and s1[2] == s2[2]
