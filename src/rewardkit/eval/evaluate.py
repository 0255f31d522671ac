"""Evaluate a saved reward model on a file of pairs: load, score, measure, and fit normalisation statistics.

Kept apart from the metrics (pure functions) and the report (figures and HTML): this is the one place that
touches data files and the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from ..config import DataConfig, SplitConfig
from ..data.dataset import encode_pairs
from ..data.errors import DataError, SkipReport
from ..data.formats import Pair, Text, parse_pairs
from ..data.readers import Record, read_records
from ..models.reward_model import ModelMeta
from ..serve.scorer import Scorer, resolve_model_dir
from .metrics import distribution, pair_calibration, pairwise_breakdown, pairwise_report

log = logging.getLogger(__name__)


@dataclass
class PairEvaluation:
    """Rewards and metrics for every scored pair, in file order (pairs dropped by the over-length policy
    are counted in ``metrics["truncation"]`` and absent here)."""

    data: str
    """What was evaluated: ``path[start:stop]``."""
    pairs: list[Pair]
    r_chosen: np.ndarray
    r_rejected: np.ndarray
    chosen_len: np.ndarray
    """Response lengths in characters (the unit of the length-bias metrics)."""
    rejected_len: np.ndarray
    metrics: dict
    groups: list[str] | None = None
    """The ``by`` column's value per pair, when a breakdown was asked for."""
    normalization: dict | None = None
    extra: dict = field(default_factory=dict)


def text_of(value: Text) -> str:
    """Plain text for display: messages become ``role: content`` lines."""
    if isinstance(value, str):
        return value
    return "\n".join(f"{m['role']}: {m['content']}" for m in value)


def _capture_column(records: Iterable[Record], column: str, out: dict[str, str]) -> Iterator[Record]:
    for rec in records:
        if column not in rec.data:
            raise DataError(rec.source, rec.line, column, f"missing; the breakdown `--by {column}` needs this "
                            "column in every record", "missing_field")
        out[rec.where] = str(rec.data[column])
        yield rec


def load_pairs_with_column(split: SplitConfig, data: DataConfig, report: SkipReport,
                           by: str | None) -> tuple[list[Pair], dict[str, str]]:
    """Pairs of ``split`` and, when ``by`` is given, that column's value per record (keyed by ``where``)."""
    groups: dict[str, str] = {}
    records: Iterable[Record] = islice(read_records(split.path, data.on_invalid, report), split.start, split.stop)
    if by:
        records = _capture_column(records, by, groups)
    pairs = list(parse_pairs(records, data.fields, data.on_invalid, report))
    if not pairs:
        raise DataError(split.path, None, None, "no usable pairs (the file or the row range is empty)", "empty")
    return pairs, groups


def _normalized_view(r_c: np.ndarray, r_r: np.ndarray, norm: dict) -> dict:
    """Reward distributions, margin and calibration after ``(r - mean) / std``: accuracy and AUC do not change
    under this map, but margins and calibration of sigmoid(difference) do."""
    c, r = (r_c - norm["mean"]) / norm["std"], (r_r - norm["mean"]) / norm["std"]
    cal = pair_calibration(c, r)
    return {"statistics": norm, "rewards": {"chosen": distribution(c), "rejected": distribution(r),
                                            "all": distribution(np.r_[c, r])},
            "mean_margin": float((c - r).mean()), "ece": cal["ece"], "brier": cal["brier"]}


def evaluate_pair_file(scorer: Scorer, split: SplitConfig, data: DataConfig | None = None, *, by: str | None = None,
                       n_boot: int = 1000, seed: int = 0, show_progress: bool = False) -> PairEvaluation:
    """Score every pair of ``split`` with ``scorer`` and compute :func:`pairwise_report` (plus a breakdown by
    column ``by`` and the normalised view when the model carries normalisation statistics)."""
    data = data or DataConfig()
    report = SkipReport()
    scorer.encoder.stats.counts.clear()
    parsed, group_of = load_pairs_with_column(split, data, report, by)
    by_where = {p.where: p for p in parsed}
    encoded = encode_pairs(parsed, scorer.renderer, scorer.encoder)
    if not encoded:
        raise DataError(split.path, None, None, "every pair was dropped by the over-length policy", "empty")
    seqs = [p.chosen for p in encoded] + [p.rejected for p in encoded]
    from tqdm.auto import tqdm

    with tqdm(total=len(seqs), desc="score", unit="seq", disable=not show_progress, dynamic_ncols=True) as bar:
        rewards = np.asarray(scorer.score_encoded(seqs, bar.update), dtype=np.float64)
    n = len(encoded)
    r_c, r_r = rewards[:n], rewards[n:]
    len_c = np.array([p.chosen_chars for p in encoded], dtype=np.float64)
    len_r = np.array([p.rejected_chars for p in encoded], dtype=np.float64)
    metrics = pairwise_report(r_c, r_r, len_c, len_r, n_boot=n_boot, seed=seed)
    groups = [group_of[p.where] for p in encoded] if by else None
    if groups is not None:
        metrics["by"] = {"column": by, "groups": pairwise_breakdown(r_c, r_r, groups, n_boot=n_boot, seed=seed)}
    norm = scorer.meta.normalization
    if norm:
        metrics["normalized"] = _normalized_view(r_c, r_r, norm)
    where = f"{split.path}[{split.start}:{'' if split.stop is None else split.stop}]"
    metrics["data"] = {"source": where, "pairs_read": len(parsed), "pairs_scored": n}
    metrics["invalid"] = report.summary()
    metrics["truncation"] = scorer.encoder.stats.summary()
    return PairEvaluation(data=where, pairs=[by_where[p.where] for p in encoded], r_chosen=r_c, r_rejected=r_r,
                          chosen_len=len_c, rejected_len=len_r, metrics=metrics, groups=groups, normalization=norm)


def attach_normalization(ev: PairEvaluation, norm: dict) -> None:
    """Show ``norm`` (e.g. just fitted) in ``ev``'s metrics and report."""
    ev.normalization = norm
    ev.metrics["normalized"] = _normalized_view(ev.r_chosen, ev.r_rejected, norm)


def fit_normalization(rewards: np.ndarray | list[float], fitted_on: str) -> dict:
    """Mean and standard deviation of the rewards (chosen and rejected pooled) so that normalised rewards
    ``(r - mean) / std`` have mean 0 and std 1 on this set, whatever scale training drifted to."""
    r = np.asarray(rewards, dtype=np.float64)
    if len(r) < 2:
        raise ValueError("fitting normalisation needs at least two rewards")
    std = float(r.std())
    if not std > 0:
        raise ValueError("every reward is the same: the standard deviation is 0, nothing to normalise by")
    return {"mean": float(r.mean()), "std": std, "fitted_on": fitted_on, "n": len(r)}


def save_normalization(model_path: str | Path, norm: dict) -> Path:
    """Store ``norm`` in the model's ``rewardkit.json`` (``Scorer.normalize`` and the server read it there)."""
    directory = resolve_model_dir(model_path)
    meta = ModelMeta.load(directory)
    meta.normalization = norm
    meta.save(directory)
    log.info("normalisation mean %.4f std %.4f (n=%d) saved to %s", norm["mean"], norm["std"], norm["n"],
             directory)
    return directory


def training_log_for(model_path: str | Path) -> Path | None:
    """``metrics.jsonl`` of the run that produced the model: in the model directory or its run directory."""
    directory = resolve_model_dir(model_path)
    if (directory / "metrics.jsonl").is_file():
        return directory / "metrics.jsonl"
    run = directory.parent  # a run directory: RUN/model, RUN/config.yaml, RUN/metrics.jsonl
    if (run / "metrics.jsonl").is_file() and (directory.name == "model" or (run / "config.yaml").is_file()):
        return run / "metrics.jsonl"
    return None
