"""docs/architecture.md says which files to touch to add a data adapter or a format. Checked here by adding a
throwaway one of each, registered the documented way, and training on it (2 steps of a tiny model)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal, get_args

import pytest

import rewardkit
from rewardkit import config
from rewardkit.config import DataConfig, SplitConfig
from rewardkit.data import adapters, formats
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.examples import load_examples
from rewardkit.data.steps import STEP_ADAPTERS
from rewardkit.eval import format_metrics
from rewardkit.training import tasks


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(tmp_path, model_dir, data: dict, loss: str = "bradley_terry"):
    return rewardkit.train({"model": {"name": str(model_dir)}, "loss": {"name": loss},
                            "data": {"max_length": 64, "cache": False, **data},
                            "train": {"max_steps": 2, "batch_size": 2, "tensorboard": False, "precision": "fp32",
                                      "eval_zero_shot": False},
                            "output_dir": str(tmp_path / "run")})


def test_every_config_adapter_name_is_a_registered_adapter():
    assert set(get_args(config.Adapter)) == set(adapters.ADAPTERS) | set(STEP_ADAPTERS)


# --- a data adapter: data/adapters.py (converter + ADAPTERS entry) and config.py (Adapter) -----------------

def _thumbs(rec, fmt, fields, skip):
    """{question, up, down}: the up-voted answer is chosen; an empty answer is bad input (file:line:field)."""
    for name in ("up", "down"):
        if not rec.data.get(name):
            raise DataError(rec.source, rec.line, name, "empty answer", "missing_field")
    yield {"prompt": rec.data["question"], "chosen": rec.data["up"], "rejected": rec.data["down"]}


@pytest.fixture
def thumbs_adapter(monkeypatch):
    monkeypatch.setitem(adapters.ADAPTERS, "throwaway-thumbs",
                        adapters.Adapter("throwaway-thumbs", ("pairs",), _thumbs, "{question, up, down}"))
    monkeypatch.setattr(config, "Adapter", Literal[(*get_args(config.Adapter), "throwaway-thumbs")])


def test_a_registered_adapter_reads_its_layout_counts_bad_records_and_trains(thumbs_adapter, tiny_model_dir,
                                                                             tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "up": f"It is {2 * i}.", "down": f"It is {2 * i + 1}."}
            for i in range(8)] + [{"question": "q", "up": "", "down": "x"}]
    path = _write(tmp_path / "thumbs.jsonl", rows)
    report = SkipReport()
    pairs = load_examples(SplitConfig(path=str(path)), DataConfig(adapter="throwaway-thumbs", on_invalid="skip"),
                          report)
    assert len(pairs) == 8 and pairs[0].chosen == "It is 0." and report.skipped == {"missing_field": 1}
    with pytest.raises(DataError, match=r"thumbs.jsonl:9: field 'up': empty answer"):
        load_examples(SplitConfig(path=str(path)), DataConfig(adapter="throwaway-thumbs"))
    result = _run(tmp_path, tiny_model_dir("llama"), {"train": str(path), "eval": str(path),
                                                     "adapter": "throwaway-thumbs", "on_invalid": "skip"})
    assert result.metrics["eval"]["accuracy"] is not None
    assert "missing_field" in json.dumps(result.metrics["data"])  # the bad record was counted in the run too


# --- a format: data/formats.py (dataclass, parser, PARSERS, EXAMPLE_TYPES), config.py (DataFormat), a Task in
# --- training/tasks.py (TASKS, by loss name) and its row in eval/format_metrics.py ------------------------------

@dataclass(frozen=True)
class Votes:
    prompt: str
    response: str
    up: int
    down: int
    where: str


def _parse_votes(rec, fields):
    up, down = rec.data.get("up"), rec.data.get("down")
    for name, v in (("up", up), ("down", down)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise DataError(rec.source, rec.line, name, f"expected a vote count, got {v!r}", "wrong_type")
    if up + down == 0:
        raise DataError(rec.source, rec.line, "up", "no votes", "no_votes")
    return Votes(rec.data["prompt"], rec.data["response"], up, down, rec.where)


class VotesTask(tasks.ScalarTask):
    """Up-vote share as a scalar target, trained with the existing ``mse`` loss."""

    format = "votes"
    cacheable = False

    def encode(self, examples, renderer, encoder):
        return self._encode_single(examples, renderer, encoder, lambda ex: (ex.up / (ex.up + ex.down), None))


@pytest.fixture
def votes_format(monkeypatch):
    monkeypatch.setitem(formats.PARSERS, "votes", _parse_votes)
    monkeypatch.setitem(formats.EXAMPLE_TYPES, "votes", Votes)
    monkeypatch.setattr(config, "DataFormat", Literal[(*get_args(config.DataFormat), "votes")])
    monkeypatch.setitem(tasks.TASKS, "mse", VotesTask)
    monkeypatch.setitem(format_metrics.FORMAT_METRICS, "votes",
                        format_metrics.FormatMetrics("spearman", "spearman", ("spearman",), ("spearman",)))


def test_a_registered_format_is_read_validated_trained_and_evaluated_on_its_own_metric(votes_format,
                                                                                        tiny_model_dir, tmp_path):
    rows = [{"prompt": f"Tell me about {w}.", "response": f"{w} is a word.", "up": i + 1, "down": 8 - i}
            for i, w in enumerate(["cats", "dogs", "owls", "bees", "ants", "elks", "yaks", "emus"])]
    path = _write(tmp_path / "votes.jsonl", rows + [{"prompt": "p", "response": "r", "up": -1, "down": 2}])
    report = SkipReport()
    examples = load_examples(SplitConfig(path=str(path)), DataConfig(format="votes", on_invalid="skip"), report)
    assert [type(e) for e in examples] == [Votes] * 8 and report.skipped == {"wrong_type": 1}
    with pytest.raises(DataError, match=r"votes.jsonl:9: field 'up': expected a vote count, got -1"):
        load_examples(SplitConfig(path=str(path)), DataConfig(format="votes"))
    result = _run(tmp_path, tiny_model_dir("llama"), {"train": str(path), "eval": str(path), "format": "votes",
                                                     "on_invalid": "skip"}, loss="mse")
    assert set(result.metrics["eval"]) >= {"spearman", "loss"}
    assert tasks.make_task(config.RunConfig(model=config.ModelConfig(name="x"), data=DataConfig(),
                                           loss=config.LossConfig(name="mse"))).primary == "spearman"
