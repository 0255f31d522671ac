"""Every metric against values worked out by hand on small fixtures (the arithmetic is in the comments)."""

import json
import math

import numpy as np
import pytest

from rewardkit.eval.metrics import (
    accuracy_by_length_diff,
    auc,
    binary_metrics,
    bootstrap_ci,
    kendall_tau_b,
    length_bias,
    longer_wins_baseline,
    multi_attribute_metrics,
    pair_calibration,
    pairwise_auc,
    pairwise_breakdown,
    pairwise_metrics,
    pairwise_report,
    pearson,
    rankdata,
    ranked_metrics,
    reliability,
    scalar_metrics,
    spearman,
)


def logit(p):
    return math.log(p / (1 - p))


L88, L62 = logit(0.88), logit(0.62)
# five pairs, rejected all scored 0: differences logit(.88), logit(.88), -logit(.88), logit(.62), 0 (a tie)
CHOSEN = [L88, L88, -L88, L62, 0.0]
REJECTED = [0.0] * 5
CHOSEN_LEN = [100, 50, 10, 300, 40]
REJECTED_LEN = [20, 60, 10, 0, 400]  # length differences 80, -10, 0, 300, -360


def test_ties_are_counted_apart_and_are_not_wins():
    m = pairwise_metrics([2, 1, 0, 3, 1], [1, 1, 1, 0, 2])  # differences 1, 0, -1, 3, -1
    assert m["accuracy"] == pytest.approx(2 / 5)
    assert m["ties"] == 1
    assert m["mean_margin"] == pytest.approx(2 / 5)


def test_rankdata_gives_ties_their_average_rank():
    assert rankdata([10, 20, 10, 30]).tolist() == [1.5, 3.0, 1.5, 4.0]


def test_pearson_spearman_kendall_on_a_three_point_fixture():
    # x = 1,2,3; y = 1,3,2: deviations (-1,0,1) and (-1,1,0): sum of products 1, sums of squares 2 and 2
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert spearman([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    # pairs (0,1) concordant, (0,2) concordant, (1,2) discordant: (2 - 1) / 3
    assert kendall_tau_b([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # tau-b with a tie in x: C=2, D=0, n0=3, one pair tied in x: 2 / sqrt((3-1)(3-0))
    assert kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau_b([1, 1], [1, 2]))


def test_spearman_uses_average_ranks_for_ties():
    # ranks of x = 1, 2.5, 2.5, 4 against 1, 2, 3, 4: deviations (-1.5,0,0,1.5) and (-1.5,-.5,.5,1.5)
    # products 2.25 + 0 + 0 + 2.25 = 4.5; sums of squares 4.5 and 5
    assert spearman([0, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))


def test_auc_counts_ties_half():
    # positives 2, -3, 1 against negatives -1, 0.5: 2 beats both, -3 neither, 1 both: 4 / 6
    assert auc([2, -1, 0.5, -3, 1], [1, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    assert auc([1, 1], [1, 0]) == pytest.approx(0.5)
    assert math.isnan(auc([1, 2], [1, 1]))


def test_pairwise_auc_is_unpaired_and_differs_from_accuracy():
    # every pair is won, but the second prompt's rewards sit far below the first's: the chosen 0 loses to
    # the rejected 9. Chosen (10, 0) vs rejected (9, -1): 10 beats both, 0 beats -1 only: 3 / 4
    assert pairwise_metrics([10, 0], [9, -1])["accuracy"] == 1.0
    assert pairwise_auc([10, 0], [9, -1]) == pytest.approx(3 / 4)
    # on the fixture: chosen above 0 three times (3 x 5 wins), one tie with all five zeros (5 x 0.5): 17.5 / 25
    assert pairwise_auc(CHOSEN, REJECTED) == pytest.approx(0.7)


def test_pair_calibration_ece_brier_and_table_by_hand():
    cal = pair_calibration(CHOSEN, REJECTED)
    # confidences .88 .88 .88 .62 .5, correct 1 1 0 1 0.5 (the tie is half correct)
    # bin [.85,.90): 3 pairs, confidence .88, accuracy 2/3; bin [.60,.65): 1 pair, .62 vs 1; bin [.5,.55): .5 vs .5
    # ECE = 3/5 * |2/3 - .88| + 1/5 * |1 - .62| + 1/5 * 0 = .128 + .076
    assert cal["ece"] == pytest.approx(0.204)
    # Brier = mean((1 - p)^2), p = .88 .88 .12 .62 .5: (.0144 + .0144 + .7744 + .1444 + .25) / 5
    assert cal["brier"] == pytest.approx(1.1976 / 5)
    table = cal["table"]
    assert len(table) == 10 and table[0]["lo"] == 0.5 and table[-1]["hi"] == pytest.approx(1.0)
    assert [row["count"] for row in table] == [1, 0, 1, 0, 0, 0, 0, 3, 0, 0]
    assert table[7]["confidence"] == pytest.approx(0.88) and table[7]["accuracy"] == pytest.approx(2 / 3)
    assert table[0]["accuracy"] == pytest.approx(0.5)
    assert table[1]["accuracy"] is None
    assert "10 equal-width bins" in cal["binning"]


def test_reliability_puts_confidence_one_in_the_last_bin():
    ece, table = reliability([1.0, 0.5], [1.0, 0.0])
    assert table[-1]["count"] == 1 and table[0]["count"] == 1
    assert ece == pytest.approx(0.25)  # 1/2 * |1 - 1| + 1/2 * |0 - .5|


def test_perfectly_calibrated_predictions_have_zero_ece():
    # within each bin accuracy equals confidence: 4 pairs at p = .875 of which one is lost (3/4 != .875), so
    # use 8 pairs at p = .875, 7 won and 1 lost
    d = logit(0.875)
    cal = pair_calibration([d] * 7 + [-d], [0.0] * 8)
    assert cal["ece"] == pytest.approx(0.0, abs=1e-12)


def test_length_buckets_baseline_and_length_bias_by_hand():
    rows = accuracy_by_length_diff(CHOSEN, REJECTED, CHOSEN_LEN, REJECTED_LEN)
    by = {r["bucket"]: r for r in rows}
    assert list(by) == ["[-inf, -300)", "[-300, -100)", "[-100, -20)", "[-20, 20)", "[20, 100)", "[100, 300)",
                        "[300, inf)"]
    assert by["[-inf, -300)"]["pairs"] == 1 and by["[-inf, -300)"]["accuracy"] == 0.0  # the tie
    assert by["[-inf, -300)"]["ties"] == 1
    assert by["[-20, 20)"]["pairs"] == 2 and by["[-20, 20)"]["accuracy"] == 0.5  # -10 (won) and 0 (lost)
    assert by["[20, 100)"]["accuracy"] == 1.0 and by["[300, inf)"]["accuracy"] == 1.0
    assert by["[100, 300)"]["pairs"] == 0 and by["[100, 300)"]["accuracy"] is None

    base = longer_wins_baseline(CHOSEN_LEN, REJECTED_LEN)  # 100>20, 300>0 win; 10=10 tie
    assert base == {"pairs": 5, "accuracy": 2 / 5, "ties": 1}

    lb = length_bias(CHOSEN, REJECTED, CHOSEN_LEN, REJECTED_LEN)
    # decided pairs (unequal length, unequal reward): 0, 1, 3; higher reward on the longer one in 0 and 3
    assert lb["model_prefers_longer"] == pytest.approx(2 / 3)
    assert lb["data_prefers_longer"] == pytest.approx(2 / 4)  # pairs 0, 1, 3, 4: chosen longer in 0 and 3
    rewards, lengths = CHOSEN + REJECTED, CHOSEN_LEN + REJECTED_LEN
    assert lb["reward_pearson"] == pytest.approx(np.corrcoef(rewards, lengths)[0, 1])


def test_length_bias_is_one_when_reward_is_length():
    lb = length_bias([5, 1, 7], [2, 3, 1], [5, 1, 7], [2, 3, 1])
    assert lb["reward_pearson"] == pytest.approx(1.0) and lb["reward_spearman"] == pytest.approx(1.0)
    assert lb["model_prefers_longer"] == 1.0


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    won = np.array([1.0] * 30 + [0.0] * 10)

    def acc(i):
        return float(won[i].mean())

    a = bootstrap_ci(acc, len(won), n_boot=500, seed=3)
    assert a == bootstrap_ci(acc, len(won), n_boot=500, seed=3)
    x = np.linspace(0.0, 1.0, 40) ** 2  # a continuous statistic, so another seed must move the interval

    def mean(i):
        return float(x[i].mean())

    assert bootstrap_ci(mean, 40, n_boot=200, seed=3) != bootstrap_ci(mean, 40, n_boot=200, seed=4)
    assert a[0] < 0.75 < a[1]
    # binomial standard error sqrt(.75 * .25 / 40) = .068: a 95% interval is about +-.13 wide
    assert 0.15 < a[1] - a[0] < 0.4
    assert bootstrap_ci(lambda i: 1.0, 10) == [1.0, 1.0]
    assert bootstrap_ci(lambda i: math.nan, 10) == [None, None]


def test_pairwise_report_headline_numbers_and_json_safe():
    rep = pairwise_report(CHOSEN, REJECTED, CHOSEN_LEN, REJECTED_LEN, n_boot=200)
    assert rep["pairs"] == 5 and rep["wins"] == 3 and rep["ties"] == 1 and rep["losses"] == 1
    assert rep["accuracy"] == pytest.approx(0.6)
    lo, hi = rep["accuracy_ci"]
    assert 0.0 <= lo <= 0.6 <= hi <= 1.0
    assert rep["auc"] == pytest.approx(0.7) and rep["ece"] == pytest.approx(0.204)
    assert rep["margin"]["q50"] == pytest.approx(L62)  # sorted differences -L88, 0, L62, L88, L88
    assert rep["margin"]["min"] == pytest.approx(-L88) and rep["margin"]["max"] == pytest.approx(L88)
    assert rep["longer_wins"]["accuracy"] == pytest.approx(0.4)
    json.dumps(rep, allow_nan=False)  # no NaN tokens in the JSON output


def test_pairwise_breakdown_by_column():
    groups = ["a", "b", "a", "b", "a"]
    out = pairwise_breakdown(CHOSEN, REJECTED, groups, n_boot=50)
    assert set(out) == {"a", "b"}
    # a: pairs 0, 2, 4 -> won, lost, tie; b: pairs 1, 3 -> both won
    assert out["a"]["pairs"] == 3 and out["a"]["accuracy"] == pytest.approx(1 / 3) and out["a"]["ties"] == 1
    assert out["b"]["accuracy"] == 1.0 and out["b"]["accuracy_ci"] == [1.0, 1.0]


def test_ranked_metrics_average_per_prompt_and_top1_ties_lose():
    rewards = [[3, 1, 2], [1, 1], [5]]
    gold = [[3, 2, 1], [1, 2], [1]]
    m = ranked_metrics(rewards, gold)
    # prompt 1: tau = (2 - 1) / 3, Spearman .5, top-1 right; prompt 2: model constant -> tau and rho undefined,
    # and a tie at the top is not a win; prompt 3: a single response, not scored
    assert m["prompts"] == 3 and m["prompts_scored"] == 2
    assert m["kendall_tau"] == pytest.approx(1 / 3)
    assert m["spearman"] == pytest.approx(0.5)
    assert m["top1_accuracy"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="list 0"):
        ranked_metrics([[1, 2]], [[1]])


def test_scalar_and_multi_attribute_metrics_by_hand():
    m = scalar_metrics([1, 2, 3, 4], [1, 3, 2, 5])
    # errors 0, -1, 1, -1: MSE 3/4; Pearson 5.5 / sqrt(5 * 8.75); Spearman on ranks 1,3,2,4: 4 / 5
    assert m["mse"] == pytest.approx(0.75) and m["rmse"] == pytest.approx(math.sqrt(0.75))
    assert m["pearson"] == pytest.approx(5.5 / math.sqrt(5 * 8.75))
    assert m["spearman"] == pytest.approx(0.8)
    multi = multi_attribute_metrics({"help": [1, 2, 3, 4], "safe": [0, 1]},
                                    {"help": [1, 3, 2, 5], "safe": [math.nan, 2]})
    assert multi["attributes"]["safe"]["n"] == 1 and multi["attributes"]["safe"]["mse"] == pytest.approx(1.0)
    assert multi["attributes"]["safe"]["pearson"] is None
    assert multi["mean"]["mse"] == pytest.approx((0.75 + 1.0) / 2)
    assert multi["mean"]["pearson"] == pytest.approx(m["pearson"])
    with pytest.raises(ValueError, match="no predictions"):
        multi_attribute_metrics({}, {"help": [1]})


def test_binary_metrics_by_hand():
    m = binary_metrics([2, -1, 0.5, -3, 1], [1, 0, 0, 1, 1])
    # predictions 1 0 1 0 1: TP 2 (0, 4), FP 1 (2), FN 1 (3), TN 1 (1)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([1.0], [2])


def test_binary_calibration_by_hand():
    m = binary_metrics([L88, L88, -L62, L62], [1, 0, 0, 0])
    # p = .88 .88 .38 .62; predicted 1 1 0 1; confidence .88 .88 .62 .62; correct 1 0 1 0
    # ECE = 1/2 * |.5 - .88| + 1/2 * |.5 - .62|; Brier = (.0144 + .7744 + .1444 + .3844) / 4
    assert m["ece"] == pytest.approx(0.25)
    assert m["brier"] == pytest.approx(1.3176 / 4)
