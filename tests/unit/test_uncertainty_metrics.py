"""Uncertainty metrics of an ensemble on pairs (eval/uncertainty.py), on hand-built head rewards."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewardkit.eval.uncertainty import accuracy_by_quantile, pair_uncertainty, uncertainty_report


def _pairs():
    """8 pairs, 3 heads (rejected rewards all 0, so the chosen rewards are the margins). The 4 right pairs have
    heads that agree; the 4 wrong ones (mean margin < 0) have heads that disagree, more for later pairs."""
    right = [[1.0, 1.1, 0.9], [2.0, 2.0, 2.1], [0.5, 0.6, 0.4], [1.5, 1.4, 1.6]]
    wrong = [[-2.0, 1.0, -1.0], [-3.0, 2.0, -2.0], [-4.0, 3.0, -2.0], [-5.0, 4.0, -3.0]]
    c = np.array(right + wrong)
    return c, np.zeros_like(c)


def test_std_that_is_high_exactly_on_the_wrong_pairs_has_auroc_one():
    c, r = _pairs()
    rep = uncertainty_report(c, r, "mean", n_boot=50)
    assert rep["accuracy"] == 0.5 and rep["auroc_std"] == 1.0
    assert [q["accuracy"] for q in rep["by_quantile"]] == [1.0, 1.0, 0.0, 0.0]  # lowest std first
    assert rep["auroc_std_ci"][0] is not None and rep["auroc_std_ci"][0] <= 1.0


def test_std_is_the_population_std_of_the_head_margins_and_probabilities_average_the_heads():
    c = np.array([[1.0, 3.0]])
    r = np.array([[0.0, 0.0]])
    u = pair_uncertainty(c, r, "mean")
    assert u["std"][0] == pytest.approx(1.0)  # margins 1 and 3
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert u["p_ensemble"][0] == pytest.approx((sig(1.0) + sig(3.0)) / 2)
    assert u["p_single"][0] == pytest.approx(sig(1.0))


def test_the_pair_is_ranked_by_the_chosen_aggregate():
    # chosen heads (3, -1): mean 1 > 0 but min -1 < 0 against rejected (0, 0)
    c, r = np.array([[3.0, -1.0]]), np.zeros((1, 2))
    assert pair_uncertainty(c, r, "mean")["correct"][0] == 1.0
    assert pair_uncertainty(c, r, "min")["correct"][0] == 0.0
    assert pair_uncertainty(c, r, "mean_minus_std", beta=1.0)["correct"][0] == 0.0  # 1 - 2 < 0 - 0


def test_auroc_is_undefined_when_no_pair_is_wrong_and_quantiles_cover_every_pair():
    c, r = np.array([[1.0, 2.0], [3.0, 3.5], [0.2, 0.1]]), np.zeros((3, 2))
    rep = uncertainty_report(c, r, "mean", n_boot=10)
    assert rep["auroc_std"] is None and rep["accuracy"] == 1.0
    q = accuracy_by_quantile(np.array([0.3, 0.1, 0.2, 0.4, 0.5]), np.array([1.0, 1.0, 0.0, 0.0, 1.0]), 2)
    assert [x["count"] for x in q] == [3, 2] and q[0]["std_hi"] == 0.3
    with pytest.raises(ValueError, match="same shape"):
        pair_uncertainty(np.zeros((2, 3)), np.zeros((2, 2)))


def test_head_votes_and_margin_in_units_of_std_flag_wrong_pairs_when_std_grows_with_the_margin():
    # the failure mode measured on hh-rlhf: confident right pairs have the largest spread, so std points the wrong
    # way (AUROC 0); the share of heads voting against the ranking and -|margin|/std still find the wrong pairs
    c = np.array([[10.0, 14.0, 6.0], [8.0, 12.0, 4.0], [-0.1, 0.1, -0.3], [-0.2, 0.05, -0.15]])
    rep = uncertainty_report(c, np.zeros_like(c), "mean", n_boot=20)
    assert rep["accuracy"] == 0.5 and rep["auroc_std"] == 0.0
    assert rep["auroc_disagreement"] == 1.0 and rep["auroc_margin_z"] == 1.0
    u = pair_uncertainty(c, np.zeros_like(c), "mean")
    assert u["disagreement"].tolist() == pytest.approx([0.0, 0.0, 1 / 3, 1 / 3])
    assert u["margin_z"][2] == pytest.approx(-0.1 / np.std([-0.1, 0.1, -0.3]))
    one = pair_uncertainty(np.array([[1.0, 1.0]]), np.zeros((1, 2)), "mean")  # heads agree exactly: sure
    assert one["margin_z"][0] == -np.inf and one["disagreement"][0] == 0.0
