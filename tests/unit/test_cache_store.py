"""Cache size management (data/cache_store.py, `rewardkit cache list|clear`, `data.cache_max_gb`): least recently
used first, and never an entry that a process is reading."""

import gc
import json
import os
import time

import pytest

from rewardkit.cli import main
from rewardkit.data import cache_store
from rewardkit.data.cache import load_tokenized

from .test_data_cache import setup, write_pairs


def _build(tokenizer_dirs, tmp_path, name, n=12, **data):
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, write_pairs(tmp_path / name, n), **data)
    return load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False), (cfg, task, renderer,
                                                                                               encoder)


def _age(entry_path, days):
    t = time.time() - days * 86400
    os.utime(entry_path / cache_store.LAST_USED, (t, t))


def test_list_gives_size_source_and_least_recently_used_first(tokenizer_dirs, tmp_path, capsys):
    a, _ = _build(tokenizer_dirs, tmp_path, "a.jsonl")
    b, args_b = _build(tokenizer_dirs, tmp_path, "b.jsonl")
    _age(a.path, 2)
    _age(b.path, 3)
    cache = tmp_path / "cache"
    assert [e.key for e in cache_store.entries(cache)] == [b.path.name, a.path.name]
    # a cache hit counts as a use: b becomes the most recently used
    cfg, task, renderer, encoder = args_b
    assert load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False).meta["cached"]
    found = cache_store.entries(cache)
    assert [e.key for e in found] == [a.path.name, b.path.name]
    assert all(e.bytes > 1000 and e.in_use for e in found)  # both sets are alive in this test
    assert found[0].source.endswith("a.jsonl")
    capsys.readouterr()
    assert main(["cache", "list", "--cache-dir", str(cache), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["key"] for r in listed["entries"]] == [a.path.name, b.path.name]
    assert listed["total_mb"] == pytest.approx(sum(e.bytes for e in found) / 1e6, abs=1e-3)


def test_clear_never_removes_an_entry_in_use(tokenizer_dirs, tmp_path, capsys):
    a, _ = _build(tokenizer_dirs, tmp_path, "a.jsonl")
    b, args_b = _build(tokenizer_dirs, tmp_path, "b.jsonl")
    a_path, b_path = a.path, b.path
    items_b = list(b)
    del a
    gc.collect()  # a's reader is gone; b is still being read
    cache = tmp_path / "cache"
    capsys.readouterr()
    assert main(["cache", "clear", "--all", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "removed 1 entries" in out and "1 in use, kept" in out
    assert not a_path.exists() and b_path.exists()
    assert list(b) == items_b  # still readable
    del b
    gc.collect()
    assert main(["cache", "clear", "--all", "--cache-dir", str(cache)]) == 0
    assert not b_path.exists() and cache_store.entries(cache) == []
    # a removed entry is built again, with the same items
    cfg, task, renderer, encoder = args_b
    again = load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False)
    assert again.meta["cached"] is False and list(again) == items_b


def test_clear_older_than_removes_only_entries_unused_for_that_long(tokenizer_dirs, tmp_path):
    a, _ = _build(tokenizer_dirs, tmp_path, "a.jsonl")
    b, _ = _build(tokenizer_dirs, tmp_path, "b.jsonl")
    a_path, b_path = a.path, b.path
    del a, b
    gc.collect()
    _age(a_path, 10)
    _age(b_path, 1)
    assert main(["cache", "clear", "--older-than", "7", "--cache-dir", str(tmp_path / "cache")]) == 0
    assert not a_path.exists() and b_path.exists()


def test_cache_max_gb_evicts_least_recently_used_entries_not_in_use(tokenizer_dirs, tmp_path):
    a, _ = _build(tokenizer_dirs, tmp_path, "a.jsonl")
    b, _ = _build(tokenizer_dirs, tmp_path, "b.jsonl")
    a_path, b_path = a.path, b.path
    one = cache_store.entries(tmp_path / "cache")[0].bytes
    del a
    gc.collect()
    _age(a_path, 2)
    _age(b_path, 1)  # b is older than the new entry but newer than a; b is still read
    limit_gb = 2.5 * one / 2**30  # room for two entries, not three
    c, _ = _build(tokenizer_dirs, tmp_path, "c.jsonl", cache_max_gb=limit_gb)
    assert not a_path.exists() and b_path.exists() and c.path.exists()
    del b
    gc.collect()
    d, _ = _build(tokenizer_dirs, tmp_path, "d.jsonl", cache_max_gb=limit_gb)
    assert not b_path.exists() and c.path.exists() and d.path.exists()  # b (not in use any more) was the oldest


def test_cache_clear_says_what_to_remove_and_refuses_bad_values(tmp_path, capsys):
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 2
    assert "--all, --older-than DAYS or --max-gb SIZE" in capsys.readouterr().err
    assert main(["cache", "clear", "--max-gb", "-1", "--cache-dir", str(tmp_path)]) == 2
    assert "--max-gb -1.0 must be >= 0" in capsys.readouterr().err


def test_cache_max_gb_out_of_range_names_the_key(tokenizer_dirs, tmp_path):
    from rewardkit.config import ConfigError

    with pytest.raises(ConfigError, match="data.cache_max_gb"):
        setup(tokenizer_dirs, tmp_path, write_pairs(tmp_path / "a.jsonl", 4), cache_max_gb=0)
