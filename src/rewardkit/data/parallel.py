"""Read, validate and tokenize a split chunk by chunk, in one process or ``data.num_proc`` worker processes.

Plain pair files stream: the main process reads records (JSONL line by line, Parquet by row groups) and checks
ids across the whole split; workers validate, render and tokenize chunks of :data:`CHUNK` records. Other
formats (adapters, ratings turned into pairs, which need the whole split) are loaded by the task first and only
their rendering and tokenization is spread over the workers.

Results are identical whatever the number of processes: every example is encoded on its own (chosen and
rejected, or a ranked list, together), chunks come back in input order, and the skip and over-length counts are
sums over chunks. At most ``2 * num_proc`` chunks are in flight, so memory stays bounded by chunks, not by the
split.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from ..config import DataConfig, SplitConfig
from .errors import DataError, SkipReport
from .examples import empty_message, plain_pairs, split_records
from .hf_datasets import is_hub_path
from .readers import resolve_path
from .tokenize import TruncationStats

log = logging.getLogger(__name__)

CHUNK = 512
"""Records (or examples) per unit of work: large enough that a chunk's transfer costs little next to it."""
SMALL_FILE_BYTES = 4 << 20
"""With ``data.num_proc`` null, smaller files (and directories) are tokenized in the main process (starting workers
costs more)."""


def default_num_proc(path: str | None = None) -> int:
    """The cores this process may use; 1 for files under :data:`SMALL_FILE_BYTES`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if path is not None and not is_hub_path(path):  # a Hub dataset's size is not known here
        try:
            p = resolve_path(path)
            files = [f for f in p.rglob("*") if f.is_file()] if p.is_dir() else [p]  # a datasets directory
            if sum(f.stat().st_size for f in files) < SMALL_FILE_BYTES:
                return 1
        except OSError:
            pass
    return max(1, min(cores, 32))


@dataclass
class _Context:
    """What a worker needs to encode a chunk: the task, renderer and an encoder of its own (for its counts)."""

    task: object
    renderer: object
    encoder: object
    data: DataConfig


@dataclass
class _ChunkResult:
    items: list
    records: int
    parsed: int
    truncation: Counter
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(reason, message) of each record skipped as invalid, in input order."""
    error: tuple | None = None
    """A :class:`DataError`'s arguments: raised again in the main process (it does not pickle by itself)."""


class _Collect(SkipReport):
    """A skip report that keeps every skip, to be replayed into the caller's report in order."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def add(self, err: DataError) -> None:
        self.seen.append((err.reason, str(err)))


def _encode_chunk(ctx: _Context, kind: str, chunk: list) -> _ChunkResult:
    from .formats import parse_examples

    ctx.encoder.stats = TruncationStats()
    collect = _Collect()
    examples = chunk
    try:
        if kind == "records":
            examples = list(parse_examples(chunk, "pairs", ctx.data.fields, ctx.data.on_invalid, collect))
        items = ctx.task.encode(examples, ctx.renderer, ctx.encoder)
    except DataError as e:
        return _ChunkResult([], len(chunk), 0, Counter(), collect.seen,
                            (e.source, e.line, e.field, e.message, e.reason))
    return _ChunkResult(items, len(chunk), len(examples), Counter(ctx.encoder.stats.counts), collect.seen)


# Set once in each worker process by the pool's initializer (inherited by fork, never pickled); the main process
# passes its context explicitly.
_WORKER_CONTEXT: _Context | None = None


def _init_worker(ctx: _Context) -> None:
    global _WORKER_CONTEXT
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one tokenizer thread per worker: the workers are the parallelism
    _WORKER_CONTEXT = ctx


def _work(kind: str, chunk: list) -> _ChunkResult:
    return _encode_chunk(_WORKER_CONTEXT, kind, chunk)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _run(ctx: _Context, kind: str, chunks: Iterable[list], num_proc: int) -> Iterator[_ChunkResult]:
    """Chunk results in input order, computed here (one process) or by ``num_proc`` forked workers."""
    if num_proc <= 1:
        for chunk in chunks:
            yield _encode_chunk(ctx, kind, chunk)
        return
    # fork: workers inherit the tokenizer and the task without pickling them (and start in milliseconds)
    with multiprocessing.get_context("fork").Pool(num_proc, initializer=_init_worker, initargs=(ctx,)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_work, (kind, chunk)))
            if len(pending) >= 2 * num_proc:  # back-pressure: Pool.imap would read the whole split ahead
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def streams(split: SplitConfig, data: DataConfig, task) -> bool:
    """Plain pairs (``examples.plain_pairs``) are validated record by record as they are read, as
    ``PairTask.load`` reads them; anything needing the whole split first goes through ``task.load``."""
    return task.format == "pairs" and plain_pairs(split, data)


@dataclass
class Build:
    """A split being encoded: iterate :attr:`chunks` (lists of items, in order), then read the counts."""

    chunks: Iterator[list]
    counts: Counter = field(default_factory=Counter)
    records: int = 0

    def truncation(self) -> dict:
        return TruncationStats(self.counts).summary()


def encode_split(split: SplitConfig, data: DataConfig, task, renderer, encoder, report: SkipReport,
                 num_proc: int | None = None, desc: str = "tokenize", progress: bool = True) -> Build:
    """Encode ``split`` for ``task`` chunk by chunk (``data`` already holds the source's format and fields)."""
    n = num_proc if num_proc is not None else default_num_proc(split.path)
    ctx = _Context(task, renderer, copy.copy(encoder), data)
    build = Build(iter(()))

    def generate() -> Iterator[list]:
        from tqdm.auto import tqdm

        skipped_before = report.total
        if streams(split, data, task):
            kind, source = "records", split_records(split, data, report)
        else:
            kind, source = "examples", task.load(split, data, report)
        parsed = 0
        with tqdm(desc=desc, unit="rec", disable=not progress, dynamic_ncols=True, mininterval=1.0) as bar:
            for res in _run(ctx, kind, _chunks(source, CHUNK), n):
                for reason, message in res.skipped:
                    report.skipped[reason] += 1
                    if len(report.examples) < report.max_examples:
                        report.examples.append(message)
                if res.error is not None:
                    raise DataError(*res.error)
                build.counts.update(res.truncation)
                build.records += res.records
                parsed += res.parsed
                bar.update(res.records)
                yield res.items
        if kind == "records" and not parsed:
            raise DataError(split.path, None, None, empty_message(split, report, report.total - skipped_before),
                            "empty")

    build.chunks = generate()
    log.debug("%s: encoding in %d process(es)", split.path, n)
    return build
