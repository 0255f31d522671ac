"""Property tests: whatever bytes or records arrive, readers and parsers load them or raise DataError.

Anything else (a KeyError, an OverflowError, a zlib.error ...) would crash a run with a traceback that names
no file and no line; these tests feed random files and random records to find such holes.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewardkit.config import DataConfig, FieldsConfig, SplitConfig
from rewardkit.data.checks import unique_ids
from rewardkit.data.dataset import load_pairs
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.formats import PARSERS, Pair, parse_pair
from rewardkit.data.readers import Record, read_records

FIELDS = FieldsConfig()
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**500), max_value=10**500)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
           | st.sampled_from(["", " ", "nan", "inf", "-inf", "1e999", "0", "1", "yes", "assistant", "user",
                            10**400, -(10**400), 1e39, -0.0]))
message = st.fixed_dictionaries({}, optional={"role": st.sampled_from(["user", "assistant", "system", "tool", "x"])
                                              | scalars, "content": st.text(max_size=8) | scalars})
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6),
                                                                                           inner, max_size=4),
                      max_leaves=12) | st.lists(message, max_size=4)
KEYS = ["prompt", "chosen", "rejected", "margin", "id", "response", "label", "score", "annotator", "scores",
        "responses", "ranks"]
records = st.dictionaries(st.sampled_from(KEYS), values, max_size=8)


def _record(data: dict, line: int = 1) -> Record:
    return Record(data, "fuzz.jsonl", line)


@SETTINGS
@given(records)
def test_random_records_parse_as_a_pair_or_raise_data_error(data):
    try:
        pair = parse_pair(_record(data), FIELDS)
    except DataError as err:
        assert err.source == "fuzz.jsonl" and err.line == 1 and err.reason
        return
    assert isinstance(pair, Pair) and pair.chosen != pair.rejected


@SETTINGS
@given(st.sampled_from(sorted(PARSERS)), records)
def test_random_records_parse_in_every_format_or_raise_data_error(fmt, data):
    try:
        PARSERS[fmt](_record(data), FIELDS)
    except DataError as err:
        assert err.line == 1 and err.reason


@SETTINGS
@given(st.lists(st.none() | st.integers(-3, 3) | st.text(max_size=2) | st.floats(allow_nan=True)
                | st.lists(st.integers(), max_size=2), max_size=8))
def test_random_ids_pass_or_are_duplicate_or_wrong_type_errors(ids):
    recs = [_record({"id": v}, line=i + 1) for i, v in enumerate(ids)]
    report = SkipReport()
    kept = list(unique_ids(recs, "id", "skip", report))
    assert len(kept) + report.total == len(recs)
    assert set(report.skipped) <= {"duplicate_id", "wrong_type"}
    kept_ids = [str(r.data["id"]) for r in kept if r.data["id"] not in (None, "")]
    assert len(kept_ids) == len(set(kept_ids))


def _read_all(path: Path, on_invalid: str) -> None:
    report = SkipReport()
    try:
        for rec in read_records(str(path), on_invalid, report):
            assert isinstance(rec.data, dict) and rec.line >= 1
    except DataError as err:
        assert err.source == str(path) and err.reason


byte_files = st.binary(max_size=200) | st.lists(
    st.sampled_from([b"{", b"}", b"[", b"]", b'"chosen"', b'"a"', b":", b",", b"\n", b"\r", b"\xff", b"\x00",
                     b"NaN", b'"', b"1e999", b"\xef\xbb\xbf", b"PAR1", b"\x1f\x8b", b"9" * 4400]), max_size=40).map(b"".join)


@SETTINGS
@given(st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]), st.booleans(), byte_files,
       st.sampled_from(["error", "skip"]))
def test_random_bytes_to_every_reader_load_or_raise_data_error(suffix, gz, content, on_invalid):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        if gz and suffix != ".parquet":
            path = path.with_name(path.name + ".gz")
            # half the time a valid gzip stream of random bytes, half the time random bytes named .gz
            content = gzip.compress(content) if len(content) % 2 else content
        path.write_bytes(content)
        _read_all(path, on_invalid)


@settings(SETTINGS, max_examples=30)
@given(st.lists(records, min_size=0, max_size=4), st.sampled_from(["error", "skip"]),
       st.sampled_from([".jsonl", ".json", ".csv"]))
def test_random_record_files_load_as_pairs_or_raise_data_error(recs, on_invalid, suffix):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"data{suffix}"
        if suffix == ".jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        elif suffix == ".json":
            path.write_text(json.dumps(recs))
        else:
            import csv

            with open(path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=KEYS)
                w.writeheader()
                for r in recs:
                    w.writerow({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in r.items()})
        try:
            pairs = load_pairs(SplitConfig(path=str(path)), DataConfig(on_invalid=on_invalid))
        except DataError as err:
            assert err.source == str(path)
            return
        assert pairs and all(isinstance(p, Pair) for p in pairs)
