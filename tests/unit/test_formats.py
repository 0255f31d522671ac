import json

import pytest

from rewardkit.config import FieldsConfig
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.formats import parse_pair, parse_pairs, split_implicit_prompt
from rewardkit.data.readers import Record, read_records


def rec(data, line=7):
    return Record(data, "data.jsonl", line)


def test_implicit_prompt_is_cut_at_the_last_assistant_marker():
    c = "\n\nHuman: hi\n\nAssistant: Sure thing, here it is."
    r = "\n\nHuman: hi\n\nAssistant: Sure, no."
    prompt, rc, rr = split_implicit_prompt(c, r)
    assert prompt == "\n\nHuman: hi\n\nAssistant:"
    assert (rc, rr) == (" Sure thing, here it is.", " Sure, no.")


def test_implicit_prompt_on_real_hh_rlhf_records():
    for record in list(read_records("builtin:hh-rlhf-harmless"))[:200]:
        c, r = record.data["chosen"], record.data["rejected"]
        prompt, rc, rr = split_implicit_prompt(c, r)
        assert prompt + rc == c and prompt + rr == r
        if rc and rr:
            assert prompt.endswith("\n\nAssistant:")


def test_implicit_prompt_without_markers_cuts_at_whitespace():
    assert split_implicit_prompt("the cat sat", "the cab ran") == ("the ", "cat sat", "cab ran")


def test_explicit_prompt_and_margin():
    p = parse_pair(rec({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "1.5"}), FieldsConfig())
    assert (p.prompt, p.chosen, p.rejected, p.margin, p.where) == ("q", "a", "b", 1.5, "data.jsonl:7")


def test_field_names_are_mappable():
    f = FieldsConfig(prompt="question", chosen="good", rejected="bad")
    p = parse_pair(rec({"question": "q", "good": "a", "bad": "b"}), f)
    assert (p.prompt, p.chosen, p.rejected) == ("q", "a", "b")


def test_chat_messages_with_implicit_prompt():
    shared = [{"role": "user", "content": "hi"}]
    p = parse_pair(rec({"chosen": shared + [{"role": "assistant", "content": "hello!"}],
                        "rejected": shared + [{"role": "assistant", "content": "go away"}]}), FieldsConfig())
    assert p.prompt == shared
    assert p.chosen == [{"role": "assistant", "content": "hello!"}]


@pytest.mark.parametrize("data, field, reason", [
    ({"prompt": "q", "rejected": "b"}, "chosen", "missing_field"),
    ({"prompt": "q", "chosen": 3, "rejected": "b"}, "chosen", "wrong_type"),
    ({"prompt": "q", "chosen": "   ", "rejected": "b"}, "chosen", "empty_response"),
    ({"prompt": "q", "chosen": "a", "rejected": "a"}, "rejected", "identical_responses"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "margin", "wrong_type"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": float("nan")}, "margin", "not_finite"),
    ({"prompt": [{"role": "wizard", "content": "x"}], "chosen": "a", "rejected": "b"}, "prompt[0].role",
     "unknown_role"),
    ({"chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a"}],
      "rejected": [{"role": "user", "content": "x"}, {"role": "user", "content": "b"}]}, "rejected",
     "no_final_assistant"),
])
def test_bad_records_name_file_line_and_field(data, field, reason):
    with pytest.raises(DataError) as e:
        parse_pair(rec(data), FieldsConfig())
    assert e.value.field == field and e.value.reason == reason
    assert str(e.value).startswith(f"data.jsonl:7: field '{field}': ")


def test_skip_mode_counts_by_reason(tmp_path):
    p = tmp_path / "d.jsonl"
    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "", "rejected": "b"},
            {"prompt": "q", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "c"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n")
    report = SkipReport()
    pairs = list(parse_pairs(read_records(str(p), "skip", report), FieldsConfig(), "skip", report))
    assert [x.where.rsplit(":", 1)[1] for x in pairs] == ["1", "4"]
    assert report.skipped == {"empty_response": 1, "missing_field": 1, "invalid_json": 1}
    assert any("d.jsonl:3: field 'chosen'" in e for e in report.examples)
