"""Every example file in examples/data loads as its documented format, with text and chat records."""

import pytest

from rewardkit.config import DataConfig, SplitConfig
from rewardkit.data.dataset import format_of, load_examples

from ..conftest import REPO

EXAMPLES = REPO / "examples" / "data"
FILES = {"pairs.jsonl": "pairs", "binary.jsonl": "binary", "scalar.jsonl": "scalar", "multi.jsonl": "multi",
         "ranked.jsonl": "ranked"}
# step-level data (process reward models) is read by data/steps.py with `data.format: steps`, not detected by
# `auto`: its example file is checked below and in tests/unit/test_steps_data.py
STEP_FILES = {"steps.jsonl": "steps"}


def _texts(ex):
    return [ex.prompt] + [getattr(ex, k) for k in ("chosen", "rejected", "response") if hasattr(ex, k)] + \
        list(getattr(ex, "responses", []))


@pytest.mark.parametrize("name,fmt", sorted(FILES.items()))
def test_example_file_is_detected_and_loads_every_record(name, fmt):
    path = EXAMPLES / name
    n_lines = sum(1 for line in path.read_text().splitlines() if line.strip())
    examples = load_examples(SplitConfig(path=str(path)), DataConfig())  # on_invalid: error
    assert len(examples) == n_lines and {format_of(e) for e in examples} == {fmt}
    kinds = {type(v) for e in examples for v in _texts(e)}
    assert kinds == {str, list}, "each example file holds text and chat records"


def test_every_format_has_an_example_file():
    assert set(FILES.values()) == {"pairs", "binary", "scalar", "multi", "ranked"}
    assert sorted(p.name for p in EXAMPLES.glob("*.jsonl")) == sorted(FILES | STEP_FILES)


def test_step_example_file_loads_every_record_as_steps():
    from rewardkit.data.steps import load_steps

    path = EXAMPLES / "steps.jsonl"
    n_lines = sum(1 for line in path.read_text().splitlines() if line.strip())
    examples = load_steps(SplitConfig(path=str(path)), DataConfig(format="steps"))
    assert len(examples) == n_lines and all(len(e.steps) == len(e.labels) for e in examples)
