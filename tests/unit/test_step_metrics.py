"""PRM metrics and aggregates, against hand-worked cases; the arithmetic generator's labels."""

import importlib.util
import random
import sys

import pytest

from rewardkit.eval.step_metrics import (
    best_of_n_metrics,
    earliest_error_metrics,
    step_level_metrics,
    true_earliest_error,
)
from rewardkit.models.step_readout import aggregate

from ..conftest import REPO


def _generator():
    spec = importlib.util.spec_from_file_location("prm_arithmetic", REPO / "benchmarks" / "prm_arithmetic.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["prm_arithmetic"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("how, want", [("min", 0.2), ("prod", 0.9 * 0.2 * 0.5), ("last", 0.5), ("mean", 1.6 / 3)])
def test_aggregates(how, want):
    assert aggregate([0.9, 0.2, 0.5], how) == pytest.approx(want)


def test_unknown_aggregate_is_refused():
    with pytest.raises(ValueError, match="step_aggregate"):
        aggregate([0.5], "max")


def test_step_level_metrics_leave_unlabelled_steps_out():
    m = step_level_metrics([[0.9, 0.4, 0.7], [0.6, 0.1]], [[1, 0, None], [0, 0]])
    # labelled: (0.9,1) (0.4,0) (0.6,0) (0.1,0); predictions > 0.5: 1 0 1 0 -> 3 of 4 right
    assert m["steps"] == 4 and m["wrong_steps"] == 3 and m["step_accuracy"] == 0.75
    assert m["step_auc"] == 1.0  # the one right step outscores every wrong one
    # wrong class: predicted wrong {0.4, 0.1}, truly wrong {0.4, 0.6, 0.1}: tp 2, fp 0, fn 1 -> 4/5
    assert m["step_f1_wrong"] == pytest.approx(0.8)
    assert m["step_f1_right"] == pytest.approx(2 / 3)


def test_earliest_error_accuracy_on_erroneous_and_correct_and_their_harmonic_mean():
    scores = [[0.9, 0.3, 0.2],   # truth 1, predicted 1: hit
              [0.9, 0.8, 0.2],   # truth 1, predicted 2: miss
              [0.9, 0.9],        # correct, predicted none: hit
              [0.4, 0.9],        # correct, predicted 0: miss
              [0.9, 0.9]]        # a null before any 0: unknown, left out
    labels = [[1, 0, 0], [1, 0, 0], [1, 1], [1, 1], [None, 0]]
    m = earliest_error_metrics(scores, labels)
    assert (m["erroneous"], m["correct"], m["unknown_first_error"]) == (2, 2, 1)
    assert m["accuracy_erroneous"] == 0.5 and m["accuracy_correct"] == 0.5 and m["f1"] == 0.5
    assert m["chance"]["accuracy_erroneous"] == pytest.approx(0.25) and m["chance"]["accuracy_correct"] == pytest.approx(1 / 3)


def test_true_earliest_error():
    assert true_earliest_error([1, 1, 0, None]) == 2
    assert true_earliest_error([1, 1]) == -1
    assert true_earliest_error([1, None, 1]) == "unknown"


def test_best_of_n_selection_accuracy_per_aggregate_and_majority_vote():
    # problem a: the right solution has the best min but not the best last; problem b: one right of three
    scores = [[0.9, 0.8], [0.3, 0.95],            # a
              [0.2, 0.9], [0.7, 0.6], [0.1, 0.2]]  # b
    correct = [True, False, False, True, False]
    groups = ["a", "a", "b", "b", "b"]
    answers = ["5", "6", "3", "4", "3"]
    m = best_of_n_metrics(scores, correct, groups, answers)
    assert m["problems"] == 2 and m["min"] == 1.0 and m["last"] == 0.0
    assert m["majority_vote"] == pytest.approx((0.5 + 0.0) / 2)  # a: a 1-1 tie of two answers; b: "3" (wrong)
    assert m["oracle"] == 1.0 and m["random"] == pytest.approx((0.5 + 1 / 3) / 2)


def test_generator_labels_come_from_the_exact_checker():
    g = _generator()
    rng = random.Random(3)
    for _ in range(200):
        problem = g.make_problem(rng)
        err = rng.randrange(len(problem.ops))
        steps = g.solve(problem, rng, err, rng.choice(g.ERROR_KINDS))
        labels = g.check_steps(problem, steps)
        # one injected error carries to every later step; the steps before it are right
        assert labels == [1] * err + [0] * (len(steps) - err)
        assert g.check_steps(problem, g.solve(problem, rng)) == [1] * len(steps)


def test_checker_reads_the_step_text_not_the_generator():
    g = _generator()
    problem = g.Problem(2, [("+", 3), ("-", 4)])
    assert g.check_steps(problem, ["2 + 3 = 5", "5 - 4 = 1"]) == [1, 1]
    assert g.check_steps(problem, ["2 + 3 = 6", "6 - 4 = 2"]) == [0, 0]
    # a slip that lands on the true value is still wrong: the step does not start from the previous result
    assert g.check_steps(problem, ["2 + 3 = 6", "6 - 4 = 1"]) == [0, 0]
    assert g.check_steps(problem, ["2 + 3 = 5", "5 - 3 = 2"]) == [1, 0]  # not the problem's number
    with pytest.raises(ValueError, match="not a step"):
        g.check_steps(problem, ["2 + 3 is 5", "5 - 4 = 1"])


def test_single_digit_data_keeps_every_number_in_one_digit_and_labels_exact():
    g = _generator()
    records = g.generate(200, 2, seed=5, single_digit=True)
    assert all(g._single_digit(r["steps"]) for r in records)
    wrong = [r for r in records if r["error_kind"] is not None]
    assert len(wrong) > 100 and {r["error_kind"] for r in wrong} == set(g.ERROR_KINDS)
    assert all(0 in r["labels"] and not r["correct"] for r in wrong)
    assert all(all(r["labels"]) and r["correct"] for r in records if r["error_kind"] is None)
