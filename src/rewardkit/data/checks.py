"""Checks across records (a single record cannot see them): duplicated ids.

A data set that carries an id per record (``data.fields.id``, default ``id``) promises that each record is
one item; the same id twice usually means a file was concatenated with itself or a split leaked into
another, which silently doubles the weight of those examples. Records without an id are not checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .errors import DataError, SkipReport, skip_or_raise
from .readers import Record, at_line


def unique_ids(records: Iterable[Record], id_field: str | None, on_invalid: str = "error",
               report: SkipReport | None = None) -> Iterator[Record]:
    """Pass records through, raising (or skipping and counting) any whose id was already seen.

    The error names both lines: ``file:7: field 'id': duplicated id 'a1', first on line 3; ...``.
    """
    seen: dict[str, int] = {}
    for rec in records:
        value = rec.data.get(id_field) if id_field else None
        if value is None or value == "":
            yield rec
            continue
        try:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise DataError(rec.source, rec.line, id_field, f"expected a string or number, got "
                                f"{type(value).__name__}; ids must be scalars", "wrong_type")
            key = str(value)
            if key in seen:
                raise DataError(rec.source, rec.line, id_field, f"duplicated id {key!r}, first on {at_line(seen[key])}; "
                                "ids must be unique: remove the repeated record or give it a new id", "duplicate_id")
        except DataError as err:
            skip_or_raise(err, on_invalid, report)
            continue
        seen[key] = rec.line
        yield rec
