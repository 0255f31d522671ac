"""Does an ensemble's uncertainty know when the model is wrong? Pure metrics on the K head rewards of pairs.

For pair b, head k's margin is ``d[b, k] = z_chosen[b, k] - z_rejected[b, k]``. The pair is ranked by the
aggregate reward (models/ensemble.py: ``aggregate(z_c) - aggregate(z_r)``), and its uncertainty is the
**population std of the K margins** (the heads' disagreement about this preference, not about each reward's
offset, which pairwise training leaves free).

* ``auroc_std``: AUROC of that std for predicting a wrongly ranked pair (0.5: the std says nothing; exact
  ties of the aggregates are left out). ``auroc_margin`` is the baseline a single model already has: AUROC of
  ``-|d_0|`` (head 0's own margin; a small margin is an unsure pair). The ensemble's std is useful beyond one
  model when it beats that baseline.
* Two read-outs of the same K margins that do not grow with the margin's size (measured: the std alone does,
  so it flags the confident pairs, docs/ensembles.md): ``auroc_disagreement``, AUROC of the share of heads
  whose margin has the other sign than the aggregate's (the heads vote against the ranking), and
  ``auroc_margin_z``, AUROC of ``-|margin| / std`` (the aggregate margin in units of the heads' spread: small
  when the ranking is within the heads' noise; an exact 0 std counts as sure).
* ``by_quantile``: accuracy in equal-count bins of std, lowest uncertainty first.
* calibration: ECE (the 10-bin rule of eval/metrics.py) of the ensemble's preference probability
  ``mean_k sigmoid(d[b, k])`` against a single head's ``sigmoid(d[b, 0])``.

Intervals: percentile bootstrap over pairs (``eval/metrics.bootstrap_ci``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from .metrics import ECE_BINS, auc, bootstrap_ci, reliability, sigmoid


def _aggregate(z: np.ndarray, how: str, beta: float) -> np.ndarray:
    if how == "mean":
        return z.mean(1)
    if how == "min":
        return z.min(1)
    if how == "mean_minus_std":
        return z.mean(1) - beta * z.std(1)
    raise ValueError(f"ensemble aggregate must be mean, min or mean_minus_std, got {how!r}")


def pair_uncertainty(z_chosen: ArrayLike, z_rejected: ArrayLike, how: str = "mean",
                     beta: float = 1.0) -> dict[str, np.ndarray]:
    """Per pair: ``correct`` (1, 0, or 0.5 for a tie of the aggregates), ``std`` of the K margins, ``margin``
    (of the aggregates), ``p_ensemble`` (mean of the heads' sigmoid margins) and ``p_single`` (head 0's)."""
    c, r = np.asarray(z_chosen, dtype=np.float64), np.asarray(z_rejected, dtype=np.float64)
    if c.ndim != 2 or c.shape != r.shape:
        raise ValueError(f"expected two [n, K] arrays of the same shape, got {c.shape} and {r.shape}")
    d = c - r
    margin = _aggregate(c, how, beta) - _aggregate(r, how, beta)
    correct = np.where(margin > 0, 1.0, np.where(margin < 0, 0.0, 0.5))
    p_heads = sigmoid(d.reshape(-1)).reshape(d.shape)  # metrics.sigmoid is 1-D
    std = d.std(1)
    against = (np.sign(d) * np.sign(margin)[:, None] < 0).mean(1)  # heads voting the other way
    z = np.divide(np.abs(margin), std, out=np.full_like(margin, np.inf), where=std > 0)
    return {"correct": correct, "std": std, "margin": margin, "p_ensemble": p_heads.mean(1),
            "p_single": sigmoid(d[:, 0]), "margin_single": d[:, 0], "disagreement": against, "margin_z": -z}


def _auroc_wrong(score: np.ndarray, correct: np.ndarray) -> float:
    """AUROC of ``score`` for a wrongly ranked pair; exact ties of the aggregates (neither right nor wrong)
    are left out. NaN when every pair is right or every pair is wrong."""
    keep = correct != 0.5
    wrong = (correct[keep] == 0).astype(int)
    if wrong.sum() == 0 or wrong.sum() == len(wrong):
        return math.nan
    return float(auc(score[keep], wrong))


def _ece(p: np.ndarray, bins: int) -> float:
    conf = np.maximum(p, 1.0 - p)
    hit = np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5))  # chosen is the truth: p > 0.5 is right
    return reliability(conf, hit, bins)[0]  # the confidence of the predicted winner, as pair_calibration


def accuracy_by_quantile(std: np.ndarray, correct: np.ndarray, quantiles: int = 4) -> list[dict]:
    """Accuracy in ``quantiles`` equal-count bins of std (ascending): lowest uncertainty first."""
    order = np.argsort(std, kind="stable")
    out = []
    for q, idx in enumerate(np.array_split(order, quantiles)):
        if len(idx) == 0:
            continue
        out.append({"quantile": q + 1, "count": int(len(idx)), "std_lo": float(std[idx].min()),
                    "std_hi": float(std[idx].max()), "accuracy": float(correct[idx].mean())})
    return out


def uncertainty_report(z_chosen: ArrayLike, z_rejected: ArrayLike, how: str = "mean", beta: float = 1.0,
                       quantiles: int = 4, bins: int = ECE_BINS, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy of the aggregate and of head 0 alone, AUROC of std (and of the single-head margin baseline)
    for a wrong pair, accuracy by std quantile, ECE of the ensemble probability vs a single head; 95%
    bootstrap intervals on the scalars."""
    u = pair_uncertainty(z_chosen, z_rejected, how, beta)
    n = len(u["correct"])
    single_correct = np.where(u["margin_single"] > 0, 1.0, np.where(u["margin_single"] < 0, 0.0, 0.5))
    stats = {
        "accuracy": lambda i: float(u["correct"][i].mean()),
        "accuracy_single_head": lambda i: float(single_correct[i].mean()),
        "auroc_std": lambda i: _auroc_wrong(u["std"][i], u["correct"][i]),
        "auroc_margin": lambda i: _auroc_wrong(-np.abs(u["margin_single"][i]), single_correct[i]),
        "auroc_disagreement": lambda i: _auroc_wrong(u["disagreement"][i], u["correct"][i]),
        "auroc_margin_z": lambda i: _auroc_wrong(u["margin_z"][i], u["correct"][i]),
        "ece_ensemble": lambda i: _ece(u["p_ensemble"][i], bins),
        "ece_single_head": lambda i: _ece(u["p_single"][i], bins),
    }
    everything = np.arange(n)
    out: dict = {"pairs": n, "heads": int(np.asarray(z_chosen).shape[1]) if n else 0, "aggregate": how,
                 "beta": beta if how == "mean_minus_std" else None}
    for name, stat in stats.items():
        value = stat(everything) if n else math.nan
        out[name] = None if math.isnan(value) else value
        out[f"{name}_ci"] = bootstrap_ci(stat, n, n_boot, seed)
    out["mean_std"] = float(u["std"].mean()) if n else None
    out["by_quantile"] = accuracy_by_quantile(u["std"], u["correct"], quantiles) if n else []
    out["reliability_ensemble"] = _table(u["p_ensemble"], bins) if n else []
    out["reliability_single_head"] = _table(u["p_single"], bins) if n else []
    return out


def _table(p: np.ndarray, bins: int) -> list[dict]:
    conf = np.maximum(p, 1.0 - p)
    return reliability(conf, np.where(p > 0.5, 1.0, np.where(p < 0.5, 0.0, 0.5)), bins)[1]
