"""`rewardkit train` from Hugging Face `datasets` sources (issue 21), offline: a save_to_disk directory and a
Hub-layout parquet directory give the examples (token ids, response starts, score indices) and the training
run that the same records written as JSONL give."""

import json

import pyarrow as pa
import pytest
import yaml

from rewardkit.cli import main

from ..conftest import unique_hh_pairs

pytestmark = pytest.mark.usefixtures("offline")
COLUMNS = ("kind", "length", "ids", "start", "score", "prompt", "extra")


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def train(tmp_path, model, source, name, **data):
    cfg = {"model": {"name": str(model)},
           "data": {"train": source, "max_length": 64, "num_proc": 1, "cache_dir": str(tmp_path / f"cache-{name}"),
                    **data},
           "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 3, "log_every": 1, "tensorboard": False,
                     "precision": "fp32", "eval_zero_shot": False},
           "output_dir": str(tmp_path / f"run-{name}")}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return main(["train", str(path)])


def entry(tmp_path, name):
    """The one tokenized entry a run wrote: its columns and meta."""
    (meta,) = list((tmp_path / f"cache-{name}").glob("*/meta.json"))
    table = pa.ipc.open_file(pa.memory_map(str(meta.parent / "items.arrow"), "r")).read_all()
    return table.to_pydict(), json.loads(meta.read_text())


def losses(tmp_path, name):
    lines = (tmp_path / f"run-{name}" / "metrics.jsonl").read_text().splitlines()
    return [x["loss"] for x in map(json.loads, lines) if x.get("split") == "train"]


def test_save_to_disk_and_hub_layout_sources_train_as_their_jsonl_does(tiny_model_dir, tmp_path):
    import datasets

    train_rows, test_rows = unique_hh_pairs(20, "t"), unique_hh_pairs(6, "e")
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
    splits = datasets.DatasetDict({"train": datasets.Dataset.from_list(train_rows),
                                   "test": datasets.Dataset.from_list(test_rows)})
    splits.save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "hub" / "data").mkdir(parents=True)
    for name, ds in splits.items():
        ds.to_parquet(str(tmp_path / "hub" / "data" / f"{name}-00000-of-00001.parquet"))
    model = tiny_model_dir("llama")
    assert train(tmp_path, model, str(tmp_path / "train.jsonl"), "jsonl") == 0
    assert train(tmp_path, model, {"path": str(tmp_path / "saved"), "split": "train"}, "saved") == 0
    assert train(tmp_path, model, {"path": str(tmp_path / "hub"), "split": "train"}, "hub") == 0
    reference, _ = entry(tmp_path, "jsonl")
    assert len(reference["ids"]) == 20 and len(losses(tmp_path, "jsonl")) == 3
    for name in ("saved", "hub"):
        got, meta = entry(tmp_path, name)
        assert {c: got[c] for c in COLUMNS} == {c: reference[c] for c in COLUMNS}, name
        assert got["where"][4] == f"{tmp_path / name}[train]:row 5"
        assert meta["source"] == str(tmp_path / name)
        assert losses(tmp_path, name) == losses(tmp_path, "jsonl")
        summary = json.loads((tmp_path / f"run-{name}" / "summary.json").read_text())
        assert summary["data"]["train_pairs"] == 20
    # a held-out set from another split of a source
    assert train(tmp_path, model, {"path": str(tmp_path / "hub"), "split": "train"}, "eval",
                 eval={"path": str(tmp_path / "saved"), "split": "test"}) == 0
    summary = json.loads((tmp_path / "run-eval" / "summary.json").read_text())
    assert summary["data"]["eval_pairs"] == 6 and summary["eval"]["pairs"] == 6
    assert [s["name"] for s in summary["data"]["sources"]] == ["hub_train"]


def test_a_missing_split_stops_the_run_naming_the_available_ones(tiny_model_dir, tmp_path, capsys):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(unique_hh_pairs(4, "t")),
                          "test": datasets.Dataset.from_list(unique_hh_pairs(4, "e"))}).save_to_disk(str(tmp_path / "saved"))
    source = {"path": str(tmp_path / "saved"), "split": "validation"}
    assert train(tmp_path, tiny_model_dir("llama"), source, "missing") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'saved'}: no split 'validation'; the available splits are: train, test" in err


def test_a_bad_dataset_record_stops_the_run_naming_source_row_and_field(tiny_model_dir, tmp_path, capsys):
    import datasets

    rows = unique_hh_pairs(6, "t")
    rows[3]["rejected"] = rows[3]["chosen"]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "one"))
    assert train(tmp_path, tiny_model_dir("llama"), {"path": str(tmp_path / "one")}, "bad") == 2
    assert f"{tmp_path / 'one'}:row 4: field 'rejected': " in capsys.readouterr().err


def test_data_inspect_reads_the_split_it_is_given(tmp_path, capsys):
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(unique_hh_pairs(5, "t")),
                          "test": datasets.Dataset.from_list(unique_hh_pairs(3, "e"))}).save_to_disk(str(tmp_path / "saved"))
    assert main(["data", "inspect", str(tmp_path / "saved"), "--split", "test", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["records"] == 3 and got["examples"] == 3 and got["format"] == "pairs"
    assert main(["data", "inspect", str(tmp_path / "saved"), "--json"]) == 2
    assert "holds several splits (train, test)" in json.loads(capsys.readouterr().out)["error"]
