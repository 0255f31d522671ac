"""Evaluate a saved reward model on a file of pairs: load, score, measure, and fit normalisation statistics.

Kept apart from the metrics (pure functions) and the report (figures and HTML): this is the one place that
touches data files and the model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path

import numpy as np

from ..config import DataConfig, SplitConfig
from ..data.cache import encode_eval_pairs
from ..data.errors import DataError, SkipReport
from ..data.examples import read_examples
from ..data.formats import Example, Format, MultiRated, Pair, Text
from ..data.hf_datasets import pin_revision
from ..data.readers import Record, read_split
from ..data.tokenize import Dropped
from ..models.reward_model import ModelMeta
from ..scoring import Scorer, resolve_model_dir
from .format_metrics import FORMAT_METRICS, format_metrics
from .metrics import (
    binary_metrics,
    bootstrap_ci,
    breakdown,
    distribution,
    multi_attribute_metrics,
    pair_calibration,
    pairwise_breakdown,
    pairwise_report,
    ranked_metrics,
    scalar_metrics,
)
from .uncertainty import uncertainty_report

log = logging.getLogger(__name__)
MISSING = "(not in the record)"
"""Breakdown group of an example an adapter built without a source record of its own."""


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


def load_eval_examples(split: SplitConfig, data: DataConfig, report: SkipReport,
                       by: str | None) -> tuple[Format, list[Example], dict[str, str]]:
    """Typed examples of ``split`` (format from ``data.format`` or detected, adapters applied) and, when ``by``
    is given, that column's value per record keyed by ``where``."""
    groups: dict[str, str] = {}
    records: Iterable[Record] = islice(read_split(split, data.on_invalid, report), split.start, split.stop)
    if by:
        records = _capture_column(records, by, groups)
    fmt, examples = read_examples(replace(split, start=0, stop=None), data, report, records=records)
    if not examples:
        raise DataError(split.path, None, None, f"no usable examples (the file or the row range is empty, or every "
                        f"record was skipped: {dict(report.skipped)})", "empty")
    return fmt, examples, groups


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
    ev = evaluate_file(scorer, split, data, by=by, n_boot=n_boot, seed=seed, show_progress=show_progress)
    if not isinstance(ev, PairEvaluation):
        raise ValueError(f"{split.path}: holds {ev.format} examples, not pairs; use evaluate_file")
    return ev


def _evaluate_pairs(scorer: Scorer, split: SplitConfig, parsed: list[Pair], group_of: dict[str, str] | None,
                    by: str | None, report: SkipReport, n_boot: int, seed: int, show_progress: bool,
                    data: DataConfig | None = None) -> PairEvaluation:
    by_where = {p.where: p for p in parsed}
    encoded = encode_eval_pairs(split, data, parsed, scorer.renderer, scorer.encoder)  # data/cache.py
    if not encoded:
        raise DataError(split.path, None, None, "every pair was dropped by the over-length policy", "empty")
    seqs = [p.chosen for p in encoded] + [p.rejected for p in encoded]
    n = len(encoded)
    rows = scorer.uncertainty_encoded(seqs) if scorer.is_ensemble else None  # the K head rewards as well
    rewards = np.array([r["reward"] for r in rows]) if rows is not None else _score(scorer, seqs, show_progress)
    r_c, r_r = rewards[:n], rewards[n:]
    len_c = np.array([p.chosen_chars for p in encoded], dtype=np.float64)
    len_r = np.array([p.rejected_chars for p in encoded], dtype=np.float64)
    metrics = pairwise_report(r_c, r_r, len_c, len_r, n_boot=n_boot, seed=seed)
    if rows is not None:  # does the ensemble's std know when it is wrong (eval/uncertainty.py)
        k = np.array([r["rewards_k"] for r in rows])
        spec = scorer.model.spec
        metrics["uncertainty"] = uncertainty_report(k[:n], k[n:], scorer.aggregate or spec.ensemble_aggregate,
                                                    scorer.beta if scorer.beta is not None else spec.ensemble_beta,
                                                    n_boot=n_boot, seed=seed)
    if scorer.is_pairwise_judge:  # each pair's rows are its two orders (judge_scoring.py): r_c + r_r is the bias
        # consistency: the same reply wins in both orders (m(x, y) and m(y, x) differ in sign)
        metrics["position_bias"] = {"mean": float(np.mean(r_c + r_r)),
                                    "consistency": float(np.mean((r_c > 0) != (r_r > 0))),
                                    "accuracy_chosen_as_a": float(np.mean(r_c > 0)),
                                    "accuracy_chosen_as_b": float(np.mean(r_r < 0))}
    groups = [group_of.get(p.where, MISSING) for p in encoded] if group_of is not None else None
    if groups is not None:
        metrics["by"] = {"column": by, "groups": pairwise_breakdown(r_c, r_r, groups, n_boot=n_boot, seed=seed)}
    norm = scorer.meta.normalization
    if norm:
        metrics["normalized"] = _normalized_view(r_c, r_r, norm)
    where = _describe(split)
    metrics["data"] = {"source": where, "pairs_read": len(parsed), "pairs_scored": n}
    metrics["invalid"] = report.summary()
    metrics["truncation"] = scorer.encoder.stats.summary()
    return PairEvaluation(data=where, pairs=[by_where[p.where] for p in encoded], r_chosen=r_c, r_rejected=r_r,
                          chosen_len=len_c, rejected_len=len_r, metrics=metrics, groups=groups, normalization=norm)


@dataclass
class ExampleEvaluation:
    """Metrics for binary, scalar, multi-attribute or ranked data (the HTML report covers pairs)."""

    data: str
    format: str
    metrics: dict
    rewards: list = field(default_factory=list)
    """One reward per response (ranked: one list per prompt), for the examples that were scored."""


def _encode_all(scorer: Scorer, items: list[tuple[Text, Text, str]]) -> list:
    """Encoded sequence per (prompt, response, where), or None where the over-length policy dropped it."""
    out = []
    for prompt, response, where in items:
        try:
            out.append(scorer.encoder.encode(scorer.renderer.render(prompt, response), where))
        except Dropped:
            out.append(None)
    return out


def _score(scorer: Scorer, seqs: list, show_progress: bool) -> np.ndarray:
    from tqdm.auto import tqdm

    with tqdm(total=len(seqs), desc="score", unit="seq", disable=not show_progress, dynamic_ncols=True) as bar:
        return np.asarray(scorer.score_encoded(seqs, bar.update), dtype=np.float64)


def _evaluate_multi(scorer: Scorer, examples: list[MultiRated], *, groups: dict[str, str] | None, n_boot: int,
                    seed: int) -> tuple[dict, list]:
    """Multi-attribute ratings: each of the model's K outputs against the rating of the attribute of the same
    name (a missing rating is left out of that attribute, never read as 0), and their mean over attributes as
    the headline. Rated attributes the model has no output for are listed under ``unscored_attributes``."""
    from ..scoring import score_outputs

    spec = scorer.model.spec
    if spec.head != "multi":
        raise ValueError(f"multi-attribute ratings need a multi-attribute model (head multi); this one has head "
                         f"{spec.head!r}: evaluate it on scalar ratings of one attribute instead")
    rated = sorted({a for e in examples for a, v in e.scores.items() if v is not None})
    names = [a for a in spec.attributes or [] if a in rated]
    if not names:
        raise ValueError(f"none of the model's attributes {spec.attributes} is rated in this data (rated: {rated})")
    encoded = _encode_all(scorer, [(e.prompt, e.response, e.where) for e in examples])
    kept = [e for e, x in zip(examples, encoded, strict=True) if x is not None]
    if not kept:
        raise ValueError("every example was dropped by the over-length policy")
    rewards, logits = score_outputs(scorer.model, [x for x in encoded if x is not None],
                                    scorer.tokenizer.pad_token_id, scorer.device, max_batch=scorer.max_batch,
                                    max_tokens=scorer.max_tokens)
    column = {a: k for k, a in enumerate(spec.attributes)}
    pred = {a: logits[:, column[a]].double().numpy() for a in names}
    target = {a: np.array([np.nan if e.scores.get(a) is None else float(e.scores[a]) for e in kept])
              for a in names}

    def metric(idx: np.ndarray) -> dict:
        m = multi_attribute_metrics({a: v[idx] for a, v in pred.items()}, {a: v[idx] for a, v in target.items()})
        return {**m["mean"], "attributes": m["attributes"]}

    n = len(kept)
    out = metric(np.arange(n))
    for key in format_metrics("multi").headline:
        if out.get(key) is not None:
            out[f"{key}_ci"] = bootstrap_ci(lambda i, k=key: _nan(metric(i).get(k)), n, n_boot, seed)
    for a in names:  # per-attribute intervals of the headline correlation
        if out["attributes"][a].get("pearson") is not None:
            out["attributes"][a]["pearson_ci"] = bootstrap_ci(
                lambda i, a=a: _nan(scalar_metrics(pred[a][i], target[a][i]).get("pearson")), n, n_boot, seed)
    out["unscored_attributes"] = [a for a in rated if a not in names]
    out["format"] = "multi"
    out["examples_scored"] = n
    out["examples_dropped"] = len(examples) - n
    if groups is not None:
        names_of = [groups.get(e.where, MISSING) for e in kept]
        out["by"] = {"groups": breakdown(names_of, metric)}
    return out, rewards.double().tolist()


def evaluate_examples(scorer: Scorer, fmt: Format, examples: list[Example], *, groups: dict[str, str] | None = None,
                      n_boot: int = 1000, seed: int = 0, show_progress: bool = False) -> tuple[dict, list]:
    """Metrics for binary labels (reward as the logit of P(label = 1)), scalar ratings (reward against the
    rating), multi-attribute ratings (each attribute output against its rating; :func:`_evaluate_multi`) or
    ranked lists (reward order against the gold ranks, per prompt); bootstrap intervals resample
    examples (ranked: prompts). Examples with a response dropped by the over-length policy are left out."""
    if fmt == "multi":
        return _evaluate_multi(scorer, examples, groups=groups, n_boot=n_boot, seed=seed)
    if fmt not in FORMAT_METRICS or not FORMAT_METRICS[fmt].headline:
        raise ValueError(f"no evaluation for data format {fmt!r}")
    if fmt == "ranked":
        items = [(e.prompt, r, e.where) for e in examples for r in e.responses]
    else:
        items = [(e.prompt, e.response, e.where) for e in examples]
    encoded = _encode_all(scorer, items)
    rewards = _score(scorer, [x for x in encoded if x is not None], show_progress)
    it = iter(rewards.tolist())
    flat = [next(it) if x is not None else None for x in encoded]
    if fmt == "ranked":
        per, kept, start = [], [], 0
        for e in examples:
            rs = flat[start:start + len(e.responses)]
            start += len(e.responses)
            if None not in rs:
                per.append(rs)
                kept.append(e)
        gold = [[-float(r) for r in e.ranks] for e in kept]  # rank 0 is the best: higher gold is better

        def metric(idx: np.ndarray) -> dict:
            return ranked_metrics([per[i] for i in idx], [gold[i] for i in idx])
        scored = per
    else:
        kept = [e for e, r in zip(examples, flat, strict=True) if r is not None]
        scored = [r for r in flat if r is not None]
        r_arr = np.asarray(scored, dtype=np.float64)
        if fmt == "binary":
            y = np.array([e.label for e in kept])

            def metric(idx: np.ndarray) -> dict:
                return binary_metrics(r_arr[idx], y[idx])
        else:
            t = np.array([e.score for e in kept], dtype=np.float64)

            def metric(idx: np.ndarray) -> dict:
                return scalar_metrics(r_arr[idx], t[idx])
    if not kept:
        raise ValueError("every example was dropped by the over-length policy")
    n = len(kept)
    out = metric(np.arange(n))
    for key in FORMAT_METRICS[fmt].headline:
        if out.get(key) is not None:
            out[f"{key}_ci"] = bootstrap_ci(lambda i, k=key: _nan(metric(i).get(k)), n, n_boot, seed)
    out["format"] = fmt
    out["examples_scored"] = n
    out["examples_dropped"] = len(examples) - n
    if groups is not None:
        names = [groups.get(e.where, MISSING) for e in kept]
        out["by"] = {"groups": breakdown(names, metric)}
    return out, scored


def _nan(v) -> float:
    return float("nan") if v is None else float(v)


def evaluate_file(scorer: Scorer, split: SplitConfig, data: DataConfig | None = None, *, by: str | None = None,
                  n_boot: int = 1000, seed: int = 0, show_progress: bool = False) -> PairEvaluation | ExampleEvaluation:
    """Evaluate ``split`` in whatever format it holds: pairs get the full :class:`PairEvaluation` (and the
    HTML report), binary / scalar / ranked data an :class:`ExampleEvaluation`."""
    if scorer.meta.head == "step":  # a process reward model: step-level data and metrics (eval/step_eval.py)
        from .step_eval import evaluate_step_file

        return evaluate_step_file(scorer, split, data)
    data = data or DataConfig()
    report = SkipReport()
    scorer.encoder.stats.counts.clear()
    split = pin_revision(split)  # a Hub branch read, and its pairs keyed in the cache, at one commit
    fmt, examples, group_of = load_eval_examples(split, data, report, by)
    if fmt == "pairs":
        return _evaluate_pairs(scorer, split, examples, group_of if by else None, by, report, n_boot, seed,
                               show_progress, data)
    metrics, scored = evaluate_examples(scorer, fmt, examples, groups=group_of if by else None, n_boot=n_boot,
                                        seed=seed, show_progress=show_progress)
    if by:
        metrics["by"]["column"] = by
    where = _describe(split)
    metrics["data"] = {"source": where, "examples_read": len(examples)}
    metrics["invalid"] = report.summary()
    metrics["truncation"] = scorer.encoder.stats.summary()
    return ExampleEvaluation(data=where, format=fmt, metrics=metrics, rewards=scored)


def _describe(split: SplitConfig) -> str:
    return f"{split.path}[{split.start}:{'' if split.stop is None else split.stop}]"


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
