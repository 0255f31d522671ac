import pytest

from rewardkit.config import ConfigError, DataConfig, FieldsConfig, SplitConfig, from_dict
from rewardkit.data.dataset import load_examples
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.formats import (
    Labeled,
    MultiRated,
    Ranked,
    Rated,
    detect_format,
    parse_labeled,
    parse_multi_rated,
    parse_ranked,
    parse_rated,
)
from rewardkit.data.readers import Record

F = FieldsConfig()
USER = [{"role": "user", "content": "hi"}]
ASSIST = [{"role": "assistant", "content": "hello"}]


def rec(data, line=3):
    return Record(data, "d.jsonl", line)


def error_of(fn, data) -> DataError:
    with pytest.raises(DataError) as e:
        fn(rec(data), F)
    return e.value


@pytest.mark.parametrize("raw,label", [(1, 1), (0, 0), (True, 1), (False, 0), (1.0, 1), ("1", 1), ("0", 0),
                                       ("yes", 1), ("No", 0), (" TRUE ", 1), ("false", 0)])
def test_binary_label_accepts_the_documented_spellings(raw, label):
    ex = parse_labeled(rec({"prompt": "q", "response": "a", "label": raw}), F)
    assert ex == Labeled(prompt="q", response="a", label=label, where="d.jsonl:3")


@pytest.mark.parametrize("raw", [2, -1, 0.5, "maybe", "", [1]])
def test_binary_label_rejects_other_values_naming_the_field(raw):
    err = error_of(parse_labeled, {"prompt": "q", "response": "a", "label": raw})
    assert (err.source, err.line, err.field) == ("d.jsonl", 3, "label")
    assert str(err).startswith("d.jsonl:3: field 'label'")


def test_binary_chat_response_without_prompt_splits_the_final_assistant_turn():
    ex = parse_labeled(rec({"response": USER + ASSIST, "label": 0}), F)
    assert (ex.prompt, ex.response, ex.label) == (USER, ASSIST, 0)


def test_text_response_without_prompt_is_an_error_naming_the_prompt_field():
    err = error_of(parse_labeled, {"response": "a", "label": 1})
    assert (err.field, err.reason) == ("prompt", "missing_field")


def test_empty_response_is_rejected_in_every_single_response_format():
    for fn, extra in ((parse_labeled, {"label": 1}), (parse_rated, {"score": 1}),
                      (parse_multi_rated, {"scores": {"a": 1}})):
        err = error_of(fn, {"prompt": "q", "response": "  ", **extra})
        assert (err.field, err.reason) == ("response", "empty_response")


def test_rated_reads_numbers_from_csv_text_and_keeps_annotator_and_group():
    ex = parse_rated(rec({"prompt": USER, "response": ASSIST, "score": "0.75", "annotator": 7, "group": "x"}), F)
    assert ex == Rated(prompt=USER, response=ASSIST, score=0.75, annotator="7", where="d.jsonl:3", group="x")
    assert parse_rated(rec({"prompt": "q", "response": "a", "score": 2}), F).annotator is None


@pytest.mark.parametrize("score,reason", [("high", "wrong_type"), (True, "wrong_type"), (float("nan"), "not_finite"),
                                          (None, "missing_field")])
def test_rated_rejects_bad_scores(score, reason):
    err = error_of(parse_rated, {"prompt": "q", "response": "a", "score": score})
    assert (err.field, err.reason) == ("score", reason)


def test_multi_keeps_null_attributes_as_none_not_zero():
    ex = parse_multi_rated(rec({"prompt": "q", "response": "a", "scores": {"help": 3, "safe": None}}), F)
    assert ex == MultiRated(prompt="q", response="a", scores={"help": 3.0, "safe": None}, where="d.jsonl:3")


def test_multi_errors_name_the_attribute():
    err = error_of(parse_multi_rated, {"prompt": "q", "response": "a", "scores": {"help": "lots"}})
    assert (err.field, err.reason) == ("scores.help", "wrong_type")
    assert error_of(parse_multi_rated, {"prompt": "q", "response": "a", "scores": {"x": None}}).reason == "no_scores"
    assert error_of(parse_multi_rated, {"prompt": "q", "response": "a", "scores": [1]}).reason == "wrong_type"


def test_ranked_accepts_ties_and_chat_responses():
    ex = parse_ranked(rec({"prompt": USER, "responses": [ASSIST, "b", "c"], "ranks": [0, 0, 1]}), F)
    assert ex == Ranked(prompt=USER, responses=[ASSIST, "b", "c"], ranks=[0, 0, 1], where="d.jsonl:3")


@pytest.mark.parametrize("data,field_name,reason", [
    ({"prompt": "q", "responses": ["a"], "ranks": [0]}, "responses", "too_few_responses"),
    ({"prompt": "q", "responses": ["a", "b"], "ranks": [0]}, "ranks", "rank_count"),
    ({"prompt": "q", "responses": ["a", "b"], "ranks": [0, -1]}, "ranks[1]", "bad_rank"),
    ({"prompt": "q", "responses": ["a", "b"], "ranks": [0, 1.5]}, "ranks[1]", "bad_rank"),
    ({"prompt": "q", "responses": ["a", "b"], "ranks": [1, 1]}, "ranks", "all_tied"),
    ({"prompt": "q", "responses": ["a", ""], "ranks": [0, 1]}, "responses[1]", "empty_response"),
    ({"prompt": "q", "responses": ["a", USER], "ranks": [0, 1]}, "responses[1]", "no_final_assistant"),
    ({"responses": ["a", "b"], "ranks": [0, 1]}, "prompt", "missing_field"),
])
def test_ranked_errors_name_the_field_and_reason(data, field_name, reason):
    err = error_of(parse_ranked, data)
    assert (err.field, err.reason) == (field_name, reason)


@pytest.mark.parametrize("keys,fmt", [
    ({"prompt": 1, "chosen": 1, "rejected": 1}, "pairs"),
    ({"chosen": 1, "rejected": 1}, "pairs"),
    ({"prompt": 1, "response": 1, "label": 1}, "binary"),
    ({"prompt": 1, "response": 1, "score": 1, "annotator": 1}, "scalar"),
    ({"prompt": 1, "response": 1, "scores": {}}, "multi"),
    ({"prompt": 1, "responses": 1, "ranks": 1}, "ranked"),
    ({"question": 1, "answer": 1}, None),
])
def test_format_is_detected_from_the_record_keys(keys, fmt):
    assert detect_format(keys, F) == fmt


def test_detection_follows_renamed_fields():
    fields = FieldsConfig(response="answer", label="ok")
    assert detect_format({"prompt": "q", "answer": "a", "ok": 1}, fields) == "binary"


def test_load_examples_detects_the_format_and_counts_skips(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "q", "response": "a", "score": 1}\n{"prompt": "q", "response": "b", "score": "x"}\n'
                 '{"prompt": "q", "response": "c", "score": 3}\n')
    report = SkipReport()
    ex = load_examples(SplitConfig(path=str(p)), DataConfig(on_invalid="skip"), report)
    assert [e.response for e in ex] == ["a", "c"] and all(isinstance(e, Rated) for e in ex)
    assert report.skipped == {"wrong_type": 1}
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'score'"):
        load_examples(SplitConfig(path=str(p)), DataConfig())


def test_load_examples_explicit_format_overrides_detection(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"prompt": "q", "response": "a", "label": 1, "score": 0.2}\n')
    assert isinstance(load_examples(SplitConfig(path=str(p)), DataConfig())[0], Labeled)
    assert isinstance(load_examples(SplitConfig(path=str(p)), DataConfig(format="scalar"))[0], Rated)


def test_unknown_layout_is_an_error_naming_the_first_record(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"question": "q", "answer": "a"}\n')
    with pytest.raises(DataError, match=r"d.jsonl:1: cannot tell the format .*answer, question"):
        load_examples(SplitConfig(path=str(p)), DataConfig())


def test_format_and_adapter_are_checked_literals():
    cfg = from_dict(DataConfig, {"format": "ranked", "adapter": "oasst", "train": {"path": "x", "adapter": "usr"}})
    assert (cfg.format, cfg.adapter, cfg.train.adapter) == ("ranked", "oasst", "usr")
    with pytest.raises(ConfigError, match="format"):
        from_dict(DataConfig, {"format": "pairwise"})
    with pytest.raises(ConfigError, match="adapter"):
        from_dict(DataConfig, {"adapter": "anthropic"})


def test_binary_csv_reads_text_labels_and_numbers(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text('prompt,response,label\nq,"a, with a comma",yes\nq,b,0\n')
    ex = load_examples(SplitConfig(path=str(p)), DataConfig())
    assert [(e.response, e.label) for e in ex] == [("a, with a comma", 1), ("b", 0)]
    assert ex[0].where == f"{p}:2"


def test_json_file_with_one_object_per_line_is_read_line_by_line(tmp_path):
    p = tmp_path / "halu.json"
    p.write_text('{"prompt": "q", "response": "a", "label": "no"}\n{"prompt": "q", "response": "b", "label": 5}\n')
    with pytest.raises(DataError, match=r"halu.json:2: field 'label'"):
        load_examples(SplitConfig(path=str(p)), DataConfig())


def test_repeated_record_id_is_an_error_in_every_format(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "a", "prompt": "q", "responses": ["x", "y"], "ranks": [0, 1]}\n'
                 '{"id": "a", "prompt": "q", "responses": ["x", "z"], "ranks": [1, 0]}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: field 'id': duplicated id 'a'"):
        load_examples(SplitConfig(path=str(p)), DataConfig())
    report = SkipReport()
    assert len(load_examples(SplitConfig(path=str(p)), DataConfig(on_invalid="skip"), report)) == 1
    assert report.skipped == {"duplicate_id": 1}
