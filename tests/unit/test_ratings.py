import pytest

from rewardkit.config import DataConfig, RatingsConfig, SplitConfig
from rewardkit.data.dataset import load_examples
from rewardkit.data.formats import Pair, Rated
from rewardkit.data.ratings import annotator_stats, ratings_to_pairs, zscore_per_annotator

from ..conftest import REPO


def r(response, score, annotator, prompt="p", group=None, line=1):
    return Rated(prompt=prompt, response=response, score=score, annotator=annotator, where=f"f:{line}",
                 group=group)


# the issue's example: annotator a says 0.8 vs 0.7, annotator b says 0.6 vs 0.5 for the same two responses
ISSUE = [r("A", 0.8, "a"), r("B", 0.7, "a"), r("A", 0.6, "b"), r("B", 0.5, "b")]


def test_zscore_makes_annotators_with_different_offsets_agree():
    z = zscore_per_annotator(ISSUE)
    assert [x.score for x in z] == pytest.approx([1.0, -1.0, 1.0, -1.0])
    # raw, the worse response of a (0.7) outranks the better one of b (0.6): regression would learn the rater
    assert ISSUE[1].score > ISSUE[2].score


def test_zscore_divides_by_each_annotators_own_spread():
    rated = [r("A", 9.0, "wide"), r("B", 1.0, "wide"), r("A", 5.5, "narrow"), r("B", 4.5, "narrow")]
    stats = annotator_stats(rated)
    assert (stats["wide"].mean, stats["wide"].std) == (5.0, 4.0)
    assert [x.score for x in zscore_per_annotator(rated)] == pytest.approx([1.0, -1.0, 1.0, -1.0])


def test_zscore_of_an_annotator_with_one_distinct_rating_is_zero_not_nan():
    z = zscore_per_annotator([r("A", 3.0, "x"), r("B", 3.0, "x"), r("C", 0.9, "y"), r("D", 0.1, "y")])
    assert [x.score for x in z[:2]] == [0.0, 0.0]


def test_same_annotator_pairs_ignore_the_offset_between_annotators():
    pairs = ratings_to_pairs(ISSUE, "same_annotator")
    assert [(p.chosen, p.rejected) for p in pairs] == [("A", "B"), ("A", "B")]
    assert pairs[0].where == "f:1 > f:1" and pairs[0].margin is None


def test_same_annotator_never_compares_ratings_of_two_annotators():
    rated = [r("A", 0.6, "a"), r("B", 0.9, "b")]
    assert ratings_to_pairs(rated, "same_annotator") == []
    pooled = ratings_to_pairs(rated, "pooled")
    assert [(p.chosen, p.rejected) for p in pooled] == [("B", "A")]


def test_pooled_averages_each_response_over_annotators():
    rated = [r("A", 0.9, "a"), r("A", 0.1, "b"), r("B", 0.6, "a"), r("B", 0.6, "b")]
    pairs = ratings_to_pairs(rated, "pooled", gap_as_margin=True)
    assert [(p.chosen, p.rejected) for p in pairs] == [("B", "A")]
    assert pairs[0].margin == pytest.approx(0.1)


def test_min_gap_drops_close_ratings_and_equal_ratings_never_pair():
    assert len(ratings_to_pairs(ISSUE, "same_annotator", min_gap=0.1)) == 0
    assert len(ratings_to_pairs(ISSUE, "same_annotator", min_gap=0.05)) == 2
    assert ratings_to_pairs([r("A", 1.0, "a"), r("B", 1.0, "a")]) == []


def test_ratings_are_grouped_by_group_before_prompt():
    rated = [r("A", 1.0, "a", prompt="same", group="1"), r("B", 0.0, "a", prompt="same", group="2")]
    assert ratings_to_pairs(rated) == []
    rated = [r("A", 1.0, "a", prompt="one"), r("B", 0.0, "a", prompt="two")]
    assert ratings_to_pairs(rated) == []
    chat = [{"role": "user", "content": "q"}]
    pairs = ratings_to_pairs([r("A", 1.0, "a", prompt=chat), r("B", 0.0, "a", prompt=list(chat))])
    assert pairs == [Pair(prompt=chat, chosen="A", rejected="B", margin=None, where="f:1 > f:1")]


def test_load_examples_turns_the_scalar_example_file_into_pairs():
    split = SplitConfig(path=str(REPO / "examples" / "data" / "scalar.jsonl"))
    raw = load_examples(split, DataConfig())
    assert all(isinstance(x, Rated) for x in raw) and len(raw) == 8
    normalized = load_examples(split, DataConfig(ratings=RatingsConfig(normalize="annotator_zscore")))
    assert {x.annotator for x in normalized} == {"ann-a", "ann-b"}
    assert sum(x.score for x in normalized if x.annotator == "ann-a") == pytest.approx(0.0)
    pairs = load_examples(split, DataConfig(ratings=RatingsConfig(to_pairs="same_annotator", min_gap=0.05)))
    assert len(pairs) == 4 and all(isinstance(p, Pair) for p in pairs)
    assert {p.chosen if isinstance(p.chosen, str) else p.chosen[0]["content"] for p in pairs} == {"Whiskers.", "Hola."}


def test_zscore_over_the_split_standardises_every_rating_and_keeps_their_order():
    from rewardkit.data.ratings import zscore_ratings

    z = zscore_ratings([r("A", 5.0, "a"), r("B", 3.0, "b"), r("C", 1.0, "a"), r("D", 3.0, "b")])
    s = [x.score for x in z]
    assert s == pytest.approx([2 ** 0.5, 0.0, -(2 ** 0.5), 0.0])  # mean 3, population std sqrt(2)
    assert [x.score for x in zscore_ratings([r("A", 2.0, "a"), r("B", 2.0, "a")])] == [0.0, 0.0]


def test_zscore_of_multi_attribute_ratings_is_per_attribute_and_keeps_missing_ratings_missing():
    from rewardkit.data.formats import MultiRated
    from rewardkit.data.ratings import zscore_attributes

    rows = [MultiRated(prompt="p", response=str(i), scores=s, where=f"f:{i}") for i, s in enumerate(
        [{"a": 0.0, "b": 10.0}, {"a": 1.0, "b": None}, {"a": 2.0, "b": 30.0}])]
    z = zscore_attributes(rows)
    assert [x.scores["a"] for x in z] == pytest.approx([-(1.5 ** 0.5), 0.0, 1.5 ** 0.5])
    assert [x.scores["b"] for x in z] == [-1.0, None, 1.0]  # b's mean and std come from the two rated rows only
    split = SplitConfig(path=str(REPO / "examples" / "data" / "multi.jsonl"))
    loaded = load_examples(split, DataConfig(format="multi", ratings=RatingsConfig(normalize="zscore")))
    helpful = [x.scores["helpfulness"] for x in loaded if x.scores.get("helpfulness") is not None]
    assert sum(helpful) == pytest.approx(0.0, abs=1e-9)
    assert sum(v * v for v in helpful) / len(helpful) == pytest.approx(1.0)
