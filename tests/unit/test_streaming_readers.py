"""JSON arrays and CSV files are read as a stream: the same records and the same errors as reading them whole,
with memory that does not grow with the file."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tracemalloc

import pytest

from rewardkit.data import json_stream, readers
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.readers import Record, read_records

HH = "/work/shared/data/hh-rlhf/harmless-base-test.jsonl.gz"
REAL = ["/work/shared/data/pandalm/testset-v1.json", "/work/shared/data/usr/tc_usr_data.json"]


def _outcome(reader, path) -> list:
    """What a reader gives: records as (data, line), item errors as tuples, and the error that stops it."""
    out = []
    try:
        for r in reader(path, str(path)):
            out.append((r.reason, r.line, r.field, str(r)) if isinstance(r, DataError) else (r.data, r.line))
    except DataError as e:
        out.append(("raised", e.reason, e.line, e.field, str(e)))
    return out


def _same(streamed: list, whole: list) -> bool:
    """A whole read stops before any record when the file is unreadable; a stream stops at the same error after
    the records before it: the error must be the same, and every record when there is none."""
    if whole and whole[-1][0] == "raised":
        return bool(streamed) and streamed[-1] == whole[-1]
    return streamed == whole


def _whole_csv(p, source):
    """The CSV reader as it was before streaming (the whole file decoded, then parsed): the reference."""
    raw = readers._open_bytes(p).read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(source, None, None, f"not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8",
                        "invalid_utf8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
        rows = [(row, reader.line_num) for row in reader]
    except csv.Error as e:
        raise DataError(source, reader.line_num + 1, None, f"unreadable CSV ({e}); check the quoting, or use JSONL for "
                        "fields longer than 128 KiB", "invalid_csv") from None
    for row, lineno in rows:
        if None in row:
            yield DataError(source, lineno, None, f"has {len(header) + len(row[None])} columns, the header has "
                            f"{len(header)}; quote fields that contain commas", "csv_columns")
            continue
        missing = [k for k, v in row.items() if v is None]
        if missing:
            yield DataError(source, lineno, missing[0], f"column is missing on this row (it has fewer than the "
                            f"{len(header)} header columns); fill it in or remove the row", "missing_field")
            continue
        yield Record(dict(row), source, lineno)


@pytest.fixture(params=[1, 7, 1 << 20], ids=["block1", "block7", "block1M"])
def block(request, monkeypatch):
    """Tiny blocks put every item, string, escape and multi-byte character across a block boundary."""
    monkeypatch.setattr(json_stream, "BLOCK", request.param)
    return request.param


def _hh(n: int | None = None) -> list[dict]:
    rows = [r.data for r in read_records(HH)]
    return rows[:n] if n else rows


# --- JSON arrays: the same records -----------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "pretty"])
def test_json_array_of_real_records_streams_the_records_of_the_whole_read(tmp_path, indent, block):
    rows = _hh(300 if block < 100 else None)  # block 1 reads byte by byte: keep it short
    p = tmp_path / "hh.json"
    p.write_text(json.dumps(rows, indent=indent, ensure_ascii=False))
    streamed = _outcome(readers._read_json, p)
    assert streamed == _outcome(readers._read_json_whole, p)
    assert [d for d, _ in streamed] == rows and [line for _, line in streamed] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize("path", REAL)
def test_real_json_files_read_as_before(path):
    from pathlib import Path

    assert _outcome(readers._read_json, Path(path)) == _outcome(readers._read_json_whole, Path(path))
    with open(path, "rb") as f:
        assert json_stream.sniff(f) == "array"


def test_one_object_per_line_under_a_json_name_is_read_as_jsonl():
    from pathlib import Path

    p = Path("/work/shared/data/halueval/general_data.json")  # HaluEval ships JSONL under a .json name
    with open(p, "rb") as f:
        assert json_stream.sniff(f) == "lines"
    got = _outcome(readers._read_json, p)
    assert got == _outcome(readers._read_json_whole, p) and len(got) == 4507


TRICKY = [{"prompt": "brackets ] } [ { and , inside", "chosen": "quote \" and backslash \\", "rejected": "\\"},
          {"prompt": "caf\u00e9 \u2603 \U0001F600 \u4e2d\u6587", "chosen": "", "rejected": "\\\"]"},
          {"prompt": "nested", "chosen": [{"role": "user", "content": "a, [b]"}], "rejected": {"x": [1, [2, {}]]}},
          {"prompt": "numbers", "chosen": "1", "rejected": "2", "margin": -1.5e-3, "ok": True, "none": None}]


@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_escapes_brackets_in_strings_and_multibyte_text_across_block_edges(tmp_path, ensure_ascii, block):
    p = tmp_path / "t.json"
    p.write_text("\ufeff" + json.dumps(TRICKY, ensure_ascii=ensure_ascii), encoding="utf-8")  # a BOM too
    assert [r.data for r in read_records(str(p))] == TRICKY
    g = tmp_path / "t.json.gz"
    g.write_bytes(gzip.compress(p.read_bytes()))
    assert [r.data for r in read_records(str(g))] == TRICKY


# --- JSON arrays: the same errors ------------------------------------------------------------------------

BAD_JSON = {
    "trailing comma": '[{"a": 1}, ]',
    "trailing comma, later line": '[{"a": 1},\n\n]',
    "only a comma": "[,]",
    "two commas": '[{"a": 1},,{"b": 2}]',
    "missing comma": '[{"a": 1}\n {"b": 2}]',
    "not closed": '[{"a": 1}',
    "not closed after a comma": '[{"a": 1},',
    "cut inside an item": '[{"a": 1}, {"b":',
    "cut inside a string": '[{"a": 1},\n {"b": "abc',
    "bare bracket": "[",
    "data after the array": '[{"a": 1}]\n x',
    "a value missing": '[{"prompt": "q",\n "chosen": }]',
    "a brace too many": '[{"a": 1}}, {"b": 2}]',
    "unbalanced inside": '[{"a": [1, 2}]',
    "raw newline in a string": '[{"a": 1},\n{"b": "x\ny"}]',
    "items that are not objects": '[{"a": 1}, 5, "s", [1], null]',
    "duplicated key": '[{"a": 1}, {"a": 1, "a": 2}]',
    "lone surrogate": '[{"a": 1}, {"prompt": "\\ud83d"}]',
    "integer over 4300 digits": '[{"a": ' + "9" * 4400 + "}]",
    "absurd nesting": "[" + "[" * 50_000 + "]" * 50_000 + "]",
    "empty array": "[ \n ]",
}
BAD_JSON_BYTES = {
    "bad UTF-8 in an item": b'[{"a": "ok"},\n {"b": "caf\xe9"}]',
    "bad UTF-8 after a BOM": b'\xef\xbb\xbf[{"a": 1}, {"b": "\xff"}]',
    "bad UTF-8 after the array": b'[{"a": 1}] \xff',
}


@pytest.mark.parametrize("name", list(BAD_JSON) + list(BAD_JSON_BYTES))
def test_bad_json_arrays_give_the_errors_of_the_whole_read(tmp_path, name, block):
    p = tmp_path / "bad.json"
    p.write_bytes(BAD_JSON[name].encode() if name in BAD_JSON else BAD_JSON_BYTES[name])
    streamed, whole = _outcome(readers._read_json, p), _outcome(readers._read_json_whole, p)
    assert _same(streamed, whole), (streamed[-2:], whole[-2:])


def test_a_bad_item_names_its_line_and_stops_the_run_in_either_mode(tmp_path):
    rows = [json.dumps(r) for r in _hh(50)]
    p = tmp_path / "bad.json"
    p.write_text("[\n" + ",\n".join(rows[:40]) + ",\n" + rows[40][:-1] + ",,\n" + ",\n".join(rows[41:]) + "\n]")
    for mode in ("error", "skip"):
        with pytest.raises(DataError, match=r"bad\.json:42: invalid JSON") as e:
            list(read_records(str(p), mode, SkipReport()))
        assert e.value.reason == "invalid_json"


def test_an_item_that_is_not_an_object_is_skipped_and_counted_by_its_number(tmp_path, block):
    p = tmp_path / "a.json"
    p.write_text(json.dumps([TRICKY[0], 5, TRICKY[1]]))
    report = SkipReport()
    got = list(read_records(str(p), "skip", report))
    assert [r.line for r in got] == [1, 3] and report.skipped == {"not_an_object": 1}
    with pytest.raises(DataError, match=r"a\.json:2: item 2 is a int"):
        list(read_records(str(p)))


def test_wrappers_and_single_objects_are_still_read(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(json.dumps({"data": TRICKY}, indent=1))
    assert [r.data for r in read_records(str(p))] == TRICKY
    p.write_text(json.dumps(TRICKY[0]))
    assert [r.data for r in read_records(str(p))] == [TRICKY[0]]


# --- CSV ---------------------------------------------------------------------------------------------------


def _csv_text(rows: list[dict], lineterminator: str) -> str:
    buf = io.StringIO(newline="")
    # QUOTE_ALL: with "\r" as the line end the writer would leave fields holding "\n" unquoted
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator=lineterminator, quoting=csv.QUOTE_ALL)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_csv_of_real_records_streams_the_records_of_the_whole_read(tmp_path, ending):
    rows = _hh(600)  # dialogues: newlines, quotes and commas inside quoted fields
    p = tmp_path / "hh.csv"
    p.write_bytes(b"\xef\xbb\xbf" + _csv_text(rows, ending).encode())
    streamed = _outcome(readers._read_csv, p)
    assert streamed == _outcome(_whole_csv, p)
    assert [d for d, _ in streamed] == rows
    g = tmp_path / "hh.csv.gz"
    g.write_bytes(gzip.compress(p.read_bytes()))
    assert _outcome(readers._read_csv, g) == streamed


BAD_CSV = {
    "too many cells": b"prompt,chosen,rejected\nq,a,b\nq,a,b,c\n",
    "too few cells": b"prompt,chosen,rejected\nq,a,b\nq,a\n",
    "field over the csv limit": b"prompt,chosen,rejected\nq,a,b\nq,\"" + b"x" * 140_000 + b"\",b\n",
    "bad UTF-8": b"prompt,chosen,rejected\nq,a,b\nq,caf\xe9,b\n",
    "bad UTF-8 after a BOM": b"\xef\xbb\xbfprompt,chosen,rejected\nq,a,b\r\nq,\xff,b\n",
    "lone CR inside and between rows": b"prompt,chosen,rejected\rq,\"a\rb\",c\rq,d\r\ne,f\n",
    "quote not closed": b"prompt,chosen,rejected\nq,\"a,b\nq,c,d\n",
    "empty file": b"",
    "header only": b"prompt,chosen,rejected\n",
}


@pytest.mark.parametrize("name", list(BAD_CSV))
def test_bad_csv_gives_the_errors_of_the_whole_read(tmp_path, name):
    p = tmp_path / "bad.csv"
    p.write_bytes(BAD_CSV[name])
    streamed, whole = _outcome(readers._read_csv, p), _outcome(_whole_csv, p)
    assert _same(streamed, whole), (streamed[-2:], whole[-2:])


# --- memory --------------------------------------------------------------------------------------------------


def _big_file(tmp_path, kind: str, mb: int = 24):
    rows = _hh()
    p = tmp_path / f"big.{kind}"
    with open(p, "w", encoding="utf-8", newline="") as f:
        if kind == "csv":
            w = csv.DictWriter(f, fieldnames=["chosen", "rejected"])
            w.writeheader()
        else:
            f.write("[\n")
        i = 0
        while f.tell() < mb << 20:
            r = rows[i % len(rows)]
            if kind == "csv":
                w.writerow(r)
            else:
                f.write(("" if i == 0 else ",\n") + json.dumps(r))
            i += 1
        if kind == "json":
            f.write("\n]\n")
    return p, i


@pytest.mark.parametrize("kind", ["json", "csv"])
def test_a_large_file_is_read_with_memory_that_does_not_grow_with_it(tmp_path, kind):
    p, n = _big_file(tmp_path, kind)
    size = p.stat().st_size
    tracemalloc.start()
    try:
        count = 0
        for _ in read_records(str(p)):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    # a whole read holds the file's bytes and its decoded text (2x its size and more); the stream a block and an item
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB while reading {size / 2**20:.0f} MiB"


def test_the_first_record_arrives_before_the_file_is_read(tmp_path, monkeypatch):
    p, _ = _big_file(tmp_path, "json", mb=8)
    opened = []
    real_open = readers._open_bytes

    def counting_open(path):
        f = real_open(path)
        opened.append(f)
        return f

    monkeypatch.setattr(readers, "_open_bytes", counting_open)
    records = read_records(str(p))  # kept: a dropped generator closes its file
    assert next(records).line == 1
    assert opened[-1].tell() <= 2 * json_stream.BLOCK < p.stat().st_size / 2
