"""Errors and skip accounting for bad input: every problem names file, line and field."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class DataError(ValueError):
    """A record cannot be used. ``str(err)`` reads ``file:line: field 'x': what is wrong; how to fix it``."""

    def __init__(self, source: str, line: int | None, field_name: str | None, message: str, reason: str):
        self.source = source
        self.line = line
        self.field = field_name
        self.message = message
        self.reason = reason
        where = f"{source}:{line}" if line is not None else source
        what = f"field '{field_name}': " if field_name else ""
        super().__init__(f"{where}: {what}{message}")


@dataclass
class SkipReport:
    """Counts of records skipped (``on_invalid: skip``) or touched by the over-length policy, by reason."""

    skipped: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20

    def add(self, err: DataError) -> None:
        self.skipped[err.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(err))
        log.debug("skipped %s", err)

    @property
    def total(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> dict:
        return {"skipped": self.total, "by_reason": dict(self.skipped), "first": list(self.examples)}


def skip_or_raise(err: DataError, on_invalid: str, report: SkipReport | None) -> None:
    """Do what ``data.on_invalid`` says with a bad record: raise ``err`` (``error``), or count it in ``report``
    (``skip``), so a skipped record is never dropped silently. Every reader calls this from its
    ``except DataError`` (one rule, not one copy per reader)."""
    if on_invalid != "skip":
        raise err
    if report is not None:
        report.add(err)


def each_valid(records: Iterable[T], parse: Callable[[T], R], on_invalid: str,
               report: SkipReport | None) -> Iterator[R]:
    """``parse(record)`` for each record; a :class:`DataError` goes to :func:`skip_or_raise`."""
    for rec in records:
        try:
            yield parse(rec)
        except DataError as err:
            skip_or_raise(err, on_invalid, report)
