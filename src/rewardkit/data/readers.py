"""Read raw records from JSONL, JSON, CSV, Parquet (optionally gzipped) or a `datasets` source.

JSONL, CSV, Parquet and a top-level JSON array are read as a stream (line by line, row group by row group, item
by item): a file larger than memory is never held whole, and the records and errors are those of reading it whole.

Each record comes with its location so that later errors can name ``file:line``: the line number for JSONL
and CSV (1-based, the header is line 1 in CSV), the item number for a JSON array, the row number for Parquet,
and for a Hugging Face `datasets` source (:mod:`.hf_datasets`: a Hub dataset, a ``save_to_disk`` directory or a
directory in the Hub's layout) a :class:`Row`, so that its records read ``SOURCE[SPLIT]:row N``.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from . import json_stream
from .errors import DataError, SkipReport, skip_or_raise
from .text_checks import DuplicateKey, duplicate_key_error, surrogate_error, unique_keys

if TYPE_CHECKING:
    from ..config import SplitConfig

BUILTIN_DATA = {
    "hh-rlhf-harmless": "assets/hh-rlhf/harmless-base-test.jsonl.gz",
}


class Row(int):
    """The 1-based row number of a record of a `datasets` source. An ``int`` wherever a line number is used (row
    ranges, JSON, comparisons), written ``row N`` in messages: ``hf://datasets/A/B[train]:row 7`` cannot be
    mistaken for line 7 of a text file."""

    def __str__(self) -> str:
        return f"row {int(self)}"

    def __format__(self, spec: str) -> str:
        return str(self) if not spec else int.__format__(self, spec)


def at_line(line: int) -> str:
    """``line 7`` for a file's line, ``row 7`` for a dataset's row (messages that name a second record)."""
    return str(line) if isinstance(line, Row) else f"line {line}"


@dataclass(frozen=True)
class Record:
    data: dict
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def resolve_path(path: str) -> Path:
    """Turn ``builtin:NAME`` into the bundled file; other paths are returned as they are."""
    if path.startswith("builtin:"):
        name = path.split(":", 1)[1]
        if name not in BUILTIN_DATA:
            raise FileNotFoundError(f"unknown built-in data set {name!r}; known: {', '.join(BUILTIN_DATA)}")
        return Path(str(resources.files("rewardkit").joinpath(BUILTIN_DATA[name])))
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    return p


def _suffix(p: Path) -> str:
    suffixes = [s for s in p.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


def _open_bytes(p: Path):
    return gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")


def read_split(split: SplitConfig, on_invalid: str = "error", report: SkipReport | None = None) -> Iterator[Record]:
    """:func:`read_records` of a split's ``path``, a `datasets` source read with the split's ``split``, ``subset``,
    ``data_dir`` and ``revision`` (the row range is the caller's)."""
    from .hf_datasets import DatasetsOptions

    return read_records(split.path, on_invalid, report, DatasetsOptions.of(split))


def read_records(path: str, on_invalid: str = "error", report: SkipReport | None = None,
                 options=None) -> Iterator[Record]:
    """Yield every record of ``path``. Undecodable lines raise :class:`DataError` or are skipped and counted.

    ``options`` (:class:`~rewardkit.data.hf_datasets.DatasetsOptions`) choose within a `datasets` source; a data
    file given any of them is an error (they would be ignored)."""
    from . import hf_datasets

    if hf_datasets.is_datasets_source(path):
        yield from hf_datasets.read_dataset(path, options)
        return
    if options is not None and options.given():
        key = next(iter(options.given()))
        raise DataError(path, None, None, f"`{key}` applies to a datasets source (hf://datasets/OWNER/NAME or a "
                        "directory), not to a data file; leave it out", "bad_option")
    p = resolve_path(path)
    source = path if path.startswith("builtin:") else str(p)
    report = report if report is not None else SkipReport()
    kind = _suffix(p)
    if kind == ".jsonl":
        reader = _read_jsonl(p, source)
    elif kind == ".json":
        reader = _read_json(p, source)
    elif kind == ".csv":
        reader = _read_csv(p, source)
    elif kind == ".parquet":
        reader = _read_parquet(p, source)
    else:
        raise DataError(source, None, None, f"unsupported file type {kind!r}; use .jsonl, .json, .csv, .parquet "
                        "(optionally .gz), a datasets directory or hf://datasets/OWNER/NAME", "unsupported_file")
    for item in _guard_decoding(reader, source):
        if isinstance(item, DataError):
            skip_or_raise(item, on_invalid, report)
            continue
        yield item


def _brief(err: Exception) -> str:
    return str(err).split(";")[0][:120] or type(err).__name__


def _guard_decoding(reader: Iterator[Record | DataError], source: str) -> Iterator[Record | DataError]:
    """Turn a corrupt or truncated gzip stream into a :class:`DataError`: random bytes must never crash a run
    with a bare ``zlib.error`` or ``EOFError`` from deep inside the reader."""
    try:
        yield from reader
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(source, None, None, f"not a readable gzip file ({e}); re-compress it with gzip or drop "
                        "the .gz suffix", "invalid_gzip") from None


def _read_jsonl(p: Path, source: str) -> Iterator[Record | DataError]:
    with _open_bytes(p) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a BOM, as the CSV reader accepts
            except UnicodeDecodeError as e:
                yield DataError(source, lineno, None, f"not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8",
                                "invalid_utf8")
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text, object_pairs_hook=unique_keys)
            except json.JSONDecodeError as e:
                yield DataError(source, lineno, None, f"invalid JSON ({e.msg} at column {e.colno}); each line must "
                                "be one JSON object", "invalid_json")
                continue
            except DuplicateKey as e:
                yield duplicate_key_error(e, source, lineno)
                continue
            except (ValueError, RecursionError) as e:  # integers over 4300 digits, absurd nesting
                yield DataError(source, lineno, None, f"unreadable JSON ({_brief(e)}); each line must be one JSON "
                                "object of plain values", "invalid_json")
                continue
            if not isinstance(obj, dict):
                yield DataError(source, lineno, None, f"expected a JSON object, got {type(obj).__name__}; each "
                                "line must be one object such as {\"prompt\": ..., \"chosen\": ...}", "not_an_object")
                continue
            yield surrogate_error(obj, source, lineno) or Record(obj, source, lineno)


def _read_json(p: Path, source: str) -> Iterator[Record | DataError]:
    """A top-level array is streamed item by item (:mod:`.json_stream`), one object per line is read as JSONL;
    anything else (a ``{"data": [...]}`` wrapper, a single object) is read whole."""
    with _open_bytes(p) as f:
        layout = json_stream.sniff(f)
    if layout == "lines":
        yield from _read_jsonl(p, source)
    elif layout == "array":
        with _open_bytes(p) as f:
            yield from _array_records(json_stream.array_items(f, source), source)
    else:
        yield from _read_json_whole(p, source)


def _array_records(items, source: str) -> Iterator[Record | DataError]:
    for i, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield DataError(source, i, None, f"item {i} is a {type(item).__name__}, expected an object; every "
                            "item of the array must be one record", "not_an_object")
            continue
        yield surrogate_error(item, source, i) or Record(item, source, i)


def _read_json_whole(p: Path, source: str) -> Iterator[Record | DataError]:
    with _open_bytes(p) as f:
        raw = f.read()
    try:
        obj = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=unique_keys)
    except UnicodeDecodeError as e:
        raise DataError(source, None, None, f"not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8",
                        "invalid_utf8") from None
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and raw.lstrip().startswith(b"{"):
            # one object per line under a .json name (HaluEval ships its data so): read it as JSONL
            yield from _read_jsonl(p, source)
            return
        raise DataError(source, e.lineno, None, f"invalid JSON ({e.msg}); a .json file must hold one array of "
                        "objects (use .jsonl for one object per line)", "invalid_json") from None
    except DuplicateKey as e:
        raise duplicate_key_error(e, source, None) from None
    except (ValueError, RecursionError) as e:  # integers over 4300 digits, absurd nesting
        raise DataError(source, None, None, f"unreadable JSON ({_brief(e)}); a .json file must hold one array of "
                        "objects of plain values", "invalid_json") from None
    if isinstance(obj, dict):
        # {"data": [...]} or a single split name holding the list
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(lists) == 1:
            obj = lists[0]
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise DataError(source, None, None, f"expected a JSON array of objects, got {type(obj).__name__}; put the "
                        "records in a list, or use .jsonl with one object per line", "not_an_array")
    yield from _array_records(obj, source)


_LINE_END = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _csv_lines(f, source: str) -> Iterator[str]:
    """The file's text line by line as ``io.StringIO(text, newline="")`` splits it (``\n``, ``\r\n`` or a lone
    ``\r`` ends a line, the ending kept: the csv module needs it inside quoted fields), decoded one line at a time:
    memory holds a line, never the file. Bad UTF-8 is reported at its byte offset, as decoding the whole file did."""
    offset = 0
    for lineno, raw in enumerate(f, start=1):  # binary lines end at b"\n" only; UTF-8 never has 0x0A inside a char
        try:
            text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise DataError(source, None, None, f"not valid UTF-8 (byte {offset + e.start}); re-encode the file as "
                            "UTF-8", "invalid_utf8") from None
        offset += len(raw) - (3 if lineno == 1 and raw.startswith(codecs.BOM_UTF8) else 0)
        if "\r" in text:
            yield from _LINE_END.findall(text)
        else:
            yield text


def _read_csv(p: Path, source: str) -> Iterator[Record | DataError]:
    with _open_bytes(p) as f:
        reader = csv.DictReader(_csv_lines(f, source))
        try:
            header = reader.fieldnames or []
            for row in reader:
                if None in row:
                    yield DataError(source, reader.line_num, None, f"has {len(header) + len(row[None])} columns, "
                                    f"the header has {len(header)}; quote fields that contain commas", "csv_columns")
                    continue
                missing = [k for k, v in row.items() if v is None]
                if missing:
                    yield DataError(source, reader.line_num, missing[0], f"column is missing on this row (it has "
                                    f"fewer than the {len(header)} header columns); fill it in or remove the row",
                                    "missing_field")
                    continue
                yield Record(dict(row), source, reader.line_num)
        except csv.Error as e:
            raise DataError(source, reader.line_num + 1, None, f"unreadable CSV ({e}); check the quoting, or use JSONL "
                            "for fields longer than 128 KiB", "invalid_csv") from None


def _read_parquet(p: Path, source: str) -> Iterator[Record | DataError]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # row group by row group (batches of 4096 rows): a file larger than memory is never held whole
    try:
        batches = pq.ParquetFile(p).iter_batches(batch_size=4096)
        i = 0
        for batch in batches:
            for row in batch.to_pylist():
                i += 1
                yield Record(row, source, i)
    except (pa.ArrowException, OSError) as e:
        raise DataError(source, None, None, f"not a readable Parquet file ({e}); rewrite it with pyarrow or pandas",
                        "invalid_parquet") from None
