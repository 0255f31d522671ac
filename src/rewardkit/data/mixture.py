"""A run's data: one training source or a weighted mixture of several, and one or several named eval sets.

``data.train`` is one source (as before) or a list of sources. In a list, each source contributes to an epoch:

* ``count: N``: exactly N examples (a seeded shuffle of the source, repeated when it holds fewer than N);
* ``weight: w``: the weighted sources together fill as many examples as they hold, source i a share
  w_i / sum(w) of them (rounded), so w is the probability that a training example comes from source i;
* neither: every example once.

The mixture is drawn once per run from ``train.seed`` (the trainer's per-epoch shuffle then orders it); each
source is sampled without repetition until it is exhausted. ``data.eval`` is one set or a list of named sets,
each evaluated and reported apart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError, RunConfig, SplitConfig
from .cache import TokenizedSet, load_tokenized
from .errors import SkipReport

log = logging.getLogger(__name__)


def _as_list(value) -> list[SplitConfig]:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


def source_names(splits: list[SplitConfig], key: str) -> list[str]:
    """Each source's name: its ``name``, else the file's stem (``builtin:NAME``: NAME; a `datasets` source read
    with a ``split``: ``STEM_SPLIT``, as two splits of one data set are often both used), made unique by a suffix."""
    names, seen = [], set()
    for i, s in enumerate(splits):
        stem = (s.path.split(":", 1)[1] if s.path.startswith("builtin:") else
                Path(s.path).name.split(".")[0] or f"source{i}")
        base = s.name or (f"{stem}_{s.split}" if s.split else stem)
        if s.name and s.name in seen:
            raise ConfigError(f"data.{key}[{i}].name: {s.name!r} is used twice; names must be unique")
        name, k = base, 2
        while name in seen:
            name, k = f"{base}_{k}", k + 1
        seen.add(name)
        names.append(name)
    return names


def mixture_plan(sizes: Sequence[int], weights: Sequence[float | None], counts: Sequence[int | None]) -> list[int]:
    """How many examples each source contributes per epoch (see the module docstring)."""
    weighted = [i for i, w in enumerate(weights) if w is not None]
    pool = sum(sizes[i] for i in weighted)
    total_w = sum(weights[i] for i in weighted)
    plan = []
    for i, n in enumerate(sizes):
        if counts[i] is not None:
            plan.append(counts[i] if n else 0)
        elif weights[i] is not None:
            plan.append(round(pool * weights[i] / total_w) if n else 0)
        else:
            plan.append(n)
    return plan


def mixture_index(sizes: Sequence[int], plan: Sequence[int], seed: int) -> np.ndarray:
    """[E, 2] (source, row) of the epoch's examples: per source, seeded permutations laid end to end, cut at
    its planned number (no example repeats before every example of its source was drawn)."""
    rng = np.random.default_rng(seed)
    parts = []
    for s, (n, k) in enumerate(zip(sizes, plan, strict=True)):
        if not k:
            continue
        rows = np.concatenate([rng.permutation(n) for _ in range(-(-k // n))])[:k]
        parts.append(np.stack([np.full(k, s), rows], 1))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


class MixedSet(Sequence):
    """The training examples of a mixture: item ``i`` is row ``index[i, 1]`` of source ``index[i, 0]``."""

    def __init__(self, parts: list[TokenizedSet], index: np.ndarray):
        self.parts, self.index = parts, index
        self.lengths = np.zeros(len(index), dtype=np.int64)
        for s, p in enumerate(parts):  # the length column, gathered per source (no item is decoded)
            at = index[:, 0] == s
            self.lengths[at] = p.lengths[index[at, 1]]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        s, r = self.index[i]
        return self.parts[int(s)][int(r)]

    def __iter__(self) -> Iterator:
        for i in range(len(self)):
            yield self[i]


@dataclass
class RunData:
    """What the trainer trains and evaluates on, and the counts it reports."""

    train: Sequence
    eval_sets: dict[str, TokenizedSet] = field(default_factory=dict)
    driver: str | None = None
    """The eval set that early stopping selects on (and whose metrics are the run's ``eval``)."""
    summary: dict = field(default_factory=dict)

    @property
    def eval(self) -> Sequence:
        return self.eval_sets[self.driver] if self.driver is not None else []

    def evaluate(self, evaluate_one: Callable[[Sequence], dict]) -> dict:
        """The driving set's metrics; with several sets, every set's under ``sets`` (logged apart)."""
        if not self.eval_sets:
            return {}
        results = {name: evaluate_one(items) for name, items in self.eval_sets.items()}
        out = dict(results[self.driver])
        if len(results) > 1:
            out["sets"] = results
        return out


def train_lengths(task, items: Sequence) -> Sequence[int]:
    """The length column when the items are stored (no item is decoded), else one length per item."""
    lengths = getattr(items, "lengths", None)
    return lengths.tolist() if lengths is not None else [task.length(p) for p in items]


def _stats(ts: TokenizedSet, report: SkipReport) -> dict:
    return {"examples": len(ts), "records": ts.meta.get("records"), "invalid": report.summary()["by_reason"],
            "skipped": report.total, "truncation": ts.truncation, "cached": ts.meta.get("cached", False)}


def load_run_data(cfg: RunConfig, task, renderer, encoder, report: SkipReport, progress: bool = True) -> RunData:
    """Tokenize (or read from the cache) every training source and eval set of ``cfg``."""
    t0 = time.perf_counter()
    train_splits, eval_splits = _as_list(cfg.data.train), _as_list(cfg.data.eval)
    train_names, eval_names = source_names(train_splits, "train"), source_names(eval_splits, "eval")
    es = cfg.train.early_stopping
    driver = es.eval_set if es is not None and es.eval_set is not None else (eval_names[0] if eval_names else None)
    if driver is not None and driver not in eval_names:
        raise ConfigError(f"train.early_stopping.eval_set: {driver!r} is not a data.eval set; known: "
                          f"{', '.join(eval_names)}")

    def load(split: SplitConfig, name: str) -> tuple[TokenizedSet, dict]:
        local = SkipReport(max_examples=report.max_examples)
        ts = load_tokenized(split, cfg.data, task, renderer, encoder, local, name=name, progress=progress)
        report.skipped.update(local.skipped)
        report.examples.extend(local.examples[:max(0, report.max_examples - len(report.examples))])
        return ts, _stats(ts, local)

    parts, sources = [], []
    for split, name in zip(train_splits, train_names, strict=True):
        ts, stats = load(split, name)
        parts.append(ts)
        sources.append({"name": name, "path": split.path, **stats})
    mixed = len(train_splits) > 1 or any(s.weight is not None or s.count is not None for s in train_splits)
    train: Sequence = parts[0] if parts else []
    if mixed:
        sizes = [len(p) for p in parts]
        plan = mixture_plan(sizes, [s.weight for s in train_splits], [s.count for s in train_splits])
        train = MixedSet(parts, mixture_index(sizes, plan, cfg.train.seed))
        for src, k in zip(sources, plan, strict=True):
            src["used"] = k
        log.info("mixture: %s", ", ".join(f"{s['name']} {s['used']} of {s['examples']}" for s in sources))
    eval_sets, eval_stats = {}, {}
    for split, name in zip(eval_splits, eval_names, strict=True):
        eval_sets[name], eval_stats[name] = load(split, name)
    summary = {"sources": sources, "eval_sets": eval_stats, "load_seconds": round(time.perf_counter() - t0, 2)}
    return RunData(train=train, eval_sets=eval_sets, driver=driver, summary=summary)
