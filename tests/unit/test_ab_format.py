"""A/B judgments as they come: explicit winner mapping, ties counted, strength as margin, file:line errors."""

import json
import math

import pytest
import torch

from rewardkit.cli_data_overrides import data_config
from rewardkit.config import ConfigError, DataConfig, SplitConfig, WinnerConfig
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.examples import read_examples
from rewardkit.data.formats import Pair, Ranked, winner_key
from rewardkit.losses import ranking

ROWS = [{"input": "Best pet?", "response_a": "A dog.", "response_b": "A rock.", "winner": 1, "strength": -2},
        {"input": "2+2?", "response_a": "5", "response_b": "4", "winner": 2, "strength": 3},
        {"input": "Hi", "response_a": "Hello", "response_b": "Hey", "winner": 0}]


@pytest.fixture
def ab_file(tmp_path):
    p = tmp_path / "ab.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return p


def _data(**kw) -> DataConfig:
    return data_config(["--data.format", "ab", "--data.fields.prompt", "input", "--data.winner.a", "1",
                        "--data.winner.b", "2", "--data.winner.tie", "0", *kw.pop("extra", [])])


def test_integer_winners_map_to_pairs_and_ties_are_counted_and_skipped(ab_file):
    report = SkipReport()
    fmt, ex = read_examples(SplitConfig(path=str(ab_file)), _data(), report)
    assert fmt == "pairs" and all(isinstance(e, Pair) for e in ex)
    assert [(e.chosen, e.rejected) for e in ex] == [("A dog.", "A rock."), ("4", "5")]
    assert report.skipped == {"tie": 1}
    assert ex[0].margin is None  # no data.strength: no margin


def test_strength_column_becomes_the_margin_as_its_absolute_value(ab_file):
    _, ex = read_examples(SplitConfig(path=str(ab_file)), _data(extra=["--data.strength", "strength"]), SkipReport())
    assert [e.margin for e in ex] == [2.0, 3.0]


def test_an_unmapped_winner_names_file_line_and_value(ab_file):
    data = data_config(["--data.format", "ab", "--data.fields.prompt", "input", "--data.winner.a", "[1]",
                        "--data.winner.b", "[2]"])
    with pytest.raises(DataError, match=rf"{ab_file}:3: field 'winner': value 0 is not mapped"):
        read_examples(SplitConfig(path=str(ab_file)), data, SkipReport())


def test_ab_without_a_winner_mapping_says_how_to_write_one(ab_file):
    with pytest.raises(ValueError, match="needs data.winner"):
        read_examples(SplitConfig(path=str(ab_file)), DataConfig(format="ab"), SkipReport())


def test_winner_values_compare_across_spellings():
    assert winner_key(1) == winner_key(1.0) == winner_key("1") == winner_key(" 1 ") == "1"
    assert winner_key("model_a") == "model_a" and winner_key("tie (bothbad)") == "tie (bothbad)"
    assert winner_key(-3) == winner_key("-3")


def test_a_value_under_two_outcomes_is_refused(ab_file):
    data = DataConfig(format="ab", winner=WinnerConfig(a=[1, 0], b=[2], tie=[0]))
    with pytest.raises(ValueError, match="both a and tie"):
        read_examples(SplitConfig(path=str(ab_file)), data, SkipReport())


def test_ties_train_reads_judgments_as_ranked_lists_with_equal_ranks(ab_file):
    fmt, ex = read_examples(SplitConfig(path=str(ab_file)), _data(extra=["--data.ties", "train"]), SkipReport())
    assert fmt == "ranked" and all(isinstance(e, Ranked) for e in ex)
    assert [e.ranks for e in ex] == [[0, 1], [1, 0], [0, 0]]


def test_soft_tie_term_is_the_davidson_tie_likelihood_as_nu_goes_to_zero():
    # Davidson (1970): P(tie) = nu / (2 cosh(d/2) + nu), P(a wins) = e^(d/2) / (2 cosh(d/2) + nu).
    # The soft tie term of `ranking` for d = 2: -(log s(2) + log s(-2)) / 2 = log(2 cosh 1) = 1.126928
    rewards, valid = torch.tensor([[2.0, 0.0], [1.0, 0.0]]), torch.ones(2, 2, dtype=torch.bool)
    tie_only = ranking(rewards[:1], torch.tensor([[0, 0]]), valid[:1], ties="soft")
    assert float(tie_only) == pytest.approx(math.log(2 * math.cosh(1.0)), abs=1e-6)
    assert float(tie_only) == pytest.approx(1.126928, abs=1e-6)
    nu = 1e-6  # -log P_davidson(tie) + log nu -> log(2 cosh(d/2)); the win term -> -log sigmoid(d)
    assert -math.log(nu / (2 * math.cosh(1.0) + nu)) + math.log(nu) == pytest.approx(1.126928, abs=1e-5)
    assert -math.log(math.exp(0.5) / (2 * math.cosh(0.5) + nu)) == pytest.approx(0.313262, abs=1e-5)
    # a tie (d = 2) and a win (d = 1) in two prompts: the mean of 1.126928 and -log sigmoid(1) = 0.313262
    both = ranking(rewards, torch.tensor([[0, 0], [0, 1]]), valid, ties="soft")
    assert float(both) == pytest.approx((1.126928 + 0.313262) / 2, abs=1e-6)


def test_data_overrides_refuse_other_options():
    with pytest.raises(ConfigError, match="unrecognized option --train.lr"):
        data_config(["--train.lr", "1e-3"])
    with pytest.raises(ConfigError, match="data.format"):
        data_config(["--data.format", "abc"])
