"""Run a benchmark suite: read the benchmark's own files, score every completion, apply the suite's rules.

DATA is what users have: a ``datasets.save_to_disk`` directory, parquet / JSON / JSONL in the official
columns, or a hub id (when the machine is online). Each (prompt, response) is scored as a ``[user, assistant]``
conversation: through the model's chat template when it has one (as reward-bench does), else rewardkit's plain
format; the result says which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...data.errors import DataError
from ...data.readers import Record, read_records
from .result import SuiteResult
from .rewardbench import score_rewardbench
from .rewardbench2 import score_rewardbench2
from .rmbench import STYLES, score_rmbench

Suite = Literal["rewardbench", "rewardbench2", "rm-bench"]
SUITES: tuple[str, ...] = ("rewardbench", "rewardbench2", "rm-bench")
HUB_SPLIT = {"rewardbench": ("allenai/reward-bench", "filtered"), "rewardbench2": ("allenai/reward-bench-2", "test"),
             "rm-bench": ("THU-KEG/RM-Bench", "train")}


@dataclass
class SuiteRows:
    """A suite's rows flattened: every completion to score, and how the scores go back into the rule."""

    items: list[tuple[object, object]]
    """(prompt, response) for each completion, as [user] / [assistant] messages."""
    assemble: Callable[[np.ndarray, np.ndarray], SuiteResult]
    """(scores of every completion, row indices to use) -> the suite's result."""
    clusters: list[str]
    """Rows that resample together in the bootstrap (a Ties prompt's ref and tied rows), per row."""
    strata: list[str]
    """The subset of each row (the bootstrap resamples within each subset)."""


def read_suite_records(data: str, suite: str) -> list[Record]:
    """Records of a local file or directory, or of the suite's hub data set."""
    p = Path(data)
    if p.exists() or data.startswith("builtin:") or "/" not in data or p.suffix:
        return list(read_records(data))
    import datasets

    name, default_split = HUB_SPLIT[suite]
    repo, _, split = data.partition(":")
    try:
        ds = datasets.load_dataset(repo, split=split or default_split)
    except Exception as e:  # offline or unknown: one line, not the hub client's traceback
        raise FileNotFoundError(f"{data}: not a local file or directory, and the hub data set could not be loaded "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:160]}); e.g. save it with "
                                f"datasets.load_dataset({name!r}, split={default_split!r}).save_to_disk(DIR)") from None
    return [Record(dict(row), data, i) for i, row in enumerate(ds, start=1)]


def _field(rec: Record, name: str, kind: type | tuple[type, ...], what: str):
    value = rec.data.get(name)
    if value is None:
        raise DataError(rec.source, rec.line, name, f"missing; a {what} row needs '{name}'", "missing_field")
    if not isinstance(value, kind):
        raise DataError(rec.source, rec.line, name, f"expected {what}, got {type(value).__name__}", "wrong_type")
    return value


def _user(prompt) -> list[dict]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]


def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _texts(rec: Record, name: str, n: int | None, what: str) -> list[str]:
    value = _field(rec, name, (list, tuple), what)
    if (n is not None and len(value) != n) or not value or not all(isinstance(v, str) for v in value):
        want = f"{n} texts" if n is not None else "a non-empty list of texts"
        raise DataError(rec.source, rec.line, name, f"expected {want}, got {len(value)} items", "wrong_type")
    return list(value)


def rewardbench_rows(records: list[Record], fields) -> SuiteRows:
    items, subsets = [], []
    for rec in records:
        prompt = _field(rec, fields.prompt, (str, list), "text prompt")
        for name in (fields.chosen, fields.rejected):
            items.append((_user(prompt), _assistant(_field(rec, name, str, "text response"))))
        subsets.append(str(_field(rec, "subset", str, "subset name")))

    def assemble(scores: np.ndarray, rows: np.ndarray) -> SuiteResult:
        pairs = scores.reshape(-1, 2)[rows]
        return score_rewardbench([subsets[i] for i in rows], pairs[:, 0], pairs[:, 1])

    return SuiteRows(items, assemble, [str(i) for i in range(len(records))], subsets)


def rewardbench2_rows(records: list[Record], fields) -> SuiteRows:
    items, subsets, ids, num_correct, spans, clusters = [], [], [], [], [], []
    for rec in records:
        prompt = _field(rec, fields.prompt, (str, list), "text prompt")
        completions = _texts(rec, fields.chosen, None, "list of texts") + _texts(rec, fields.rejected, None,
                                                                                   "list of texts")
        spans.append((len(items), len(items) + len(completions)))
        items += [(_user(prompt), _assistant(c)) for c in completions]
        subsets.append(str(_field(rec, "subset", str, "subset name")))
        ids.append(str(_field(rec, "id", (str, int), "row id")))
        k = rec.data.get("num_correct", len(rec.data[fields.chosen]))
        num_correct.append(int(k))
        # a Ties prompt's ref and tied rows resample together (the formula pairs them)
        clusters.append(f"ties:{ids[-1].partition(':')[2]}" if subsets[-1].lower() == "ties" else f"row:{int(rec.line)}")

    def assemble(scores: np.ndarray, rows: np.ndarray) -> SuiteResult:
        per_row = [scores[spans[i][0]:spans[i][1]] for i in rows]
        return score_rewardbench2([subsets[i] for i in rows], _copy_ids(ids, rows), per_row,
                                  [num_correct[i] for i in rows])

    return SuiteRows(items, assemble, clusters, subsets)


def _copy_ids(ids: list[str], rows: np.ndarray) -> list[str]:
    """Row ids for ``rows``, where a bootstrap's k-th copy of a Ties row ``ref:N`` becomes ``ref:N+k*10^9``: the
    copies of one prompt count as separate prompts (each pairing its own ref and tied copy)."""
    seen: dict[int, int] = {}
    out = []
    for i in rows:
        k = seen.get(int(i), 0)
        seen[int(i)] = k + 1
        kind, sep, num = ids[i].partition(":")
        out.append(f"{kind}:{int(num) + k * 10**9}" if k and sep and num.isdigit() else ids[i])
    return out


def rmbench_rows(records: list[Record], fields) -> SuiteRows:
    items, domains = [], []
    n = len(STYLES)
    for rec in records:
        prompt = _field(rec, fields.prompt, (str, list), "text prompt")
        for name in (fields.chosen, fields.rejected):
            items += [(_user(prompt), _assistant(t)) for t in _texts(rec, name, n, f"list of {n} texts")]
        domains.append(str(_field(rec, "domain", str, "domain name")))

    def assemble(scores: np.ndarray, rows: np.ndarray) -> SuiteResult:
        s = scores.reshape(-1, 2, n)[rows]
        return score_rmbench([domains[i] for i in rows], s[:, 0], s[:, 1])

    return SuiteRows(items, assemble, [str(i) for i in range(len(records))], domains)


ROWS = {"rewardbench": rewardbench_rows, "rewardbench2": rewardbench2_rows, "rm-bench": rmbench_rows}


def rendering_of(scorer) -> str:
    """How a [user, assistant] conversation becomes the model's input."""
    user, assistant = [{"role": "user", "content": "x"}], [{"role": "assistant", "content": "y"}]
    if scorer.renderer.uses_chat(user, assistant):
        return "chat template of the model's tokenizer, [user, assistant] per (prompt, response)"
    if scorer.meta.kind == "encoder":
        return "text pair (prompt, response) through the encoder's tokenizer"
    return "rewardkit plain format: '\\n\\nHuman: {prompt}\\n\\nAssistant: {response}' (no chat template)"


def bootstrap_intervals(rows: SuiteRows, scores: np.ndarray, n_boot: int, seed: int) -> dict[str, list[float]]:
    """95% percentile intervals of every section and the overall score, resampling rows within each subset
    (Ties prompts as whole clusters)."""
    if n_boot <= 0:
        return {}
    rng = np.random.default_rng(seed)
    strata: dict[str, dict[str, list[int]]] = {}
    for i, (s, c) in enumerate(zip(rows.strata, rows.clusters, strict=True)):
        strata.setdefault(s, {}).setdefault(c, []).append(i)
    samples: dict[str, list[float]] = {}
    for _ in range(n_boot):
        idx = []
        for clusters in strata.values():
            members = list(clusters.values())
            idx += [i for k in rng.integers(0, len(members), len(members)) for i in members[k]]
        r = rows.assemble(scores, np.asarray(idx))
        for name, v in {**r.sections, "overall": r.overall}.items():
            if v is not None:
                samples.setdefault(name, []).append(v)
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in samples.items()}


def run_suite(scorer, suite: str, data: str, fields, *, n_boot: int = 1000, seed: int = 0,
              show_progress: bool = False) -> SuiteResult:
    """Score ``data`` (the benchmark's own files) with ``scorer`` and compute the suite's figures."""
    if suite not in ROWS:
        raise ValueError(f"unknown suite {suite!r}; use one of {', '.join(SUITES)}")
    records = read_suite_records(data, suite)
    if not records:
        raise DataError(data, None, None, "no rows", "empty")
    rows = ROWS[suite](records, fields)
    seqs = [scorer.encode(p, r) for p, r in rows.items]
    progress = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(seqs), desc=f"scoring {suite}", unit="seq")
        progress = bar.update
    scores = np.asarray(scorer.score_encoded(seqs, progress=progress), dtype=float)
    if show_progress:
        bar.close()
    result = rows.assemble(scores, np.arange(len(records)))
    result.rendering = rendering_of(scorer)
    result.details["intervals"] = bootstrap_intervals(rows, scores, n_boot, seed)
    result.details["completions_scored"] = len(seqs)
    result.details["truncation"] = scorer.encoder.stats.summary()
    inferred = scorer.meta.training.get("inferred") if isinstance(scorer.meta.training, dict) else None
    if inferred:
        result.details["model_inferred"] = inferred
    return result


def format_suite(result: SuiteResult, baseline: SuiteResult | None = None) -> str:
    """A plain-text summary: subsets, sections (with intervals), overall, what is missing, how it rendered."""
    ci = result.details.get("intervals", {})
    lines = [f"{result.suite}: {sum(s['n'] for s in result.subsets.values())} rows; rendering: {result.rendering}"]
    if result.details.get("model_inferred"):
        lines.append("model read as transformers reads it: " + "; ".join(
            f"{k} {v}" for k, v in result.details["model_inferred"].items()))
    lines.append(f"  {'subset':26s} {'n':>6s}  accuracy")
    lines += [f"  {k:26s} {v['n']:6d}  {v['accuracy']:.4f}" for k, v in result.subsets.items()]
    lines.append("sections" + (" (baseline)" if baseline else "") + ", 95% bootstrap intervals:")
    for name, v in {**result.sections, "overall": result.overall}.items():
        if v is None:
            continue
        lo, hi = ci.get(name, (None, None))
        part = " (partial)" if name in result.partial_sections else ""
        base = baseline.sections.get(name) if baseline and name != "overall" else (baseline.overall if baseline
                                                                                   else None)
        lines.append(f"  {name:26s} {v:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None else "")
                     + (f"  (baseline {base:.4f})" if base is not None else "") + part)
    if result.missing_subsets:
        lines.append(f"missing subsets ({len(result.missing_subsets)}): {', '.join(result.missing_subsets)}")
    if result.partial_sections:
        lines.append(f"partial: {', '.join(result.partial_sections)} (computed from the subsets present only)")
    if result.details.get("missing_sections"):
        lines.append(f"missing sections: {', '.join(result.details['missing_sections'])} (no subset in the data; "
                     "the overall is over the sections present, so it is not the full benchmark's)")
    return "\n".join(lines)
