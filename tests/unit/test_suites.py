"""The benchmark suites' scoring rules against values worked out by hand."""

import math

import numpy as np
import pytest

from rewardkit.eval.suites.rewardbench import EXAMPLE_COUNTS, SUBSET_MAPPING, score_rewardbench
from rewardkit.eval.suites.rewardbench2 import best_of_n, score_rewardbench2, ties_score
from rewardkit.eval.suites.rmbench import score_rmbench, style_matrix


def test_rewardbench_math_prm_weighs_as_much_as_all_code():
    code = [s for s in SUBSET_MAPPING["Reasoning"] if s.startswith("hep-")]
    assert EXAMPLE_COUNTS["math-prm"] == sum(EXAMPLE_COUNTS[s] for s in code) == 984


def test_rewardbench_sections_are_count_weighted_and_partial_sections_are_named():
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-easy", "math-prm", "hep-python"]
    chosen = [2.0, 1.0, 3.0, 1.0, 0.0]
    rejected = [1.0, 1.0, 0.0, 0.0, 5.0]  # the second alpacaeval pair is a tie: wrong
    r = score_rewardbench(subsets, chosen, rejected)
    assert r.subsets["alpacaeval-easy"] == {"accuracy": 0.5, "n": 2}
    assert r.subsets["hep-python"] == {"accuracy": 0.0, "n": 1}
    assert r.sections["Chat"] == pytest.approx((0.5 * 100 + 1.0 * 28) / 128)  # 0.609375
    assert r.sections["Reasoning"] == pytest.approx(984 / (984 + 164))
    assert set(r.sections) == {"Chat", "Reasoning"}  # no Chat Hard or Safety subset: left out, not 0
    assert r.partial_sections == ["Chat", "Reasoning"]
    assert r.details["missing_sections"] == ["Chat Hard", "Safety"]
    assert "mt-bench-med" in r.missing_subsets and "alpacaeval-easy" not in r.missing_subsets
    assert len(r.missing_subsets) == 23 - 4
    assert r.overall == pytest.approx((0.609375 + 984 / 1148) / 2)
    assert r.details["overall_with_prior_sets"] is None
    assert r.details["ties"] == 1


def test_rewardbench_prior_sets_enter_the_overall_with_half_weight():
    subsets = ["alpacaeval-easy", "math-prm", "shp", "summarize"]
    r = score_rewardbench(subsets, [1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0])
    # Chat 1.0, Reasoning 0.0, prior sets mean(1, 0) = 0.5 -> (2*1 + 2*0 + 1*0.5) / 5
    assert r.sections["Prior Sets (0.5 weight)"] == 0.5
    assert r.details["overall_without_prior_sets"] == pytest.approx(0.5)
    assert r.overall == r.details["overall_with_prior_sets"] == pytest.approx(2.5 / 5)


def test_rewardbench_full_section_is_not_partial_and_length_categories_pool_pairs():
    subsets = SUBSET_MAPPING["Safety"]
    r = score_rewardbench(subsets, [1.0] * 4 + [0.0], [0.0] * 5)  # donotanswer wrong
    assert "Safety" not in r.partial_sections
    assert r.sections["Safety"] == pytest.approx((100 + 100 + 154 + 250) / (100 + 100 + 154 + 250 + 136))
    cats = r.details["length_categories"]["Safety"]
    assert cats["True"] == {"accuracy": 1.0, "n": 1}  # xstest-should-respond
    assert cats["False"] == {"accuracy": 0.75, "n": 4}


def test_best_of_n_gives_one_over_k_on_a_tie_at_the_maximum():
    assert best_of_n([2.0, 2.0, 1.0]) == 0.5
    assert best_of_n([2.0, 2.0, 2.0, 2.0]) == 0.25
    assert best_of_n([3.0, 1.0, 2.0]) == 1.0
    assert best_of_n([1.0, 3.0, 3.0]) == 0.0


def _ties_rows():
    ids = ["ref:0", "tied:0", "ref:1", "tied:1"]
    scores = [[5, 1, 2], [4, 3, 1, 0], [1, 2], [6, 2, 3]]
    return ids, scores, [1, 2, 1, 2]


def test_ties_formula_by_hand():
    t = ties_score(*_ties_rows())
    # prompt 0: ref gap 5-2=3 (right); tied spread 4-3=1, gap 3-1=2 (right)
    # prompt 1: ref gap 1-2=-1 (wrong); tied spread 6-2=4, gap 2-3=-1 (wrong)
    assert t["ref_accuracy"] == 0.5 and t["tied_accuracy"] == 0.5
    assert t["correctness_preferred"] == 0.5  # 2 > 1 yes, -1 > 4 no
    assert t["correctness_preferred_hard"] == 0.5  # min(3, 2) = 2 > 1 yes, -1 > 4 no
    margin = (math.tanh(2 / 1 - 1) + math.tanh(-1 / 4 - 1)) / 2
    assert t["correctness_margin_score"] == pytest.approx(margin)
    assert t["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin)


def test_ties_zero_spread_counts_as_full_margin_and_zero_over_zero_as_none():
    t = ties_score(["ref:0", "tied:0"], [[3, 0], [2, 2, 1]], [1, 2])  # spread 0, gap 1: tanh(inf) = 1
    assert t["correctness_margin_score"] == 1.0
    t = ties_score(["ref:0", "tied:0"], [[3, 0], [2, 2, 2]], [1, 2])  # spread 0, gap 0: 0/0 -> 0
    assert t["correctness_margin_score"] == 0.0 and t["tied_accuracy"] == 0.0


def test_ties_needs_matching_ref_and_tied_rows():
    with pytest.raises(ValueError, match="ref:N"):
        ties_score(["ref:0", "tied:1"], [[1, 0], [2, 2, 1]], [1, 2])
    with pytest.raises(ValueError, match="expected 'ref:N'"):
        ties_score(["0"], [[1, 0]], [1])


def test_rewardbench2_final_score_is_the_mean_of_the_six_subsets_and_names_missing_ones():
    ids, scores, nc = _ties_rows()
    subsets = ["Factuality", "Factuality", "Math"] + ["Ties"] * 4
    r = score_rewardbench2(subsets, ["a", "b", "c"] + ids,
                           [[3, 1, 1, 1], [1, 1, 1, 1], [0, 2, 1, 1]] + scores, [1, 1, 1] + nc)
    assert r.subsets["Factuality"] == {"accuracy": (1.0 + 0.25) / 2, "n": 2}
    assert r.subsets["Math"]["accuracy"] == 0.0
    ties = r.subsets["Ties"]["accuracy"]
    assert r.overall == pytest.approx((0.625 + 0.0 + ties) / 3)
    assert r.missing_subsets == ["Precise IF", "Safety", "Focus"]
    assert r.partial_sections == ["overall"]


def test_rmbench_style_matrix_and_easy_normal_hard_by_hand():
    chosen = [[3, 2, 1], [0, 0, 0], [1, 1, 1]]
    rejected = [[2.5, 1.5, 0.5], [0, 0, 0], [0, 0, 0]]  # row 2 ties everywhere: wrong
    m = style_matrix(np.array(chosen[:2], float), np.array(rejected[:2], float))
    assert m.tolist() == [[0.5, 0.5, 0.5], [0.0, 0.5, 0.5], [0.0, 0.0, 0.5]]
    r = score_rmbench(["chat", "chat", "safety-refuse"], chosen, rejected)
    assert r.details["domains"]["chat"] == {"hard": 0.5, "normal": 0.5, "easy": 0.0}
    assert r.details["domains"]["safety"] == {"hard": 1.0, "normal": 1.0, "easy": 1.0}
    assert r.subsets["chat"] == {"accuracy": pytest.approx(1 / 3), "n": 2}
    assert r.sections == {"easy": 0.5, "normal": 0.75, "hard": 0.75}
    assert r.overall == pytest.approx((1 / 3 + 1) / 2)
    assert r.missing_subsets == ["math", "code"]


def test_rmbench_needs_three_styles():
    with pytest.raises(ValueError, match="3 chosen"):
        score_rmbench(["chat"], [[1, 2]], [[0, 1]])
