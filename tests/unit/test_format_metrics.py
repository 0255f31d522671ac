"""One metric table per format (eval/format_metrics.py) is what tasks, eval and early stopping read."""

import pytest

from rewardkit.config import EarlyStoppingConfig
from rewardkit.eval import format_metrics as fm
from rewardkit.training.early_stopping import selection_metric
from rewardkit.training.step_task import StepTask
from rewardkit.training.tasks import TASKS, BinaryTask, PairTask, RankedTask, ScalarTask


def _task(cls):
    return cls.__new__(cls)  # primary / selection_metric read only the class's format


def test_every_task_reads_its_primary_and_selection_metric_from_its_formats_row():
    for cls in {*TASKS.values(), StepTask}:
        row = fm.FORMAT_METRICS[cls.format]
        assert (_task(cls).primary, _task(cls).selection_metric) == (row.primary, row.selection)
    assert [_task(c).primary for c in (PairTask, BinaryTask, ScalarTask, RankedTask, StepTask)] == \
        ["accuracy", "accuracy", "pearson", "pair_accuracy", "earliest_error_f1"]


def test_no_task_carries_a_higher_is_better_flag_the_direction_comes_from_the_metric():
    for cls in {*TASKS.values(), StepTask}:
        assert not hasattr(cls, "higher_is_better")
    assert fm.lower_is_better("brier") and fm.lower_is_better("loss") and not fm.lower_is_better("auc")
    assert selection_metric(EarlyStoppingConfig(metric="ece"), _task(BinaryTask)) == ("ece", "min")
    assert selection_metric(EarlyStoppingConfig(metric="f1"), _task(BinaryTask)) == ("f1", "max")


def test_a_changed_row_changes_what_the_task_and_early_stopping_use(monkeypatch):
    monkeypatch.setitem(fm.FORMAT_METRICS, "scalar", fm.FormatMetrics("spearman", "rmse", ("spearman",)))
    assert _task(ScalarTask).primary == "spearman"
    assert selection_metric(EarlyStoppingConfig(), _task(ScalarTask)) == ("rmse", "min")


def test_the_eval_summary_prints_the_rows_summary_metrics_in_order():
    from rewardkit.cli import _examples_summary

    m = {"format": "scalar", "examples_scored": 3, "examples_dropped": 0,
         "mse": 0.5, "rmse": 0.7, "pearson": 0.9, "pearson_ci": [0.8, 0.95], "spearman": 0.85}
    lines = _examples_summary(m).splitlines()[1:]
    assert [ln.split()[0] for ln in lines] == list(fm.FORMAT_METRICS["scalar"].summary)
    assert "0.9000 [0.8000, 0.9500]" in lines[2]


def test_a_format_without_a_row_is_named_in_the_error():
    with pytest.raises(ValueError, match="no metric table for data format 'votes'"):
        fm.format_metrics("votes")
