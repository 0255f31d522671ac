"""Step-level data is recognised: `data.format: auto` picks the step layout's adapter, a response-format reader
refuses step data naming file, line, field and the format to use, and `rewardkit data inspect` reports steps."""

import json

import pytest

from rewardkit.cli import main
from rewardkit.config import DataConfig, SplitConfig, StepsConfig
from rewardkit.data.errors import DataError
from rewardkit.data.examples import load_examples
from rewardkit.data.inspect import format_inspection, inspect_data
from rewardkit.data.step_detect import detect_step_layout
from rewardkit.data.steps import load_steps

from ..conftest import REPO, load_test_tokenizer

EXAMPLES = REPO / "examples" / "data"
STEPS = EXAMPLES / "steps"
FILES = {"steps": EXAMPLES / "steps.jsonl", "math-shepherd": STEPS / "math-shepherd.jsonl",
         "prm800k": STEPS / "prm800k.jsonl", "trl-stepwise": STEPS / "trl-stepwise.jsonl"}
FIELD = {"steps": "steps", "math-shepherd": "input", "prm800k": "label.steps", "trl-stepwise": "completions"}
RESPONSE_FILES = ["pairs.jsonl", "binary.jsonl", "scalar.jsonl", "multi.jsonl", "ranked.jsonl"]


def _first(path):
    return json.loads(path.read_text(encoding="utf-8").splitlines()[0])


def _write(tmp_path, rows, name="s.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return p


@pytest.mark.parametrize("layout", list(FILES))
def test_every_step_layout_is_recognised_from_its_first_record(layout):
    assert detect_step_layout(_first(FILES[layout]), DataConfig()) == layout


@pytest.mark.parametrize("name", RESPONSE_FILES)
def test_response_format_records_are_not_step_data(name):
    for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines():
        assert detect_step_layout(json.loads(line), DataConfig()) is None


def test_detection_follows_the_configured_field_names_and_step_tag():
    rec = {"question": "q", "solution": ["a", "b"], "labels": [1, 0]}
    assert detect_step_layout(rec, DataConfig()) is None
    assert detect_step_layout(rec, DataConfig(steps=StepsConfig(steps_field="solution"))) == "steps"
    shepherd = {"input": "q Step 1: a <s>\n", "label": "q Step 1: a +\n"}
    assert detect_step_layout(shepherd, DataConfig()) is None  # not the default tag
    assert detect_step_layout(shepherd, DataConfig(steps=StepsConfig(step_tag="<s>"))) == "math-shepherd"


@pytest.mark.parametrize("layout", ["math-shepherd", "prm800k", "trl-stepwise"])
@pytest.mark.parametrize("fmt", ["auto", "steps"])
def test_auto_reads_a_public_layout_as_its_adapter_does(layout, fmt):
    split = SplitConfig(path=str(FILES[layout]))
    auto = load_steps(split, DataConfig(format=fmt))
    explicit = load_steps(split, DataConfig(format="steps", adapter=layout))
    assert len(auto) == len(explicit) > 0
    assert [(e.prompt, e.steps, e.labels, e.correct) for e in auto] == [
        (e.prompt, e.steps, e.labels, e.correct) for e in explicit]


def test_step_loader_given_response_data_says_what_it_looks_like():
    path = EXAMPLES / "pairs.jsonl"
    with pytest.raises(DataError, match=r"not step-level data .*looks like format pairs") as err:
        load_steps(SplitConfig(path=str(path)), DataConfig(format="auto"))
    assert (err.value.source, err.value.line, err.value.field) == (str(path), 1, "steps")


def test_step_loader_refuses_a_response_format():
    with pytest.raises(ValueError, match="step losses read data.format steps .*not binary"):
        load_steps(SplitConfig(path=str(FILES["steps"])), DataConfig(format="binary"))


@pytest.mark.parametrize("layout", list(FILES))
@pytest.mark.parametrize("fmt", ["auto", "binary", "pairs"])
def test_a_response_reader_given_step_data_names_file_line_field_and_the_format_to_use(layout, fmt):
    path = FILES[layout]
    with pytest.raises(DataError) as err:
        load_examples(SplitConfig(path=str(path)), DataConfig(format=fmt))
    e = err.value
    assert (e.source, e.line, e.field, e.reason) == (str(path), 1, FIELD[layout], "step_data")
    assert f"step-level data (format steps, layout {layout})" in str(e)
    assert "loss.name step_bce or step_ce" in str(e) and str(e).startswith(f"{path}:1: field '{FIELD[layout]}'")
    if layout != "steps":
        assert f"data.adapter {layout}" in str(e)


def test_response_reader_with_format_steps_points_to_the_step_losses():
    with pytest.raises(ValueError, match="data.format steps is read by the step losses"):
        load_examples(SplitConfig(path=str(FILES["steps"])), DataConfig(format="steps"))


def _expected_counts(records):
    labels = [y for r in records for y in r["labels"]]
    return {"right": labels.count(1), "wrong": labels.count(0), "unlabelled": labels.count(None)}


def test_inspect_reports_steps_labels_and_first_errors_of_the_documented_layout():
    rows = [json.loads(x) for x in FILES["steps"].read_text(encoding="utf-8").splitlines()]
    ins = inspect_data(str(FILES["steps"]))
    assert (ins.format, ins.adapter, ins.records, ins.examples, ins.error) == ("steps", None, 12, 12, None)
    d = ins.details
    assert d["layout"] == "steps" and d["steps"] == sum(len(r["steps"]) for r in rows)
    assert d["step_labels"] == _expected_counts(rows)
    assert sum(d["steps_per_solution"].values()) == 12
    assert d["correct_flag"] == {"true": sum(r["correct"] is True for r in rows),
                                 "false": sum(r["correct"] is False for r in rows), "missing": 0}
    assert d["problems"] == len({r["group"] for r in rows}) and d["problems_with_several_solutions"] == 6
    # the first wrong step, 1-based, counted on the raw labels
    want = {}
    for r in rows:
        lab = r["labels"]
        first = next((i for i, y in enumerate(lab) if y == 0), None)
        key = ("none (all right)" if first is None and all(y == 1 for y in lab) else
               str(first + 1) if first is not None and None not in lab[:first] else "unknown (unlabelled before it)")
        want[key] = want.get(key, 0) + 1
    assert d["first_wrong_step"] == want
    assert ins.response_lengths.count == d["steps"]
    assert ins.response_lengths.max == max(len(s) for r in rows for s in r["steps"])


@pytest.mark.parametrize("layout", ["math-shepherd", "prm800k", "trl-stepwise"])
def test_inspect_detects_the_public_layouts(layout):
    ins = inspect_data(str(FILES[layout]))
    examples = load_steps(SplitConfig(path=str(FILES[layout])), DataConfig(format="steps", adapter=layout))
    assert (ins.format, ins.adapter, ins.details["layout"], ins.error) == ("steps", layout, layout, None)
    assert ins.examples == len(examples) and ins.details["steps"] == sum(len(e.steps) for e in examples)
    assert ins.details["step_labels"]["wrong"] == sum(y == 0 for e in examples for y in e.labels)


def test_inspect_with_a_step_adapter_given_uses_it():
    ins = inspect_data(str(FILES["prm800k"]), adapter="prm800k")
    assert (ins.format, ins.adapter, ins.error) == ("steps", "prm800k", None) and "layout" not in ins.details


def test_inspect_counts_and_shows_invalid_step_records_and_keeps_going(tmp_path):
    p = _write(tmp_path, [{"prompt": "q", "steps": ["a", "b"], "labels": [1, 0]},
                          {"prompt": "q", "steps": ["a", "b"], "labels": [1]},
                          "not json",
                          {"prompt": "q", "steps": ["a", " "], "labels": [1, 1]},
                          {"prompt": "q2", "steps": ["c"], "labels": [None]}])
    ins = inspect_data(str(p), max_errors=5)
    assert (ins.format, ins.records, ins.examples) == ("steps", 4, 2)
    assert ins.skipped == {"label_count": 1, "invalid_json": 1, "empty_step": 1}
    assert ins.first_invalid[0].startswith(f"{p}:2: field 'labels': expected 2 labels (one per step), got 1")
    assert ins.first_invalid[2].startswith(f"{p}:4: field 'steps[1]': the step is empty")
    assert ins.details["step_labels"] == {"right": 1, "wrong": 1, "unlabelled": 1}
    assert ins.details["first_wrong_step"] == {"2": 1, "unknown (unlabelled before it)": 1}
    assert ins.details["correct_flag"] == {"true": 0, "false": 0, "missing": 2}
    text = format_inspection(ins)
    assert "format    steps" in text and "step      characters" in text and "skipped   3" in text


def test_inspect_counts_step_tokens_with_a_tokenizer(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    ins = inspect_data(str(FILES["trl-stepwise"]), tokenizer=tok)
    steps = [s for line in FILES["trl-stepwise"].read_text(encoding="utf-8").splitlines()
             for s in json.loads(line)["completions"]]
    n = [len(tok(s, add_special_tokens=False)["input_ids"]) for s in steps]
    assert ins.unit == "tokens" and ins.response_lengths.max == max(n) and ins.response_lengths.min == min(n)


def test_cli_data_inspect_prints_the_step_summary_and_json(capsys):
    assert main(["data", "inspect", str(FILES["math-shepherd"])]) == 0
    out = capsys.readouterr().out
    assert "format    steps" in out and "adapter   math-shepherd" in out and "step_labels" in out
    assert main(["data", "inspect", str(FILES["steps"]), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "steps" and result["details"]["step_labels"]["unlabelled"] == 1


def test_cli_data_inspect_still_fails_on_an_unknown_layout(tmp_path, capsys):
    p = _write(tmp_path, [{"question": "q", "answer": "a"}])
    assert main(["data", "inspect", str(p)]) == 2
    assert "cannot tell the format" in capsys.readouterr().out
