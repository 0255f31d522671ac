"""Adapters on the real public files in the shared data folder (never bundled: usr has no licence)."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from rewardkit.config import Adapter, DataConfig, FieldsConfig, RatingsConfig, SplitConfig
from rewardkit.data.adapters import ADAPTERS, majority
from rewardkit.data.dataset import load_examples
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.formats import Labeled, MultiRated, Pair, Ranked, Rated
from rewardkit.data.readers import Record
from rewardkit.data.steps import STEP_ADAPTERS


def shared_data() -> Path:
    # in CI the shared folder sits next to the repository; locally under /work/shared
    for root in (Path(__file__).resolve().parents[2].parent / "shared", Path("/work/shared")):
        if (root / "data").is_dir():
            return root / "data"
    raise FileNotFoundError("the shared data folder (../shared/data or /work/shared/data) is missing")


DATA = shared_data()


def load(adapter, path, report=None, **data):
    return load_examples(SplitConfig(path=str(DATA / path)), DataConfig(adapter=adapter, **data), report)


def test_config_literal_lists_every_adapter():
    assert set(Adapter.__args__) == set(ADAPTERS) | set(STEP_ADAPTERS)


def test_hh_rlhf_adapter_splits_the_implicit_prompt_and_skips_empty_final_turns():
    report = SkipReport()
    pairs = load("hh-rlhf", "hh-rlhf/harmless-base-test.jsonl.gz", report)
    with gzip.open(DATA / "hh-rlhf/harmless-base-test.jsonl.gz", "rt") as f:
        raw = [json.loads(line) for line in f]
    assert len(pairs) + report.total == len(raw) and set(report.skipped) == {"empty_response"}
    assert all(isinstance(p, Pair) and p.prompt.endswith("\n\nAssistant:") for p in pairs[:200])
    first = pairs[0]
    assert first.prompt + first.chosen == raw[0]["chosen"] and first.prompt + first.rejected == raw[0]["rejected"]


def _oasst_groups(node):
    answers = [r for r in node.get("replies") or [] if r["role"] == "assistant"]
    ranked = [r for r in answers if r.get("rank") is not None and not r.get("deleted")]
    yield len(answers), len(ranked)
    for r in node.get("replies") or []:
        yield from _oasst_groups(r)


@pytest.mark.parametrize("name", ["en_100_tree.jsonl", "en_100_message.jsonl"])
def test_oasst_trees_become_ranked_sibling_replies(name):
    report = SkipReport()
    lists = load("oasst", f"oasst/{name}", report)
    trees = [json.loads(line) for line in open(DATA / "oasst" / name)]
    roots = [t.get("prompt", t) if "message_tree_id" in t and "prompt" in t else t for t in trees]
    groups = [g for root in roots for g in _oasst_groups(root) if g[0] >= 2]
    assert len(lists) == sum(1 for _, k in groups if k >= 2)
    assert report.skipped == {"unranked_siblings": sum(1 for _, k in groups if k < 2)}
    assert all(isinstance(x, Ranked) and len(x.responses) >= 2 for x in lists)
    first = lists[0]
    root = roots[0]
    assert first.prompt == [{"role": "user", "content": root["text"]}]
    by_rank = sorted((r["rank"], r["text"]) for r in root["replies"])
    assert sorted(zip(first.ranks, first.responses, strict=True)) == by_rank
    # deeper lists carry the whole conversation, ending in the user turn being answered
    deep = [x for x in lists if len(x.prompt) > 1]
    assert deep and all(x.prompt[-1]["role"] == "user" and x.prompt[0]["role"] == "user" for x in deep)


def test_pandalm_majority_vote_pairs_and_ties_skipped_with_a_count():
    report = SkipReport()
    pairs = load("pandalm", "pandalm/testset-v1.json", report)
    items = json.load(open(DATA / "pandalm/testset-v1.json"))
    expected = []
    ties = empties = 0
    for it in items:
        votes = Counter([it["annotator1"], it["annotator2"], it["annotator3"]])
        top, n = votes.most_common(1)[0]
        if n < 2 or top == 0:
            ties += 1
            continue
        r1, r2 = str(it["response1"]), str(it["response2"])  # a few outputs are JSON true: kept as "True"
        if not r1.strip() or not r2.strip():
            empties += 1
            continue
        expected.append((r1, r2) if top == 1 else (r2, r1))
    assert [(p.chosen, p.rejected) for p in pairs] == expected
    assert report.skipped["tie"] + report.skipped["no_majority"] == ties
    assert report.skipped["empty_response"] == empties
    assert pairs[0].prompt.startswith(items[0]["instruction"]) and pairs[0].prompt.endswith(items[0]["input"])


def test_majority_needs_strictly_more_votes():
    assert majority([2, 1, 2]) == 2
    assert majority([0, 0, 1]) == 0
    assert majority([0, 1, 2]) is None
    assert majority([1, 2]) is None


def test_pandalm_bad_vote_names_file_line_and_field():
    rec = Record({"instruction": "q", "response1": "a", "response2": "b", "annotator1": 3}, "p.json", 4)
    with pytest.raises(DataError, match=r"p.json:4: field 'annotator1': expected a vote"):
        list(ADAPTERS["pandalm"].examples([rec], "pairs", FieldsConfig()))


@pytest.mark.parametrize("name", ["tc_usr_data.json", "pc_usr_data.json"])
def test_usr_multi_attribute_means_over_annotators(name):
    items = json.load(open(DATA / "usr" / name))
    multi = load("usr", f"usr/{name}")
    assert len(multi) == sum(len(it["responses"]) for it in items)
    assert all(isinstance(m, MultiRated) for m in multi)
    first = items[0]["responses"][0]
    assert multi[0].response == first["response"]
    assert multi[0].scores["Overall"] == pytest.approx(sum(first["Overall"]) / len(first["Overall"]))
    assert set(multi[0].scores) == {"Understandable", "Natural", "Maintains Context", "Engaging", "Uses Knowledge",
                                    "Overall"}


def test_usr_scalar_gives_one_rating_per_annotator_with_their_name():
    items = json.load(open(DATA / "usr/pc_usr_data.json"))
    rated = load("usr", "usr/pc_usr_data.json", format="scalar")
    assert len(rated) == sum(len(it["responses"]) * len(it["annotators"]) for it in items)
    assert all(isinstance(x, Rated) for x in rated)
    assert [(x.annotator, x.score) for x in rated[:3]] == list(zip(items[0]["annotators"],
                                                                   items[0]["responses"][0]["Overall"], strict=True))
    engaging = load("usr", "usr/pc_usr_data.json", format="scalar", fields=FieldsConfig(score="Engaging"))
    assert engaging[0].score == items[0]["responses"][0]["Engaging"][0]


def test_usr_ratings_become_same_annotator_pairs():
    pairs = load("usr", "usr/pc_usr_data.json", format="scalar",
                 ratings=RatingsConfig(to_pairs="same_annotator", min_gap=1.0))
    items = json.load(open(DATA / "usr/pc_usr_data.json"))
    expected = 0
    for it in items:
        for a in range(len(it["annotators"])):
            overall = [r["Overall"][a] for r in it["responses"]]
            expected += sum(abs(x - y) > 1.0 for i, x in enumerate(overall) for y in overall[i + 1:])
    assert len(pairs) == expected > 0 and all(isinstance(p, Pair) for p in pairs)


def test_usr_has_no_ranked_or_binary_form():
    with pytest.raises(ValueError, match="usr"):
        load("usr", "usr/pc_usr_data.json", format="ranked")


def test_halueval_yes_no_becomes_labels_with_no_hallucination_as_1():
    labeled = load("halueval", "halueval/general_data.json")
    raw = [json.loads(line) for line in open(DATA / "halueval/general_data.json")]
    assert len(labeled) == len(raw) and all(isinstance(x, Labeled) for x in labeled)
    assert sum(x.label for x in labeled) == sum(1 for x in raw if x["hallucination"] == "no")
    assert (labeled[0].prompt, labeled[0].response) == (raw[0]["user_query"], raw[0]["chatgpt_response"])


def test_split_adapter_overrides_the_data_adapter():
    split = SplitConfig(path=str(DATA / "halueval/general_data.json"), adapter="halueval", stop=10)
    assert len(load_examples(split, DataConfig(adapter="pandalm"))) == 10
