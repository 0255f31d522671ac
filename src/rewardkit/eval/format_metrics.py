"""One metric table per data format: what each format's numbers are called and which way is better.

Read by the training tasks (``Task.primary``: the progress bar's held-out metric; ``Task.selection_metric``:
what ``train.early_stopping`` selects on by default), by ``rewardkit eval`` (``headline``: the metrics given
bootstrap intervals; ``summary``: the lines it prints) and by early stopping (``lower_is_better``: its
``mode: auto``). A new format adds one row here (docs/architecture.md, "to add a format").
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER_IS_BETTER = frozenset({"loss", "mse", "rmse", "mae", "ece", "brier"})
"""Metrics that are minimised (losses and errors); every other metric is maximised."""


def lower_is_better(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


@dataclass(frozen=True)
class FormatMetrics:
    primary: str
    """The headline held-out metric of a training run on this format."""
    selection: str
    """What ``train.early_stopping`` selects on with ``metric: auto``."""
    headline: tuple[str, ...] = ()
    """``rewardkit eval``: the metrics given 95% bootstrap intervals (pairs: ``eval.metrics.pairwise_report``)."""
    summary: tuple[str, ...] = ()
    """``rewardkit eval``: the metrics its text summary prints, in order (pairs have their own layout)."""


FORMAT_METRICS: dict[str, FormatMetrics] = {
    "pairs": FormatMetrics("accuracy", "accuracy"),
    # accuracy at a fixed threshold is coarse on a small dev split: select on the threshold-free AUC
    "binary": FormatMetrics("accuracy", "auc", ("accuracy", "auc", "f1"),
                            ("accuracy", "precision", "recall", "f1", "auc", "ece", "brier")),
    "scalar": FormatMetrics("pearson", "pearson", ("pearson", "spearman", "rmse"),
                            ("mse", "rmse", "pearson", "spearman")),
    "multi": FormatMetrics("pearson", "pearson", ("pearson", "spearman", "rmse"),
                           ("mse", "rmse", "pearson", "spearman")),
    "ranked": FormatMetrics("pair_accuracy", "pair_accuracy", ("kendall_tau", "spearman", "top1_accuracy"),
                            ("kendall_tau", "spearman", "top1_accuracy")),
    # step_auc: threshold-free, and defined on every labelled step
    "steps": FormatMetrics("earliest_error_f1", "step_auc"),
}


def format_metrics(fmt: str) -> FormatMetrics:
    """The row of ``fmt``; a format without one is a programming error, said plainly."""
    try:
        return FORMAT_METRICS[fmt]
    except KeyError:
        raise ValueError(f"no metric table for data format {fmt!r} (eval/format_metrics.py lists "
                         f"{', '.join(FORMAT_METRICS)})") from None
