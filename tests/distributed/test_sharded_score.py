"""`rewardkit score --num-processes N`: real worker processes on CPU, shards written atomically, merged in input
order, byte-equal to one process, and a resume that scores only the shards a crash left missing."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from rewardkit.cli import main
from rewardkit.serve.sharded_score import PLAN, shard_bounds, shard_dir, shard_path

from ..conftest import HH_SAMPLE
from ..unit.test_score_batch import SINGLES, save_rewardkit_model, write_jsonl


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    return save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk-shard"))


@pytest.fixture(autouse=True)
def one_thread_per_process(monkeypatch):
    """Workers and the one-process reference all compute with one thread: a CPU matrix product's last bits depend
    on how many threads split it, and byte equality is promised for equal threads per process."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data(tmp_path):
    # singles and pairs mixed, one invalid record: all must land in the merged output at their input position
    rows = [dict(r, id=i) for i, r in enumerate(SINGLES * 3 + HH_SAMPLE * 2)]
    rows.insert(5, {"id": "bad", "prompt": "x", "response": 7})
    return write_jsonl(tmp_path / "in.jsonl", rows)


def test_shard_bounds_are_contiguous_whole_blocks_covering_every_record():
    assert shard_bounds(7, 3) == [[0, 3], [3, 5], [5, 7]]
    assert shard_bounds(2, 3) == [[0, 1], [1, 2], [2, 2]]
    assert shard_bounds(0, 2) == [[0, 0], [0, 0]]
    assert shard_bounds(21, 2, block=4) == [[0, 12], [12, 21]]
    assert shard_bounds(21, 3, block=4) == [[0, 8], [8, 16], [16, 21]]


def test_two_processes_give_byte_identical_output_to_one_process(model_dir, data, tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    # blocks of 4 records: the shards start inside what would otherwise be one batch plan; a repeated prompt
    # (SINGLES x 3) spans a shard boundary, so prompt sharing differs per block, and the bytes must still agree
    common = ["--on-invalid", "skip", "--max-tokens", "256", "--block-records", "4"]
    assert main(["score", str(model_dir), str(data), "-o", str(one), *common]) == 0
    assert main(["score", str(model_dir), str(data), "-o", str(two), "--num-processes", "2", *common]) == 0
    assert two.read_bytes() == one.read_bytes()
    assert not shard_dir(two).exists()  # merged, then the shards are removed
    rows = [json.loads(line) for line in two.read_text().splitlines()]
    assert rows[5]["id"] == "bad" and rows[5]["reward"] is None
    assert isinstance(rows[-1]["reward_chosen"], float)


def test_csv_output_of_shards_equals_one_process(model_dir, data, tmp_path):
    one, three = tmp_path / "one.csv", tmp_path / "three.csv"
    assert main(["score", str(model_dir), str(data), "-o", str(one), "--on-invalid", "skip", "--block-records", "4"]) == 0
    assert main(["score", str(model_dir), str(data), "-o", str(three), "--on-invalid", "skip", "--block-records", "4",
                 "--num-processes", "3"]) == 0
    assert three.read_bytes() == one.read_bytes()


def test_resume_after_a_killed_shard_scores_only_the_missing_one(model_dir, data, tmp_path, caplog):
    from rewardkit.serve.sharded_score import make_plan, prepare, run_shard

    one, out = tmp_path / "one.jsonl", tmp_path / "out.jsonl"
    assert main(["score", str(model_dir), str(data), "-o", str(one), "--on-invalid", "skip"]) == 0
    # the first attempt: shard 0 completes, shard 1's worker is killed (SIGKILL, as an OOM kill would) before the end
    plan = make_plan(str(model_dir), str(data), str(out), 2, on_invalid="skip")
    assert prepare(plan, resume=False) == [0, 1]
    run_shard(plan, 0)
    d = shard_dir(out)
    worker = subprocess.Popen([sys.executable, "-m", "rewardkit.serve.sharded_score", str(d / PLAN), "1", "cpu"],
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
    time.sleep(1.5)
    worker.send_signal(signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL
    assert not shard_path(d, 1, 2).exists()  # a killed worker never leaves a shard that looks complete
    assert not out.exists()
    caplog.set_level("INFO", logger="rewardkit.serve.sharded_score")
    assert main(["score", str(model_dir), str(data), "-o", str(out), "--on-invalid", "skip",
                 "--num-processes", "2", "--resume"]) == 0
    assert "1 of 2 shards complete, scoring [1]" in caplog.text
    assert out.read_bytes() == one.read_bytes()


def test_resume_keeps_complete_shards_and_refuses_a_changed_job(model_dir, data, tmp_path, capsys):
    from rewardkit.serve.sharded_score import make_plan, prepare, run_shard

    out = tmp_path / "out.jsonl"
    plan = make_plan(str(model_dir), str(data), str(out), 3, on_invalid="skip")
    prepare(plan, resume=False)
    run_shard(plan, 1)
    kept = shard_path(shard_dir(out), 1, 3).stat().st_mtime_ns
    assert prepare(plan, resume=True) == [0, 2]  # only the missing shards are scored again
    assert shard_path(shard_dir(out), 1, 3).stat().st_mtime_ns == kept
    # the same output with a different number of processes is another job: a clear error, not a wrong merge
    assert main(["score", str(model_dir), str(data), "-o", str(out), "--on-invalid", "skip",
                 "--num-processes", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "num_shards" in err and "rerun without --resume" in err


def test_resume_without_num_processes_is_a_clear_error(model_dir, data, tmp_path, capsys):
    assert main(["score", str(model_dir), str(data), "-o", str(tmp_path / "o.jsonl"), "--resume"]) == 2
    assert "--num-processes" in capsys.readouterr().err


def test_a_failing_shard_reports_and_keeps_the_others(model_dir, tmp_path, capsys):
    rows = [dict(r, id=i) for i, r in enumerate(SINGLES * 2)]
    rows[-1] = {"id": "bad", "prompt": "x", "response": 7}  # invalid, in the last shard, with on_invalid=error
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert main(["score", str(model_dir), str(src), "-o", str(out), "--num-processes", "2",
                 "--block-records", "2"]) == 2
    err = capsys.readouterr().err
    assert "shard(s) [1] of 2 failed" in err and "--resume" in err
    assert shard_path(shard_dir(out), 0, 2).exists() and not out.exists()


def test_data_overrides_apply_in_every_shard_as_in_one_process(model_dir, tmp_path, capsys):
    # the same records under other field names: --data.fields.* maps them, in one process and in each worker
    plain = [dict(r, id=i) for i, r in enumerate(SINGLES[::2] * 3 + HH_SAMPLE * 2)]
    rename = {"prompt": "q", "response": "a", "chosen": "good", "rejected": "bad"}
    renamed = write_jsonl(tmp_path / "renamed.jsonl", [{rename.get(k, k): v for k, v in r.items()} for r in plain])
    ref = tmp_path / "ref.jsonl"
    assert main(["score", str(model_dir), str(write_jsonl(tmp_path / "plain.jsonl", plain)), "-o", str(ref),
                 "--block-records", "4"]) == 0
    overrides = ["--data.fields.prompt", "q", "--data.fields.response=a", "--data.fields.chosen", "good",
                 "--data.fields.rejected", "bad"]
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["score", str(model_dir), str(renamed), "-o", str(one), "--block-records", "4", *overrides]) == 0
    assert main(["score", str(model_dir), str(renamed), "-o", str(two), "--block-records", "4", "--num-processes",
                 "2", *overrides]) == 0
    assert two.read_bytes() == one.read_bytes()
    rewards = [{k: v for k, v in json.loads(line).items() if k.startswith("reward")} for line in two.open()]
    assert rewards == [{k: v for k, v in json.loads(line).items() if k.startswith("reward")} for line in ref.open()]
    assert all(v is not None for r in rewards for v in r.values())  # the renamed fields were read, not nulled

    # the plan holds the overrides: a resume with other ones is another job; a bad key fails before any worker
    from rewardkit.serve.sharded_score import data_tree, make_plan, prepare

    out = tmp_path / "out.jsonl"
    prepare(make_plan(str(model_dir), str(renamed), str(out), 2, data=data_tree(overrides)), resume=False)
    assert main(["score", str(model_dir), str(renamed), "-o", str(out), "--num-processes", "2", "--resume",
                 "--data.fields.prompt", "q"]) == 2
    assert "data changed" in capsys.readouterr().err
    assert main(["score", str(model_dir), str(renamed), "-o", str(tmp_path / "x.jsonl"), "--num-processes", "2",
                 "--data.fields.nope", "q"]) == 2
    assert "data.fields" in capsys.readouterr().err and not shard_dir(tmp_path / "x.jsonl").exists()
