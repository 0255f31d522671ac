"""Bounds on the work one request can put on the reward server, so no request stalls the others.

* :func:`text_chars` counts the characters of every string in a request body: the cost of tokenizing it is
  about proportional. A request over ``max_request_chars`` is refused (422) before any tokenizing.
* :class:`Admission` bounds the characters of all requests admitted and not yet answered
  (``max_queue_chars``): one more is refused with 503 and ``Retry-After``, so memory stays bounded.
* :func:`in_slices` tokenizes a request in slices of about ``slice_chars`` characters, one slice at a time
  on the shared tokenizer thread: a small request that arrives while a large one is being tokenized waits for
  one slice, not for the whole large request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Executor


def text_chars(obj: object) -> int:
    """Characters of every string in a parsed JSON value (keys included); iterative: a deep body cannot recurse."""
    total, stack = 0, [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, str):
            total += len(x)
        elif isinstance(x, dict):
            stack.extend(x.keys())
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return total


def item_chars(items: list) -> list[int]:
    """Per-item character counts (at least 1 each, so a slice always advances)."""
    return [max(1, text_chars(x)) for x in items]


class Busy(Exception):
    """The queue bound is reached: answer 503 and let the client retry."""


class Admission:
    """Counts the characters of the requests in flight; refuses one that would pass ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0

    @contextlib.contextmanager
    def admit(self, chars: int) -> Iterator[None]:
        # one request alone is always admitted when nothing else is in flight (it passed max_request_chars)
        if self.in_flight and self.in_flight + chars > self.limit:
            raise Busy(f"the server is busy: {self.in_flight} characters are queued and this request adds {chars}, "
                       f"over the limit of {self.limit}; retry shortly")
        self.in_flight += chars
        try:
            yield
        finally:
            self.in_flight -= chars


async def in_slices(executor: Executor, encode: Callable[[int, int], list], sizes: list[int],
                    slice_chars: int) -> list:
    """``encode(start, stop)`` over consecutive index ranges of about ``slice_chars`` characters, one at a time
    on ``executor``; the results concatenated. Waiting for each slice before submitting the next lets other
    requests' slices in between (the executor runs its queue in order)."""
    loop = asyncio.get_running_loop()
    out: list = []
    start, n = 0, len(sizes)
    while start < n:
        stop, chars = start, 0
        while stop < n and (stop == start or chars + sizes[stop] <= slice_chars):
            chars += sizes[stop]
            stop += 1
        out += await loop.run_in_executor(executor, encode, start, stop)
        start = stop
    return out
