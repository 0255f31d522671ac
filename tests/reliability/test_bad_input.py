"""Every case of the bad-input catalogue gives a clear error, or is skipped and counted; the docs match."""

from __future__ import annotations

import json
import logging
from collections import Counter

import pytest

import rewardkit
from rewardkit.config import load_config
from rewardkit.data.errors import DataError

from ..conftest import HH_SAMPLE, load_test_tokenizer
from .catalogue import (
    CASES,
    DOC,
    FORMAT_CASES,
    GOOD,
    PAIR_CASES,
    doc_table,
    observed_error,
    run_case,
    table_from_runs,
    write_case,
)


@pytest.fixture(scope="module")
def gpt2(tokenizer_dirs):
    return load_test_tokenizer(tokenizer_dirs, "gpt2")


def test_catalogue_covers_at_least_25_cases_across_formats_and_readers():
    assert len(CASES) >= 25
    assert {c.fmt for c in CASES} == {"pairs", "binary", "scalar", "multi", "ranked"}
    assert {c.file.split(".", 1)[1] for c in CASES} >= {"jsonl", "json", "csv", "jsonl.gz", "parquet", "txt"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_error_names_file_line_field_and_how_to_fix(case, gpt2, tmp_path):
    err = observed_error(case, tmp_path, gpt2)
    assert err is not None, f"{case.name}: loaded without an error"
    path = str(tmp_path / case.file)
    assert (err.reason, err.line, err.field) == (case.reason, case.line, case.field), str(err)
    assert err.source == path
    where = f"{path}:{case.line}" if case.line is not None else path
    assert str(err).startswith(f"{where}: " + (f"field '{case.field}': " if case.field else "")), str(err)
    assert case.contains in err.message, str(err)
    # "what is wrong; how to fix it": every message carries the remedy after a semicolon
    what, _, fix = err.message.partition("; ")
    assert what and len(fix) > 8, f"no fix hint in: {err.message}"


SKIPPABLE = [c for c in CASES if c.skippable]
STOPPING = [c for c in CASES if not c.skippable]


@pytest.mark.parametrize("case", SKIPPABLE, ids=[c.name for c in SKIPPABLE])
def test_bad_record_is_skipped_and_counted_by_reason_with_on_invalid_skip(case, gpt2, tmp_path):
    examples, report = run_case(case, write_case(case, tmp_path), "skip", gpt2)
    assert len(examples) == 1  # the good record on line 1 survives
    assert dict(report.skipped) == {case.reason: 1}
    assert report.summary()["first"][0].startswith(f"{tmp_path / case.file}:{case.line}: ")


@pytest.mark.parametrize("case", STOPPING, ids=[c.name for c in STOPPING])
def test_whole_file_problems_stop_the_run_even_with_on_invalid_skip(case, gpt2, tmp_path):
    with pytest.raises(DataError) as info:
        run_case(case, write_case(case, tmp_path), "skip", gpt2)
    err = info.value
    if err.reason != case.reason:
        # every row carries the problem (e.g. a CSV without the column): all are skipped, then the split is empty
        assert err.reason == "empty" and f"all 2 were invalid and skipped ({{'{case.reason}': 2}})" in str(err)


def test_docs_table_matches_the_messages_the_code_gives(gpt2):
    assert doc_table() == table_from_runs(gpt2), "docs/bad-input.md is stale: run python -m tests.reliability.catalogue"
    text = " ".join(DOC.read_text().split())
    assert (f"{len(CASES)} cases: {len(PAIR_CASES)} for pairs and the readers" in text
            and f"{len(FORMAT_CASES)} for the binary" in text
            and f"{len(SKIPPABLE)} are skipped and counted under `on_invalid: skip`, {len(STOPPING)} stop" in text)


def test_training_with_skip_logs_and_writes_the_skip_counts_to_summary(tiny_model_dir, tmp_path, caplog):
    """All line-level JSONL pair cases in one file: the run skips each one and counts it under its reason."""
    cases = [c for c in SKIPPABLE if c.fmt == "pairs" and c.file.endswith(".jsonl")]
    lines = [json.dumps(r).encode() for r in HH_SAMPLE] + [json.dumps({**GOOD, "id": "a1"}).encode()]
    for c in cases:
        raw = c.content if isinstance(c.content, bytes) else c.content.encode()
        lines.append(raw.splitlines()[1])  # the bad line of each case
    data = tmp_path / "mixed.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    cfg = load_config(None, None, base={
        "model": {"name": str(tiny_model_dir("llama"))},
        "data": {"train": str(data), "on_invalid": "skip", "max_length": 64},
        "train": {"max_steps": 1, "batch_size": 2, "tensorboard": False, "precision": "fp32"},
        "output_dir": str(tmp_path / "run")})
    with caplog.at_level(logging.INFO, logger="rewardkit"):
        rewardkit.train(cfg)
    expected = Counter(c.reason for c in cases)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["data"]["invalid"]["by_reason"] == dict(expected)
    assert summary["data"]["invalid"]["skipped"] == len(cases)
    assert summary["data"]["train_pairs"] == len(HH_SAMPLE) + 1
    assert f"invalid skipped: {len(cases)}" in caplog.text
