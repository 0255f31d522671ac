"""Hugging Face `datasets` sources (data/hf_datasets.py): save_to_disk and Hub-layout directories, offline.

The Hub itself cannot be reached here: the `hf://datasets/OWNER/NAME` path is checked up to
`datasets.load_dataset_builder` (its arguments, the split chosen, the commit keyed), with the builder of a local
Hub-layout directory standing in for the Hub's.
"""

import json

import pytest

from rewardkit.config import ConfigError, load_config
from rewardkit.data import cache as cache_mod
from rewardkit.data import hf_datasets
from rewardkit.data.cache import cache_key, load_tokenized, task_identity
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.examples import load_examples
from rewardkit.data.readers import read_records
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import SequenceEncoder
from rewardkit.training.tasks import make_task

from ..conftest import load_test_tokenizer, unique_hh_pairs

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def hub_layout(root, splits: dict, shards: int = 1):
    """A directory as the Hub lays out a parquet dataset: data/{split}-0000k-of-0000n.parquet."""
    import datasets

    (root / "data").mkdir(parents=True)
    for name, rs in splits.items():
        step = -(-len(rs) // shards)
        for k in range(shards):
            datasets.Dataset.from_list(rs[k * step:(k + 1) * step]).to_parquet(
                str(root / "data" / f"{name}-{k:05d}-of-{shards:05d}.parquet"))
    return root


def saved_dict(root, splits: dict):
    import datasets

    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(str(root))
    return root


def test_saved_and_hub_layout_directories_read_the_records_of_the_split_named_by_row(tmp_path):
    train, test = unique_hh_pairs(6), unique_hh_pairs(3, "e")
    for d in (saved_dict(tmp_path / "saved", {"train": train, "test": test}),
              hub_layout(tmp_path / "hub", {"train": train, "test": test})):
        got = list(read_records(str(d), options=hf_datasets.DatasetsOptions(split="test")))
        assert [r.data for r in got] == test
        assert [r.where for r in got] == [f"{d}[test]:row {i}" for i in (1, 2, 3)]
        assert [r.line for r in got] == [1, 2, 3]  # still numbers: row ranges and ids use them


def test_a_missing_split_names_the_available_ones_and_several_need_a_choice(tmp_path):
    for d in (saved_dict(tmp_path / "saved", {"train": unique_hh_pairs(2), "test": unique_hh_pairs(2)}),
              hub_layout(tmp_path / "hub", {"train": unique_hh_pairs(2), "test": unique_hh_pairs(2)})):
        with pytest.raises(DataError, match=r"no split 'validation'; the available splits are: (train, test|test, "
                                             r"train)") as e:
            list(read_records(str(d), options=hf_datasets.DatasetsOptions(split="validation")))
        assert e.value.reason == "missing_split" and e.value.source == str(d)
        with pytest.raises(DataError, match=r"holds several splits .*name one with `split:`"):
            list(read_records(str(d)))


def test_a_bad_record_names_source_split_row_and_field(tmp_path):
    bad = unique_hh_pairs(4)
    bad[2]["chosen"] = "   "
    d = hub_layout(tmp_path / "hub", {"train": bad})
    cfg = load_config(None, None, base={"model": {"name": "x"}, "data": {"train": {"path": str(d), "split": "train"},
                                                                        "format": "pairs"}})
    with pytest.raises(DataError, match=rf"{d}\[train\]:row 3: field 'chosen': ") as e:
        load_examples(cfg.data.train, cfg.data)
    assert e.value.reason == "empty_response"
    skip = load_config(None, None, base={"model": {"name": "x"}, "data": {
        "train": {"path": str(d), "split": "train"}, "on_invalid": "skip", "format": "pairs"}})
    report = SkipReport()
    assert len(load_examples(skip.data.train, skip.data, report)) == 3 and report.skipped["empty_response"] == 1


def test_a_repeated_id_names_the_first_row(tmp_path):
    rs = [dict(r, id=f"x{i % 2}") for i, r in enumerate(unique_hh_pairs(3))]
    d = hub_layout(tmp_path / "hub", {"train": rs})
    cfg = load_config(None, None, base={"model": {"name": "x"}, "data": {"train": {"path": str(d)}}})
    with pytest.raises(DataError, match=r"\[train\]:row 3: field 'id': duplicated id 'x0', first on row 1;"):
        load_examples(cfg.data.train, cfg.data)


def test_records_stream_shard_by_shard(tmp_path):
    """The first record comes before a later shard is read: a broken second shard stops the run only when it
    is reached, naming the row where reading stopped."""
    d = hub_layout(tmp_path / "hub", {"train": unique_hh_pairs(8)}, shards=2)
    (d / "data" / "train-00001-of-00002.parquet").write_bytes(b"PAR1 not parquet at all PAR1")
    records = read_records(str(d))
    first = next(records)
    assert first.where == f"{d}[train]:row 1"
    with pytest.raises(DataError, match=r"\[train\]:row 5: datasets could not read it") as e:
        list(records)
    assert e.value.reason == "unreadable_dataset"


def test_datasets_options_on_a_file_fail_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"data.train.split: applies to a datasets source"):
        load_config(None, None, base={"model": {"name": "x"}, "data": {"train": {"path": "a.jsonl", "split": "x"}}})
    with pytest.raises(ConfigError, match=r"data.eval\[1\].revision: applies to a Hub dataset"):
        load_config(None, None, base={"model": {"name": "x"}, "data": {
            "train": "a.jsonl", "eval": [{"path": "b.jsonl"}, {"path": "some_dir", "revision": "main"}]}})
    d = saved_dict(tmp_path / "saved", {"train": unique_hh_pairs(2)})
    with pytest.raises(DataError, match=r"`subset` does not apply to a save_to_disk directory"):
        list(read_records(str(d), options=hf_datasets.DatasetsOptions(subset="x")))


def test_hub_paths_are_parsed_strictly():
    assert hf_datasets.hub_repo("hf://datasets/Anthropic/hh-rlhf") == "Anthropic/hh-rlhf"
    assert hf_datasets.hub_repo("hf://Anthropic/hh-rlhf") == "Anthropic/hh-rlhf"
    assert hf_datasets.hub_repo("data/train.jsonl") is None
    for bad in ("hf://datasets/Anthropic", "hf://datasets/A/b/data", "hf://datasets/A/b@main"):
        with pytest.raises(DataError, match="hf://datasets/OWNER/NAME"):
            hf_datasets.hub_repo(bad)


class _HubStandIn:
    """``datasets.load_dataset_builder`` for a hub id, answered by local Hub-layout directories: ``branches`` maps
    a revision to the commits it resolves to on successive calls (a branch that moves), ``trees`` a commit to
    the directory holding its files. The calls are recorded."""

    def __init__(self, branches: dict, trees: dict):
        import datasets

        self.real, self.branches, self.trees, self.calls = datasets.load_dataset_builder, branches, trees, []

    def __call__(self, path, name=None, **kw):
        self.calls.append((path, name, kw))
        rev = kw.get("revision")
        commit = rev if rev in self.trees else (self.branches[rev].pop(0) if len(self.branches[rev]) > 1
                                                else self.branches[rev][0])
        builder = self.real(str(self.trees[commit] if commit else self.trees[None]), name, data_dir=kw.get("data_dir"))
        builder.hash = commit
        return builder


def setup(tokenizer_dirs, tmp_path, train):
    cfg = load_config(None, None, base={"model": {"name": "x"}, "data": {
        "train": train, "max_length": 32, "cache_dir": str(tmp_path / "cache"), "num_proc": 1}})
    tokenizer = load_test_tokenizer(tokenizer_dirs, "gpt2")
    renderer = Renderer(tokenizer, "decoder", cfg.data.template, cfg.data.separator)
    encoder = SequenceEncoder(tokenizer, "decoder", cfg.data.max_length, cfg.data.truncation)
    return cfg, make_task(cfg), renderer, encoder


def test_a_hub_dataset_resolves_through_load_dataset_builder_and_is_keyed_by_its_commit(tokenizer_dirs, tmp_path,
                                                                                        monkeypatch, caplog):
    import datasets

    a, b = "a" * 40, "b" * 40
    trees = {a: hub_layout(tmp_path / "at-a", {"train": unique_hh_pairs(6, "A"), "test": unique_hh_pairs(2)}),
             b: hub_layout(tmp_path / "at-b", {"train": unique_hh_pairs(5, "B")})}
    trees[None] = trees[a]
    # "main" is at commit a when first asked, then moves to b; "v1" is a tag on a; no commit is known for None
    stand_in = _HubStandIn({"main": [a, b], "v1": [a], None: [None]}, trees)
    monkeypatch.setattr(datasets, "load_dataset_builder", stand_in)
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, {
        "path": "hf://datasets/Org/prefs", "split": "train", "revision": "main"})
    first = load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False)
    # read at the commit the key names, though the branch moved after it was resolved
    assert len(first) == 6 and first[0].where == "hf://datasets/Org/prefs[train]:row 1"
    assert stand_in.calls[0] == ("Org/prefs", None, {"data_dir": None, "revision": "main"})
    assert [c[2]["revision"] for c in stand_in.calls[1:]] == [a]  # the read, pinned to the resolved commit
    assert first.meta["cached"] is False
    moved = load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False)
    assert len(moved) == 5 and moved.meta["cached"] is False  # main is at b now: a new entry
    tag = setup(tokenizer_dirs, tmp_path, {"path": "hf://datasets/Org/prefs", "split": "train", "revision": "v1"})
    at_a = load_tokenized(tag[0].data.train, tag[0].data, *tag[1:], progress=False)
    assert at_a.meta["cached"] is True and list(at_a) == list(first)  # the same commit: the same entry
    keys = {rev: cache_key(setup(tokenizer_dirs, tmp_path, {"path": "hf://Org/prefs", "split": "train",
                                                             "revision": rev})[0].data.train, cfg.data,
                           task_identity(task), renderer, encoder) for rev in (a, b)}
    assert keys[a] != keys[b] and None not in keys.values()
    # no commit known: the split is read and tokenized, but never cached, and the log says why
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, {"path": "hf://Org/prefs", "split": "train"})
    with caplog.at_level("WARNING", logger=cache_mod.__name__):
        items = load_tokenized(cfg.data.train, cfg.data, task, renderer, encoder, progress=False)
    assert len(items) == 6 and items.meta.get("cached") is not True
    assert "not cached: datasets gave no commit" in caplog.text
    assert not (tmp_path / "cache" / "uncached").exists()


def test_a_local_directory_is_keyed_by_its_files_content(tokenizer_dirs, tmp_path):
    d = hub_layout(tmp_path / "hub", {"train": unique_hh_pairs(4)})
    cfg, task, renderer, encoder = setup(tokenizer_dirs, tmp_path, {"path": str(d), "split": "train"})
    first = cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder)
    assert cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder) == first
    import datasets

    datasets.Dataset.from_list(unique_hh_pairs(4, "changed")).to_parquet(str(d / "data" / "train-00000-of-00001.parquet"))
    assert cache_key(cfg.data.train, cfg.data, task_identity(task), renderer, encoder) != first
    other = json.loads(json.dumps({"path": str(d), "split": "train", "data_dir": "data"}))
    cfg2, *_ = setup(tokenizer_dirs, tmp_path, other)
    assert cache_key(cfg2.data.train, cfg2.data, task_identity(task), renderer, encoder) != first


def test_a_jsonl_directory_streams_and_a_column_missing_on_a_line_is_a_missing_field(tmp_path):
    d = tmp_path / "lines"
    d.mkdir()
    (d / "train.jsonl").write_text('{"chosen": "a", "rejected": "b"}\n{"chosen": "c"}\n')
    assert [r.where for r in read_records(str(d))] == [f"{d}[train]:row 1", f"{d}[train]:row 2"]
    cfg = load_config(None, None, base={"model": {"name": "x"}, "data": {"train": str(d)}})
    with pytest.raises(DataError, match=rf"{d}\[train\]:row 2: field 'rejected': missing"):
        load_examples(cfg.data.train, cfg.data)
