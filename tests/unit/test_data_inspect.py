import json

from rewardkit.cli import main
from rewardkit.data.inspect import inspect_data

from ..conftest import REPO, load_test_tokenizer
from .test_adapters import DATA

EXAMPLES = REPO / "examples" / "data"


def test_inspect_reports_format_counts_and_character_lengths():
    ins = inspect_data(str(EXAMPLES / "ranked.jsonl"))
    rows = [json.loads(line) for line in (EXAMPLES / "ranked.jsonl").read_text().splitlines()]
    assert (ins.format, ins.records, ins.examples, ins.unit, ins.error) == ("ranked", 3, 3, "characters", None)
    assert ins.details["list_sizes"] == {3: 2, 4: 1} and ins.details["lists_with_ties"] == 1
    assert ins.details["pairs_k_choose_2"] == 3 + 3 + 6
    text_prompts = [len(r["prompt"]) for r in rows if isinstance(r["prompt"], str)]
    assert ins.prompt_lengths.count == 3 and ins.prompt_lengths.min == min(text_prompts)
    assert ins.response_lengths.count == 10 and ins.response_lengths.max == max(
        len(x) for r in rows for x in r["responses"] if isinstance(x, str))


def test_inspect_counts_tokens_with_a_tokenizer(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    ins = inspect_data(str(EXAMPLES / "binary.jsonl"), tokenizer=tok)
    rows = [json.loads(line) for line in (EXAMPLES / "binary.jsonl").read_text().splitlines()]
    n = [len(tok(r["response"], add_special_tokens=False)["input_ids"]) for r in rows
         if isinstance(r["response"], str)]
    assert ins.unit == "tokens" and ins.details == {"label_1": 3, "label_0": 3}
    assert ins.response_lengths.max == max(n) and ins.response_lengths.min <= min(n)


def test_inspect_lists_the_first_invalid_records_and_keeps_going(tmp_path):
    p = tmp_path / "labels.jsonl"
    p.write_text('{"prompt": "q", "response": "a", "label": 1}\n{"prompt": "q", "response": "b", "label": 7}\n'
                 'not json\n{"prompt": "q", "response": "", "label": 0}\n{"prompt": "q", "response": "c", "label": 0}\n')
    ins = inspect_data(str(p), max_errors=2)
    assert (ins.format, ins.records, ins.examples) == ("binary", 4, 2)
    assert ins.skipped == {"bad_label": 1, "invalid_json": 1, "empty_response": 1}
    assert len(ins.first_invalid) == 2
    assert ins.first_invalid[0].startswith(f"{p}:2: field 'label': expected 1/0, true/false or yes/no, got 7")
    assert ins.first_invalid[1].startswith(f"{p}:3: invalid JSON")


def test_cli_data_inspect_prints_the_summary(capsys):
    assert main(["data", "inspect", str(DATA / "pandalm/testset-v1.json"), "--adapter", "pandalm"]) == 0
    out = capsys.readouterr().out
    assert "format    pairs" in out and "records   999 read" in out
    assert "tie " in out and "first skipped records:" in out and "testset-v1.json:" in out


def test_cli_data_inspect_json_with_tokenizer(tokenizer_dirs, capsys):
    path = str(EXAMPLES / "multi.jsonl")
    assert main(["data", "inspect", path, "--json", "--tokenizer", str(tokenizer_dirs["gpt2"])]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["format"] == "multi" and result["unit"] == "tokens"
    assert result["details"]["attributes"]["verbosity"] == {"rated": 2, "missing": 2}


def test_cli_data_inspect_unknown_layout_exits_2(tmp_path, capsys):
    p = tmp_path / "odd.jsonl"
    p.write_text('{"question": "q"}\n')
    assert main(["data", "inspect", str(p)]) == 2
    assert "cannot tell the format" in capsys.readouterr().out
