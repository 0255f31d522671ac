"""Metrics of a process reward model: step-level, earliest-error (ProcessBench) and best-of-N.

Inputs are per-solution lists: ``scores[i]`` the step scores of solution i (P(step is right), in [0, 1]),
``labels[i]`` its step labels (1, 0 or None: unlabelled steps are left out of the step metrics).

* **Step level**: accuracy (a step is predicted right when its score > ``threshold``), AUC of the score for
  right steps, and F1 of the *wrong* class (the rare one a PRM exists to find), plus the right class's F1.
* **Earliest error** (ProcessBench, Zheng et al. 2024, arXiv 2412.06559): the predicted earliest error is the
  first step scored <= ``threshold`` (none when no step is). Accuracy on erroneous solutions (the predicted
  index equals the first step labelled 0), on correct ones (no error predicted, every step labelled 1), and
  their harmonic mean. A solution whose labels leave the earliest error unknown (a null before its first 0,
  or nulls and no 0) is left out and counted. ``chance`` is what guessing uniformly among "no error" and each
  step scores on the same solutions.
* **Best-of-N**: per problem (several solutions, each with a correctness flag), pick the solution with the
  highest aggregate reward; selection accuracy is the share of problems where the pick is right (ties count
  fractionally). ``majority_vote`` picks the most common final answer (when answers are given), ``oracle``
  is the share of problems with at least one right solution, ``random`` the expected accuracy of a random pick.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence

import numpy as np

from ..models.step_readout import AGGREGATES, aggregate
from .metrics import auc


def _num(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def step_level_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int | None]],
                       threshold: float = 0.5) -> dict:
    """Accuracy, AUC and F1 over every labelled step."""
    s, y = [], []
    for sc, lab in zip(scores, labels, strict=True):
        for v, t in zip(sc, lab, strict=True):
            if t is not None:
                s.append(v)
                y.append(t)
    if not s:
        return {"steps": 0}
    s_arr, y_arr = np.asarray(s, dtype=np.float64), np.asarray(y, dtype=bool)
    pred = s_arr > threshold

    def f1(pos_pred: np.ndarray, pos: np.ndarray) -> float | None:
        tp, fp, fn = int((pos_pred & pos).sum()), int((pos_pred & ~pos).sum()), int((~pos_pred & pos).sum())
        return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None

    return {"steps": len(s), "wrong_steps": int((~y_arr).sum()), "step_accuracy": float((pred == y_arr).mean()),
            "step_auc": _num(auc(s_arr, y_arr)), "step_f1_wrong": f1(~pred, ~y_arr), "step_f1_right": f1(pred, y_arr)}


def true_earliest_error(labels: Sequence[int | None]) -> int | None | str:
    """Index of the first wrong step, -1 when every step is right, or ``"unknown"`` when labels do not say."""
    for i, t in enumerate(labels):
        if t is None:
            return "unknown"
        if t == 0:
            return i
    return -1


def predicted_earliest_error(scores: Sequence[float], threshold: float = 0.5) -> int:
    return next((i for i, v in enumerate(scores) if v <= threshold), -1)


def _hm(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def earliest_error_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int | None]],
                           threshold: float = 0.5) -> dict:
    """ProcessBench-style earliest-error identification."""
    hit_err = n_err = hit_ok = n_ok = unknown = 0
    chance_err = chance_ok = 0.0
    for sc, lab in zip(scores, labels, strict=True):
        truth = true_earliest_error(lab)
        if truth == "unknown":
            unknown += 1
            continue
        pred = predicted_earliest_error(sc, threshold)
        if truth == -1:
            n_ok += 1
            hit_ok += pred == -1
            chance_ok += 1 / (len(sc) + 1)
        else:
            n_err += 1
            hit_err += pred == truth
            chance_err += 1 / (len(sc) + 1)
    acc_err = hit_err / n_err if n_err else None
    acc_ok = hit_ok / n_ok if n_ok else None
    c_err = chance_err / n_err if n_err else None
    c_ok = chance_ok / n_ok if n_ok else None
    return {"erroneous": n_err, "correct": n_ok, "unknown_first_error": unknown, "accuracy_erroneous": acc_err,
            "accuracy_correct": acc_ok, "f1": _hm(acc_err, acc_ok),
            "chance": {"accuracy_erroneous": c_err, "accuracy_correct": c_ok, "f1": _hm(c_err, c_ok)}}


def _pick_accuracy(values: Sequence[float], correct: Sequence[bool]) -> float:
    """Share of right solutions among those tied at the highest value (the expected accuracy of the pick)."""
    best = max(values)
    tied = [c for v, c in zip(values, correct, strict=True) if v == best]
    return sum(tied) / len(tied)


def _majority(answers: Sequence[Hashable], correct: Sequence[bool]) -> float:
    counts = Counter(answers)
    top = max(counts.values())
    return _pick_accuracy([counts[a] if counts[a] == top else -1 for a in answers], correct)


def best_of_n_metrics(scores: Sequence[Sequence[float]], correct: Sequence[bool | None], groups: Sequence[Hashable],
                      answers: Sequence[Hashable | None] | None = None) -> dict:
    """Selection accuracy of each aggregate, against majority vote, oracle and random picks."""
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for i, (g, c) in enumerate(zip(groups, correct, strict=True)):
        if c is not None:
            by_group[g].append(i)
    problems = [idx for idx in by_group.values() if len(idx) >= 2]
    if not problems:
        return {"problems": 0}
    out: dict = {"problems": len(problems), "solutions_per_problem": float(np.mean([len(p) for p in problems]))}
    for how in AGGREGATES:
        acc = [_pick_accuracy([aggregate(scores[i], how) for i in p], [bool(correct[i]) for i in p])
               for p in problems]
        out[how] = float(np.mean(acc))
    have_answers = answers is not None and all(answers[i] is not None for p in problems for i in p)
    out["majority_vote"] = (float(np.mean([_majority([answers[i] for i in p], [bool(correct[i]) for i in p])
                                           for p in problems])) if have_answers else None)
    out["oracle"] = float(np.mean([any(correct[i] for i in p) for p in problems]))
    out["random"] = float(np.mean([np.mean([bool(correct[i]) for i in p]) for p in problems]))
    return out


def step_metrics(scores: Sequence[Sequence[float]], labels: Sequence[Sequence[int | None]],
                 correct: Sequence[bool | None] | None = None, groups: Sequence[Hashable] | None = None,
                 answers: Sequence[Hashable | None] | None = None, threshold: float = 0.5) -> dict:
    """Every PRM metric at once: ``step`` level, ``earliest_error`` and (with flags and groups) ``best_of_n``."""
    out = {"solutions": len(scores), "step": step_level_metrics(scores, labels, threshold),
           "earliest_error": earliest_error_metrics(scores, labels, threshold)}
    if correct is not None and groups is not None and any(c is not None for c in correct):
        out["best_of_n"] = best_of_n_metrics(scores, correct, groups, answers)
    return out


def flat_step_metrics(m: dict) -> dict:
    """:func:`rewardkit.eval.step_metrics.step_metrics` as one flat mapping of numbers (logs, early stopping)."""
    out = {"solutions": m["solutions"], **m["step"]}
    ee = m["earliest_error"]
    out.update({f"earliest_error_{k}": v for k, v in ee.items() if k != "chance"})
    out.update({f"earliest_error_chance_{k}": v for k, v in ee["chance"].items()})
    for k, v in (m.get("best_of_n") or {}).items():
        out[f"best_of_n_{k}"] = v
    return out
