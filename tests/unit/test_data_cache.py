"""The tokenized cache (data/cache.py), chunked tokenization in N processes (data/parallel.py), mixtures."""

import json
import os

import numpy as np
import pytest

from rewardkit.config import ConfigError, load_config
from rewardkit.data import cache as cache_mod
from rewardkit.data import parallel
from rewardkit.data.cache import cache_key, load_tokenized, task_identity
from rewardkit.data.dataset import encode_pairs, load_pairs
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.mixture import mixture_index, mixture_plan
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import SequenceEncoder
from rewardkit.training.tasks import make_task

from ..conftest import HH_SAMPLE, load_test_tokenizer


def write_pairs(path, n, bad_every=0):
    lines = []
    for i in range(n):
        r = dict(HH_SAMPLE[i % len(HH_SAMPLE)])
        r["chosen"] += f" ({i})"  # unique pairs
        if bad_every and i % bad_every == 3:
            r["chosen"] = "  "  # invalid: an empty response
        lines.append(json.dumps(r))
    path.write_text("\n".join(lines) + "\n")
    return path


def setup(tokenizer_dirs, tmp_path, data_file, tok="gpt2", **data):
    cfg = load_config(None, None, base={"model": {"name": "x"},
                                        "data": {"train": str(data_file), "max_length": 24, "on_invalid": "skip",
                                                 "cache_dir": str(tmp_path / "cache"), **data}})
    tokenizer = load_test_tokenizer(tokenizer_dirs, tok)
    renderer = Renderer(tokenizer, "decoder", cfg.data.template, cfg.data.separator)
    encoder = SequenceEncoder(tokenizer, "decoder", cfg.data.max_length, cfg.data.truncation)
    return cfg, make_task(cfg), renderer, encoder


def load(cfg, task, renderer, encoder, report=None):
    return load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, report, progress=False)


def test_cached_items_equal_direct_encoding_and_second_load_is_a_hit(tokenizer_dirs, tmp_path):
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, write_pairs(tmp_path / "d.jsonl", 40, 10))
    first_report = SkipReport()
    first = load(cfg, task, renderer, encoder, first_report)
    direct_encoder = SequenceEncoder(encoder.tokenizer, "decoder", 24)
    direct = encode_pairs(load_pairs(cfg.data.train, cfg.data, SkipReport()), renderer, direct_encoder)
    assert list(first) == direct and first[7] == direct[7] and first[-1] == direct[-1]
    assert first.lengths.tolist() == [task.length(p) for p in direct]
    assert first.truncation == direct_encoder.stats.summary() and first.truncation["prompt_truncated"] > 0
    assert first.meta["cached"] is False
    second_report = SkipReport()
    second = load(cfg, task, renderer, encoder, second_report)
    assert second.meta["cached"] is True and second.path == first.path
    assert list(second) == direct
    # skipped records are reported on a cache hit too
    assert second_report.summary() == first_report.summary() and second_report.skipped["empty_response"] == 4


def test_cache_key_changes_with_content_settings_tokenizer_and_version(tokenizer_dirs, tmp_path, monkeypatch):
    data = write_pairs(tmp_path / "d.jsonl", 12)
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, data)
    base = cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder)
    assert base == cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder)
    # a touched file (same bytes, new mtime) keeps its key; a copy under another name gets its own (its items
    # name their records by the copy's path)
    os.utime(data, (1, 1))
    assert cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder) == base
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(data.read_bytes())
    cfg_copy, *_ = setup(tokenizer_dirs, tmp_path, copy)
    keys = {base, cache_key(cfg_copy.data.train, cfg.data, task_identity(task), renderer, encoder)}
    assert load(cfg_copy, task, renderer, encoder)[0].where.startswith(str(copy))
    # one character of the file
    copy.write_text(data.read_text().replace("(3)", "(x)"))
    keys.add(cache_key(cfg_copy.data.train, cfg.data, task_identity(task), renderer, encoder))
    # rendering and tokenization settings
    for over in ({"max_length": 32}, {"truncation": "drop"}, {"template": "plain"}, {"separator": " "},
                 {"on_invalid": "error"}, {"fields": {"chosen": "chosen", "rejected": "rejected", "id": "uid"}},
                 {"train": {"path": str(data), "stop": 5}}):
        c, t, r, e = setup(tokenizer_dirs, tmp_path, data, **over)
        keys.add(cache_key(c.data.train, c.data, task_identity(t), r, e))
    c, t, r, e = setup(tokenizer_dirs, tmp_path, data, tok="qwen2")
    keys.add(cache_key(c.data.train, c.data, task_identity(t), r, e))
    monkeypatch.setattr(cache_mod, "__version__", "999.0")
    keys.add(cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder))
    assert len(keys) == 2 + 1 + 7 + 1 + 1


def test_changed_file_is_tokenized_again_not_served_stale(tokenizer_dirs, tmp_path):
    data = write_pairs(tmp_path / "d.jsonl", 12)
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, data)
    old = load(cfg, task, renderer, encoder)
    write_pairs(data, 9)
    new = load(cfg, task, renderer, encoder)
    assert new.meta["cached"] is False and len(new) == 9 and len(old) == 12
    assert new.path != old.path


def test_cache_off_leaves_no_entry_and_gives_the_same_items(tokenizer_dirs, tmp_path):
    data = write_pairs(tmp_path / "d.jsonl", 12)
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, data, cache=False)
    items = list(load(cfg, task, renderer, encoder))
    assert not (tmp_path / "cache").exists()
    cfg_on, *_ = setup(tokenizer_dirs, tmp_path, data)
    assert items == list(load(cfg_on, task, renderer, encoder))


@pytest.mark.parametrize("fmt", ["pairs", "ranked"])
def test_one_and_two_processes_give_identical_items_and_counts(tokenizer_dirs, tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(parallel, "CHUNK", 16)  # several chunks per worker
    if fmt == "pairs":
        data, loss = write_pairs(tmp_path / "d.jsonl", 150, bad_every=13), "bradley_terry"
    else:
        rows = [{"prompt": f"question {i} " * (i % 9), "responses": [f"a{i}", f"b {i} " * (i % 7), "c"],
                 "ranks": [0, 1, 1]} for i in range(100)]
        data, loss = tmp_path / "r.jsonl", "ranking"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    results = []
    for n in (1, 2):
        cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, data, num_proc=n, cache=False)
        cfg.loss.name = loss
        task = make_task(cfg)
        report = SkipReport()
        ts = load(cfg, task, renderer, encoder, report)
        results.append((list(ts), ts.truncation, report.summary()))
    assert results[0] == results[1]
    assert len(results[0][0]) > 80 and results[0][1]["prompt_truncated"] > 0
    assert fmt == "ranked" or results[0][2]["by_reason"] == {"empty_response": 12}


def test_invalid_record_in_a_worker_stops_with_file_line_and_field(tokenizer_dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(parallel, "CHUNK", 8)
    data = write_pairs(tmp_path / "d.jsonl", 40, bad_every=30)
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, data, num_proc=2, on_invalid="error")
    with pytest.raises(DataError, match=r"d\.jsonl:4: field 'chosen'"):
        load(cfg, task, renderer, encoder)
    assert not any((tmp_path / "cache").glob("*/meta.json"))  # no entry from a failed build


def test_weights_set_each_sources_share_and_counts_are_exact():
    plan = mixture_plan([1000, 200, 50], [0.7, 0.3, None], [None, None, None])
    assert plan == [840, 360, 50]  # the weighted pool (1200) split 0.7 / 0.3; the unweighted source once
    assert mixture_plan([10, 20], [None, None], [25, None]) == [25, 20]
    idx = mixture_index([1000, 200, 50], plan, seed=3)
    share = np.bincount(idx[:, 0]) / len(idx)
    assert np.allclose(share[:2] / share[:2].sum(), [0.7, 0.3], atol=1e-3)
    # a source drawn more often than it holds repeats only after every example was drawn
    rows = idx[idx[:, 0] == 1, 1]
    assert len(set(rows[:200].tolist())) == 200 and len(set(rows.tolist())) == 200
    assert (mixture_index([1000, 200, 50], plan, seed=3) == idx).all()


@pytest.mark.parametrize("bad,match", [({"weight": -1}, r"data\.train\[1\]\.weight"),
                                       ({"count": 0}, r"data\.train\[1\]\.count"),
                                       ({"weight": 1, "count": 3}, "not both")])
def test_bad_mixture_settings_name_the_key(bad, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, None, base={"model": {"name": "x"},
                                      "data": {"train": [{"path": "a.jsonl"}, {"path": "b.jsonl", **bad}]}})


def test_num_proc_out_of_range_names_the_key():
    with pytest.raises(ConfigError, match="data.num_proc"):
        load_config(None, ["--data.num_proc", "0"], base={"model": {"name": "x"}, "data": {"train": "a.jsonl"}})
