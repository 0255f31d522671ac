"""The one skip-or-raise rule (data/errors.py) that every reader applies to a bad record."""

import json

import pytest

from rewardkit.config import DataConfig, FieldsConfig, SplitConfig, WinnerConfig
from rewardkit.data.checks import unique_ids
from rewardkit.data.errors import DataError, SkipReport, each_valid, skip_or_raise
from rewardkit.data.examples import load_examples
from rewardkit.data.formats import parse_ab_records, parse_examples
from rewardkit.data.readers import Record, read_records
from rewardkit.data.steps import parse_steps


def _err(line=3, reason="wrong_type"):
    return DataError("f.jsonl", line, "score", "expected a number", reason)


def test_error_mode_raises_the_same_error_and_counts_nothing():
    report, err = SkipReport(), _err()
    with pytest.raises(DataError) as caught:
        skip_or_raise(err, "error", report)
    assert caught.value is err and report.total == 0


def test_skip_mode_counts_the_error_by_reason_and_keeps_its_text():
    report = SkipReport()
    skip_or_raise(_err(3), "skip", report)
    skip_or_raise(_err(5, "missing_field"), "skip", report)
    assert report.skipped == {"wrong_type": 1, "missing_field": 1}
    assert report.examples == ["f.jsonl:3: field 'score': expected a number",
                               "f.jsonl:5: field 'score': expected a number"]


def test_skip_mode_without_a_report_does_not_raise():
    skip_or_raise(_err(), "skip", None)


def test_each_valid_yields_the_good_records_in_order_and_counts_the_bad():
    def parse(x):
        if x < 0:
            raise _err(line=-x)
        return x * 10
    report = SkipReport()
    assert list(each_valid([1, -2, 3, -4], parse, "skip", report)) == [10, 30]
    assert report.total == 2 and report.examples[0].startswith("f.jsonl:2:")
    with pytest.raises(DataError, match="f.jsonl:2:"):
        list(each_valid([1, -2, 3], parse, "error", SkipReport()))


def _records(rows):
    return [Record(r, "d.jsonl", i + 1) for i, r in enumerate(rows)]


@pytest.mark.parametrize("read", [
    lambda recs, mode, rep: list(parse_examples(recs, "scalar", FieldsConfig(), mode, rep)),
    lambda recs, mode, rep: list(unique_ids(recs, "id", mode, rep)),
    lambda recs, mode, rep: list(parse_ab_records(recs, FieldsConfig(), WinnerConfig(a=[1], b=[2]),
                                                  None, mode, rep)),
    lambda recs, mode, rep: list(parse_steps(recs, DataConfig(on_invalid=mode), None, rep)),
], ids=["parse_examples", "unique_ids", "parse_ab_records", "parse_steps"])
def test_every_reader_raises_or_counts_its_bad_record_the_same_way(read):
    good_scalar = {"id": "a", "prompt": "p", "response": "r", "score": 1.0, "response_a": "x", "response_b": "y",
                   "winner": 1, "steps": ["s1", "s2"], "labels": [1, 0]}
    bad = {"id": "a", "prompt": "p", "response": "r", "score": "high", "response_a": "x", "response_b": "y",
           "winner": 7, "steps": "not a list", "labels": [1, 0]}  # score / winner / steps bad; id repeated
    recs = _records([good_scalar, bad])
    with pytest.raises(DataError, match=r"d.jsonl:2: field"):
        read(recs, "error", SkipReport())
    report = SkipReport()
    kept = read(recs, "skip", report)
    assert len(kept) == 1 and report.total == 1 and report.examples[0].startswith("d.jsonl:2: field")


def test_undecodable_lines_follow_the_same_rule(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"prompt": "p", "response": "r", "score": 1}) + "\n{not json\n")
    with pytest.raises(DataError, match=r"d.jsonl:2"):
        list(read_records(str(p), "error"))
    report = SkipReport()
    assert len(list(read_records(str(p), "skip", report))) == 1 and report.total == 1
    assert len(load_examples(SplitConfig(path=str(p)), DataConfig(on_invalid="skip"), report)) == 1
