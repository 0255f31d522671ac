"""Metrics that show what accuracy hides: ties, margins, separation (AUC), calibration, length bias.

Pure functions on lists or numpy arrays, so they serve every data format (pairs, ranked lists, scalar ratings,
binary labels) without depending on the data types. Conventions:

* A **tie** (equal rewards) is counted apart: it is never a win. ``accuracy = wins / pairs``.
* **AUC** is the Mann-Whitney probability that a random positive outscores a random negative, ties counted
  half. For pairs, positives are all chosen rewards and negatives all rejected rewards, *unpaired*: unlike
  accuracy it drops when rewards drift in scale from prompt to prompt.
* **Calibration** of ``p = sigmoid(r_chosen - r_rejected)`` (the Bradley-Terry probability that the chosen
  response wins): the predicted winner is the higher-scored response, its confidence is ``max(p, 1 - p)``
  in [0.5, 1]; ``ECE_BINS`` equal-width bins of that confidence over [0.5, 1] (the last bin closed);
  ECE = sum over bins of (bin count / N) * |accuracy in bin - mean confidence in bin|. A tie (p = 0.5)
  counts as half correct. Brier = mean((1 - p)^2), the outcome being "chosen wins".
* **Bootstrap** intervals resample the examples with replacement (seeded) and take percentiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..losses import bradley_terry

ECE_BINS = 10
"""Equal-width bins of the predicted winner's confidence over [0.5, 1]: width 0.05."""
LENGTH_DIFF_EDGES = (-300.0, -100.0, -20.0, 20.0, 100.0, 300.0)
"""Bucket edges of len(chosen) - len(rejected) in characters; buckets are [lo, hi), open at the ends."""
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
CALIBRATION_RULE = (f"{ECE_BINS} equal-width bins of the predicted winner's confidence max(p, 1-p) over [0.5, 1]; "
                    "p = sigmoid(reward difference); a tie counts as half correct")

ArrayLike = Sequence[float] | np.ndarray


def _f64(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _num(x: float) -> float | None:
    """JSON-friendly: NaN becomes None (``json.dumps`` would write the invalid token NaN)."""
    x = float(x)
    return None if math.isnan(x) else x


def sigmoid(x: ArrayLike) -> np.ndarray:
    # tanh form: exp(-x) overflows for very negative rewards, tanh does not
    return 0.5 * (1.0 + np.tanh(0.5 * _f64(x)))


# --- ranks and correlations -----------------------------------------------------------------------------------

def rankdata(x: ArrayLike) -> np.ndarray:
    """1-based ranks, tied values sharing their average rank (as ``scipy.stats.rankdata``)."""
    a = _f64(x)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    ranks = np.empty(len(a), dtype=np.float64)
    start = 0
    for end in range(1, len(a) + 1):
        if end == len(a) or sorted_a[end] != sorted_a[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0  # mean of ranks start+1 .. end
            start = end
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation; NaN when either side is constant or there are fewer than two points."""
    a, b = _f64(x), _f64(y)
    if len(a) != len(b):
        raise ValueError(f"pearson: {len(a)} vs {len(b)} values")
    if len(a) < 2:
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum()) / denom if denom > 0 else math.nan


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman rank correlation: Pearson on average ranks (ties handled)."""
    return pearson(rankdata(x), rankdata(y))


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b, ``(C - D) / sqrt((n0 - n1)(n0 - n2))`` with n1, n2 the pairs tied in x, in y.

    O(n^2): meant for the few responses of one prompt. NaN when either side is constant.
    """
    a, b = _f64(x), _f64(y)
    if len(a) != len(b):
        raise ValueError(f"kendall_tau_b: {len(a)} vs {len(b)} values")
    i, j = np.triu_indices(len(a), k=1)
    sa, sb = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n0 = len(i)
    ties_a, ties_b = int((sa == 0).sum()), int((sb == 0).sum())
    denom = math.sqrt((n0 - ties_a) * (n0 - ties_b))
    return float((sa * sb).sum()) / denom if denom > 0 else math.nan


def auc(scores: ArrayLike, labels: Sequence[int] | np.ndarray) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties half (Mann-Whitney U)."""
    s, y = _f64(scores), np.asarray(labels).reshape(-1).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    r = rankdata(s)
    return (float(r[y].sum()) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def pairwise_auc(r_chosen: ArrayLike, r_rejected: ArrayLike) -> float:
    """AUC of chosen (positive) against rejected (negative) rewards, unpaired: see the module docstring."""
    c, r = _f64(r_chosen), _f64(r_rejected)
    return auc(np.concatenate([c, r]), np.r_[np.ones(len(c)), np.zeros(len(r))])


# --- calibration ----------------------------------------------------------------------------------------------

def reliability(confidence: ArrayLike, correct: ArrayLike, bins: int = ECE_BINS, lo: float = 0.5,
                hi: float = 1.0) -> tuple[float, list[dict]]:
    """Expected calibration error and the reliability table over ``bins`` equal-width bins of [lo, hi].

    ``correct`` may be fractional (a tie is 0.5). Empty bins are listed with ``count`` 0 and no accuracy.
    """
    conf, corr = _f64(confidence), _f64(correct)
    if len(conf) == 0:
        return math.nan, []
    width = (hi - lo) / bins
    idx = np.clip(np.floor((conf - lo) / width).astype(int), 0, bins - 1)  # the last bin is closed at hi
    counts = np.bincount(idx, minlength=bins)
    sum_conf = np.bincount(idx, weights=conf, minlength=bins)
    sum_corr = np.bincount(idx, weights=corr, minlength=bins)
    table, ece = [], 0.0
    for b in range(bins):
        n = int(counts[b])
        row = {"lo": lo + b * width, "hi": lo + (b + 1) * width, "count": n, "confidence": None, "accuracy": None}
        if n:
            row["confidence"], row["accuracy"] = sum_conf[b] / n, sum_corr[b] / n
            ece += n / len(conf) * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return float(ece), table


def _pair_confidence(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = sigmoid(diff)
    conf = np.maximum(p, 1.0 - p)
    correct = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))
    return conf, correct


def pair_calibration(r_chosen: ArrayLike, r_rejected: ArrayLike, bins: int = ECE_BINS) -> dict:
    """ECE, Brier score and reliability table of ``sigmoid(r_chosen - r_rejected)`` (binning: module docstring)."""
    diff = _f64(r_chosen) - _f64(r_rejected)
    conf, correct = _pair_confidence(diff)
    ece, table = reliability(conf, correct, bins)
    brier = float(np.mean((1.0 - sigmoid(diff)) ** 2)) if len(diff) else math.nan
    return {"binning": CALIBRATION_RULE, "ece": ece, "brier": brier, "table": table}


# --- bootstrap ------------------------------------------------------------------------------------------------

def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> list[float | None]:
    """Percentile bootstrap interval of ``stat(indices)`` over ``n`` examples resampled with replacement.

    Seeded, so the same data gives the same interval. Resamples where the statistic is undefined (NaN) are
    left out; ``[None, None]`` when none is defined.
    """
    if n == 0 or n_boot <= 0:
        return [None, None]
    rng = np.random.default_rng(seed)
    values = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=np.float64)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return [None, None]
    alpha = (1.0 - level) / 2.0
    return [float(np.quantile(values, alpha)), float(np.quantile(values, 1.0 - alpha))]


# --- pairs ----------------------------------------------------------------------------------------------------

def pairwise_metrics(r_chosen: Sequence[float], r_rejected: Sequence[float]) -> dict:
    """Cheap pairwise metrics, also logged during training.

    ``accuracy = wins / pairs``; ``ties`` are pairs scored exactly equal; ``loss`` is the Bradley-Terry loss.
    """
    n = len(r_chosen)
    if n == 0:
        return {"pairs": 0}
    c = torch.tensor(list(r_chosen), dtype=torch.float64)
    r = torch.tensor(list(r_rejected), dtype=torch.float64)
    diff = c - r
    wins = int((diff > 0).sum())
    ties = int((diff == 0).sum())
    return {
        "pairs": n,
        "accuracy": wins / n,
        "ties": ties,
        "loss": float(bradley_terry(c, r)),
        "mean_margin": float(diff.mean()),
        "mean_reward": float(torch.cat([c, r]).mean()),
        "std_reward": float(torch.cat([c, r]).std()) if 2 * n > 1 else 0.0,
    }


def longer_wins_baseline(chosen_len: Sequence[int], rejected_len: Sequence[int]) -> dict:
    """The "longer response wins" baseline: accuracy of predicting that the longer response is chosen.
    Equal lengths are ties (not wins)."""
    n = len(chosen_len)
    wins = sum(1 for c, r in zip(chosen_len, rejected_len, strict=True) if c > r)
    ties = sum(1 for c, r in zip(chosen_len, rejected_len, strict=True) if c == r)
    return {"pairs": n, "accuracy": wins / n if n else math.nan, "ties": ties}


def distribution(x: ArrayLike) -> dict:
    """Mean, standard deviation (population), min, max and the ``QUANTILES`` of ``x``."""
    a = _f64(x)
    if len(a) == 0:
        return {"n": 0}
    out = {"n": len(a), "mean": float(a.mean()), "std": float(a.std()), "min": float(a.min())}
    for q in QUANTILES:
        out[f"q{round(q * 100):02d}"] = float(np.quantile(a, q))
    out["max"] = float(a.max())
    return out


def _bucket_label(lo: float, hi: float) -> str:
    def f(v: float) -> str:
        return "-inf" if v == -math.inf else "inf" if v == math.inf else f"{v:g}"

    return f"[{f(lo)}, {f(hi)})"


def accuracy_by_length_diff(r_chosen: ArrayLike, r_rejected: ArrayLike, chosen_len: ArrayLike,
                            rejected_len: ArrayLike, edges: Sequence[float] = LENGTH_DIFF_EDGES) -> list[dict]:
    """Accuracy per bucket of ``len(chosen) - len(rejected)``: a length-biased model is right when the chosen
    response is the longer one and wrong when it is the shorter. Buckets are [lo, hi), open at both ends."""
    diff = _f64(r_chosen) - _f64(r_rejected)
    dlen = _f64(chosen_len) - _f64(rejected_len)
    bounds = [-math.inf, *edges, math.inf]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        m = (dlen >= lo) & (dlen < hi)
        n = int(m.sum())
        out.append({"bucket": _bucket_label(lo, hi), "lo": lo if lo != -math.inf else None,
                    "hi": hi if hi != math.inf else None, "pairs": n,
                    "accuracy": float((diff[m] > 0).mean()) if n else None,
                    "ties": int((diff[m] == 0).sum()),
                    "mean_margin": float(diff[m].mean()) if n else None})
    return out


def length_bias(r_chosen: ArrayLike, r_rejected: ArrayLike, chosen_len: ArrayLike, rejected_len: ArrayLike) -> dict:
    """How much the reward follows response length.

    ``reward_pearson`` / ``reward_spearman``: correlation of every response's reward with its length (chosen and
    rejected pooled). ``margin_vs_length_diff_pearson``: of r_c - r_r with len_c - len_r, within pairs.
    ``model_prefers_longer``: among pairs of unequal length and unequal reward, how often the higher reward goes
    to the longer response; ``data_prefers_longer``: how often the chosen response is the longer one.
    """
    c, r, lc, lr = _f64(r_chosen), _f64(r_rejected), _f64(chosen_len), _f64(rejected_len)
    rewards, lengths = np.concatenate([c, r]), np.concatenate([lc, lr])
    unequal = lc != lr
    decided = unequal & (c != r)
    longer_higher = ((c > r) == (lc > lr))[decided]
    return {
        "reward_pearson": _num(pearson(rewards, lengths)),
        "reward_spearman": _num(spearman(rewards, lengths)),
        "margin_vs_length_diff_pearson": _num(pearson(c - r, lc - lr)),
        "model_prefers_longer": float(longer_higher.mean()) if decided.any() else None,
        "data_prefers_longer": float((lc > lr)[unequal].mean()) if unequal.any() else None,
    }


def pairwise_report(r_chosen: ArrayLike, r_rejected: ArrayLike, chosen_len: ArrayLike, rejected_len: ArrayLike,
                    *, n_boot: int = 1000, seed: int = 0, length_unit: str = "characters") -> dict:
    """Everything the eval command reports for pairs, with bootstrap intervals on the headline numbers.

    Intervals (``*_ci``, 95% percentile bootstrap over pairs, seeded) on accuracy, AUC, ECE, mean margin and
    the reward-length correlation.
    """
    c, r, lc, lr = _f64(r_chosen), _f64(r_rejected), _f64(chosen_len), _f64(rejected_len)
    n = len(c)
    if not (len(r) == len(lc) == len(lr) == n):
        raise ValueError(f"pairwise_report: {n} chosen, {len(r)} rejected rewards, {len(lc)}, {len(lr)} lengths")
    if n == 0:
        return {"pairs": 0}
    diff = c - r
    conf, correct = _pair_confidence(diff)
    wins, ties = int((diff > 0).sum()), int((diff == 0).sum())
    base = pairwise_metrics(c.tolist(), r.tolist())
    out = {
        "pairs": n, "accuracy": wins / n, "wins": wins, "ties": ties, "losses": n - wins - ties,
        "accuracy_ci": bootstrap_ci(lambda i: float((diff[i] > 0).mean()), n, n_boot, seed),
        "loss": base["loss"],
        "mean_margin": float(diff.mean()),
        "mean_margin_ci": bootstrap_ci(lambda i: float(diff[i].mean()), n, n_boot, seed),
        "margin": distribution(diff),
        "auc": _num(pairwise_auc(c, r)),
        "auc_ci": bootstrap_ci(lambda i: pairwise_auc(c[i], r[i]), n, n_boot, seed),
        "calibration": pair_calibration(c, r),
        "rewards": {"chosen": distribution(c), "rejected": distribution(r), "all": distribution(np.r_[c, r])},
        "longer_wins": longer_wins_baseline(lc.tolist(), lr.tolist()),
        "length_unit": length_unit,
        "by_length_diff": accuracy_by_length_diff(c, r, lc, lr),
        "length": length_bias(c, r, lc, lr),
    }
    out["ece"] = out["calibration"]["ece"]
    out["ece_ci"] = bootstrap_ci(lambda i: reliability(conf[i], correct[i])[0], n, n_boot, seed)
    out["brier"] = out["calibration"]["brier"]
    lengths = np.r_[lc, lr]
    out["length"]["reward_pearson_ci"] = bootstrap_ci(
        lambda i: pearson(np.r_[c[i], r[i]], np.r_[lc[i], lr[i]]), n, n_boot, seed) \
        if np.ptp(lengths) > 0 else [None, None]
    return out


def breakdown(groups: Sequence, metric: Callable[[np.ndarray], dict]) -> dict[str, dict]:
    """``metric(indices)`` for the examples of each group value (RewardBench-style per-subset numbers)."""
    keys = [str(g) for g in groups]
    out: dict[str, dict] = {}
    for key in sorted(set(keys)):
        out[key] = metric(np.array([i for i, k in enumerate(keys) if k == key], dtype=np.int64))
    return out


def pairwise_breakdown(r_chosen: ArrayLike, r_rejected: ArrayLike, groups: Sequence, *, n_boot: int = 1000,
                       seed: int = 0) -> dict[str, dict]:
    """Accuracy (with interval), ties, mean margin and AUC for each value of a column."""
    c, r = _f64(r_chosen), _f64(r_rejected)

    def metric(idx: np.ndarray) -> dict:
        d = c[idx] - r[idx]
        return {"pairs": len(idx), "accuracy": float((d > 0).mean()), "ties": int((d == 0).sum()),
                "accuracy_ci": bootstrap_ci(lambda i: float((d[i] > 0).mean()), len(idx), n_boot, seed),
                "mean_margin": float(d.mean()), "auc": _num(pairwise_auc(c[idx], r[idx]))}

    return breakdown(groups, metric)


# --- ranked lists ---------------------------------------------------------------------------------------------

def ranked_metrics(rewards: Sequence[ArrayLike], gold: Sequence[ArrayLike]) -> dict:
    """Per-prompt Kendall tau-b and Spearman between rewards and gold scores (higher = better; pass negated
    ranks if the gold is a rank), averaged over the prompts where they are defined; top-1 accuracy: the
    response the model scores highest, if unique, is one of the gold best (a tie at the top is not a win)."""
    if len(rewards) != len(gold):
        raise ValueError(f"ranked_metrics: {len(rewards)} reward lists but {len(gold)} gold lists")
    taus, rhos, top1 = [], [], []
    for i, (rw, g) in enumerate(zip(rewards, gold, strict=True)):
        a, b = _f64(rw), _f64(g)
        if len(a) != len(b):
            raise ValueError(f"ranked_metrics: list {i} has {len(a)} rewards but {len(b)} gold scores")
        if len(a) < 2:
            continue
        tau, rho = kendall_tau_b(a, b), spearman(a, b)
        if not math.isnan(tau):
            taus.append(tau)
        if not math.isnan(rho):
            rhos.append(rho)
        best = np.flatnonzero(a == a.max())
        top1.append(float(len(best) == 1 and b[best[0]] == b.max()))
    return {"prompts": len(rewards), "prompts_scored": len(top1),
            "kendall_tau": float(np.mean(taus)) if taus else None,
            "spearman": float(np.mean(rhos)) if rhos else None,
            "top1_accuracy": float(np.mean(top1)) if top1 else None}


# --- scalar ratings -------------------------------------------------------------------------------------------

def scalar_metrics(pred: ArrayLike, target: ArrayLike) -> dict:
    """MSE, RMSE, Pearson and Spearman of predictions against ratings; non-finite targets are left out."""
    p, t = _f64(pred), _f64(target)
    if len(p) != len(t):
        raise ValueError(f"scalar_metrics: {len(p)} predictions but {len(t)} targets")
    keep = np.isfinite(t)
    p, t = p[keep], t[keep]
    if len(p) == 0:
        return {"n": 0}
    mse = float(np.mean((p - t) ** 2))
    return {"n": len(p), "mse": mse, "rmse": math.sqrt(mse), "pearson": _num(pearson(p, t)),
            "spearman": _num(spearman(p, t))}


def multi_attribute_metrics(pred: dict[str, ArrayLike], target: dict[str, ArrayLike]) -> dict:
    """:func:`scalar_metrics` per attribute, plus their unweighted mean over attributes."""
    missing = set(target) - set(pred)
    if missing:
        raise ValueError(f"multi_attribute_metrics: no predictions for {sorted(missing)}")
    per = {name: scalar_metrics(pred[name], target[name]) for name in target}
    mean = {}
    for key in ("mse", "rmse", "pearson", "spearman"):
        vals = [m[key] for m in per.values() if m.get(key) is not None]
        mean[key] = float(np.mean(vals)) if vals else None
    return {"attributes": per, "mean": mean}


# --- binary labels --------------------------------------------------------------------------------------------

def binary_metrics(rewards: ArrayLike, labels: Sequence[int] | np.ndarray, threshold: float = 0.0) -> dict:
    """Accuracy, precision, recall, F1 (predict 1 when reward > threshold), AUC, and calibration of
    ``sigmoid(reward)`` as P(label = 1): ECE over ``ECE_BINS`` equal-width bins of the predicted class's
    confidence max(p, 1-p) on [0.5, 1]; Brier = mean((p - label)^2)."""
    s = _f64(rewards)
    y = np.asarray(labels).reshape(-1)
    if len(s) != len(y):
        raise ValueError(f"binary_metrics: {len(s)} rewards but {len(y)} labels")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("binary_metrics: labels must be 0 or 1")
    y = y.astype(bool)
    if len(s) == 0:
        return {"n": 0}
    pred = s > threshold
    tp, fp, fn = int((pred & y).sum()), int((pred & ~y).sum()), int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    p = sigmoid(s)
    # calibration judges sigmoid(reward) itself, so its predicted class is p > 0.5 whatever the threshold
    ece, table = reliability(np.maximum(p, 1 - p), ((p > 0.5) == y).astype(np.float64))
    return {"n": len(s), "accuracy": float((pred == y).mean()), "precision": precision, "recall": recall,
            "f1": f1, "auc": _num(auc(s, y)), "ece": ece, "brier": float(np.mean((p - y) ** 2)),
            "calibration": {"binning": f"{ECE_BINS} equal-width bins of max(p, 1-p) over [0.5, 1]; "
                            "p = sigmoid(reward)", "table": table}}
