import gzip
import json

import pytest

from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.readers import read_records

ROWS = [{"prompt": "p1", "chosen": "a", "rejected": "b"}, {"prompt": "p2", "chosen": "c", "rejected": "d"}]


def test_jsonl_json_csv_parquet_gz_and_datasets_dir_read_the_same(tmp_path):
    import datasets

    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "a.json").write_text(json.dumps(ROWS))
    (tmp_path / "a.csv").write_text("prompt,chosen,rejected\np1,a,b\np2,c,d\n")
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress((tmp_path / "a.jsonl").read_bytes()))
    ds = datasets.Dataset.from_list(ROWS)
    ds.to_parquet(str(tmp_path / "a.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    for name in ("a.jsonl", "a.json", "a.csv", "a.jsonl.gz", "a.parquet", "saved"):
        got = [r.data for r in read_records(str(tmp_path / name))]
        assert got == ROWS, name


def test_records_carry_their_line_numbers(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert [r.line for r in read_records(str(p))] == [1, 3]
    c = tmp_path / "a.csv"
    c.write_text("prompt,chosen,rejected\np1,a,b\np2,c,d\n")
    assert [r.line for r in read_records(str(c))] == [2, 3]


def test_invalid_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON") as e:
        list(read_records(str(p)))
    assert e.value.line == 2 and e.value.reason == "invalid_json"


def test_non_utf8_line_is_reported_or_skipped_and_counted(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + b'{"prompt": "\xff"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid UTF-8"):
        list(read_records(str(p)))
    report = SkipReport()
    assert len(list(read_records(str(p), "skip", report))) == 1
    assert report.skipped == {"invalid_utf8": 1}


def test_csv_row_with_too_many_columns(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("prompt,chosen,rejected\np1,a,b,extra\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: has 4 columns, the header has 3"):
        list(read_records(str(p)))


def test_builtin_hh_rlhf_sample_is_bundled():
    recs = list(read_records("builtin:hh-rlhf-harmless"))
    assert len(recs) == 2312
    assert set(recs[0].data) == {"chosen", "rejected"}
    assert recs[-1].where == "builtin:hh-rlhf-harmless:2312"


def test_unknown_extension(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        list(read_records(str(p)))
