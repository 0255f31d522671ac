"""Read a ``.json`` file holding one top-level array item by item, so a file larger than memory is never held.

The file is read in blocks of :data:`BLOCK` bytes. A byte scanner finds where each item of the array ends: a
``,`` or ``]`` outside any string and outside any nested object or array (strings are skipped whole by one
regular expression, so the scanner runs in C over the text). Each item is then decoded and parsed on its own by
``json.loads``. Memory holds the current block and the current item, whatever the size of the file.

The records and the errors are those of reading the whole file with ``json.loads`` (what the reader did before):
an item that does not parse is parsed again behind the same ``[`` (and ``0,`` for a later item) that the whole
file put before it, so its message is the one ``json.loads`` gives for the whole file, at the same line; bad
UTF-8 is reported at the same byte offset. What differs is only *when* an error comes: after the items before it
were yielded, instead of before any.

:func:`sniff` says how a ``.json`` file is laid out, from its first bytes (and first line): an array (streamed
here), one object per line (read as JSONL), or anything else (a ``{"data": [...]}`` wrapper, one object, a bare
value: read whole, as before).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import BinaryIO

from .errors import DataError
from .text_checks import DuplicateKey, duplicate_key_error, unique_keys

BLOCK = 1 << 20
"""Bytes read at a time (an item longer than this makes the read grow with it)."""

_WHITESPACE = b" \t\n\r"  # JSON's whitespace: anything else between tokens is an error
# a whole string (possessive: linear time), one structural byte, or an opening quote whose string does not end in
# the buffer (a lone ``"``: read more)
_TOKEN = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[][{},"]', re.S)
_OPEN, _CLOSE = frozenset(b"[{"), frozenset(b"]}")
_QUOTE, _COMMA, _END = ord('"'), ord(","), ord("]")


def _strip_bom(head: bytes) -> bytes:
    return head[len(codecs.BOM_UTF8):] if head.startswith(codecs.BOM_UTF8) else head


def sniff(f: BinaryIO) -> str:
    """``"array"`` when the first value is ``[``; ``"lines"`` when the first line is one whole JSON object and
    more follows (one object per line, as HaluEval ships its ``.json`` files: ``json.loads`` of the whole file
    would stop there with "Extra data"); else ``"other"``. Reads the first block, or the first line for ``{``."""
    head = _strip_bom(f.read(BLOCK))
    while not head.lstrip(_WHITESPACE) and (more := f.read(BLOCK)):
        head = head.lstrip(_WHITESPACE) + more
    start = head.lstrip(_WHITESPACE)
    if start.startswith(b"["):
        return "array"
    if not start.startswith(b"{"):
        return "other"
    while b"\n" not in start and (more := f.read(BLOCK)):  # one object per line: lines are records
        start += more
    first, _, rest = start.partition(b"\n")
    try:
        json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):
        return "other"  # not a whole object on one line: a wrapper or an error, read whole as before
    while True:
        if rest.strip(_WHITESPACE):
            return "lines"
        if not (rest := f.read(BLOCK)):
            return "other"


class _Buffer:
    """A window on the file: ``buf`` holds bytes ``base .. base + len(buf)`` (counted after a BOM); ``line`` is
    the line number of ``buf[line_pos]``."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.buf = b""
        self.base = 0
        self.eof = False
        self.line, self.line_pos = 1, 0

    def fill(self, keep: int, want: int) -> int:
        """Drop the bytes before ``keep`` and read at least ``want`` more; returns how far indices shifted."""
        self.line_at(keep)
        self.buf = self.buf[keep:] + (data := self.f.read(max(want, BLOCK)))
        self.base += keep
        self.line_pos -= keep
        if not data:
            self.eof = True
        return keep

    def line_at(self, i: int) -> int:
        """The line number of ``buf[i]`` (``i`` never goes back)."""
        self.line += self.buf.count(b"\n", self.line_pos, i)
        self.line_pos = i
        return self.line


class _ArrayReader:
    def __init__(self, f: BinaryIO, source: str):
        self.b = _Buffer(f)
        self.source = source

    def _skip_to_bracket(self) -> int:
        b = self.b
        b.fill(0, BLOCK)
        b.buf = _strip_bom(b.buf)
        while not b.buf.lstrip(_WHITESPACE) and not b.eof:
            b.fill(len(b.buf), BLOCK)
        i = len(b.buf) - len(b.buf.lstrip(_WHITESPACE))
        if b.buf[i:i + 1] != b"[":  # sniff() saw "[" first: the file changed under us
            raise DataError(self.source, None, None, "the file changed while it was read; read it again",
                            "invalid_json")
        return i + 1

    def _scan(self, start: int) -> tuple[int, int, int | None]:
        """From ``start`` (the first byte after ``[`` or ``,``) to the byte that ends the item: (item start,
        index of its ``,`` or ``]``, that byte), or (start, len(buf), None) at the end of the file."""
        b = self.b
        pos, depth = start, 0
        while True:
            m = _TOKEN.search(b.buf, pos)
            if m is None or (m.end() - m.start() == 1 and b.buf[m.start()] == _QUOTE):
                if b.eof:
                    return start, len(b.buf), None
                # no token, or a string that goes on past the buffer: read more, keeping the item
                resume = m.start() if m is not None else len(b.buf)
                shift = b.fill(start, want=2 * (len(b.buf) - start))
                start, pos = start - shift, resume - shift
                continue
            c = b.buf[m.start()]
            if c == _QUOTE:
                pass
            elif c in _OPEN:
                depth += 1
            elif depth <= 0 and c in (_COMMA, _END):
                return start, m.start(), c
            elif c in _CLOSE:
                depth -= 1
            pos = m.end()

    def _error(self, text: str, first: bool, tail: str, line: int, fallback: ValueError) -> DataError:
        """The error ``json.loads`` gives for the whole file at this item: the item parsed behind what the file put
        before it (``[``, or ``[0,`` for a later item) and followed by its terminator."""
        prefix = "[" if first else "[0,"
        try:
            json.loads(prefix + text + tail)
        except json.JSONDecodeError as e:
            msg, lineno = e.msg, e.lineno
        except (ValueError, RecursionError):
            msg, lineno = getattr(fallback, "msg", str(fallback)), getattr(fallback, "lineno", 1)
        else:  # the item alone fails but not in place (never seen): report the item's own error
            msg, lineno = getattr(fallback, "msg", str(fallback)), getattr(fallback, "lineno", 1)
        return DataError(self.source, line + lineno - 1, None, f"invalid JSON ({msg}); a .json file must hold one "
                         "array of objects (use .jsonl for one object per line)", "invalid_json")

    def _decode(self, start: int, end: int) -> str:
        try:
            return self.b.buf[start:end].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(self.source, None, None, f"not valid UTF-8 (byte {self.b.base + start + e.start}); "
                            "re-encode the file as UTF-8", "invalid_utf8") from None

    def items(self) -> Iterator[object]:
        """The array's items as parsed values, in order; a :class:`DataError` for what makes the file unreadable."""
        pos = self._skip_to_bracket()
        first = True
        while True:
            start, end, term = self._scan(pos)
            text = self._decode(start, end)
            line = self.b.line_at(start)
            tail = "" if term is None else chr(term)
            if not text.strip(" \t\n\r") and first and term == _END:
                pos = end + 1
                break  # []
            try:
                if term is None or not text.strip(" \t\n\r"):
                    json.loads("[" + ("" if first else "0,") + text + tail)  # raises: unfinished array, empty item
                    raise json.JSONDecodeError("Expecting ',' delimiter", text, len(text))  # not reached
                item = json.loads(text, object_pairs_hook=unique_keys)
            except json.JSONDecodeError as e:
                raise self._error(text, first, tail, line, e) from None
            except DuplicateKey as e:
                raise duplicate_key_error(e, self.source, None) from None
            except (ValueError, RecursionError) as e:  # integers over 4300 digits, absurd nesting
                raise DataError(self.source, None, None, f"unreadable JSON ({_brief(e)}); a .json file must hold "
                                "one array of objects of plain values", "invalid_json") from None
            yield item
            first = False
            pos = end + 1
            if term == _END:
                break
        self._check_tail(pos)

    def _check_tail(self, pos: int) -> None:
        """After the closing ``]`` only whitespace may follow (``json.loads``: "Extra data")."""
        b = self.b
        while True:
            rest = b.buf[pos:].lstrip(_WHITESPACE)
            if rest:
                at = len(b.buf) - len(rest)
                self._decode(at, min(len(b.buf), at + 4))  # bad UTF-8 there is reported as such
                raise DataError(self.source, b.line_at(at), None, "invalid JSON (Extra data); a .json file must hold "
                                "one array of objects (use .jsonl for one object per line)", "invalid_json")
            if b.eof:
                return
            b.fill(len(b.buf), BLOCK)
            pos = 0


def _brief(err: Exception) -> str:
    return str(err).split(";")[0][:120] or type(err).__name__


def array_items(f: BinaryIO, source: str) -> Iterator[object]:
    """The items of the top-level JSON array in ``f`` (opened in binary, positioned at its start), parsed one at a
    time; :class:`DataError` (file and line) when the file is not valid JSON, as ``json.loads`` of the whole file
    would say."""
    return _ArrayReader(f, source).items()
