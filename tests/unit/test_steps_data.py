"""Step-level data: the documented layout, the three adapters, validation errors, rendering and step ends."""

import json

import pytest

from rewardkit.config import DataConfig, SplitConfig, StepsConfig
from rewardkit.data.errors import DataError, SkipReport
from rewardkit.data.render import Renderer
from rewardkit.data.step_tokenize import StepDropped, StepEncoder, add_step_token
from rewardkit.data.steps import Stepwise, load_steps

from ..conftest import REPO, load_test_tokenizer

EXAMPLES = REPO / "examples" / "data"


def _write(tmp_path, records, name="s.jsonl"):
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(p)


def _load(path, adapter=None, **steps):
    data = DataConfig(format="steps", adapter=adapter, steps=StepsConfig(**steps))
    return load_steps(SplitConfig(path=path), data)


def test_documented_layout_reads_text_and_chat_prompts_with_null_labels():
    ex = _load(str(EXAMPLES / "steps.jsonl"))
    assert len(ex) == 12
    assert isinstance(ex[-1].prompt, list) and ex[-1].labels == [0, None]
    assert ex[-1].correct is False and ex[-1].group == "chat1"
    assert all(len(e.steps) == len(e.labels) for e in ex)


def test_missing_labels_mean_a_solution_to_score(tmp_path):
    (ex,) = _load(_write(tmp_path, [{"prompt": "p", "steps": ["a", "b"]}]))
    assert ex.labels == [None, None]


@pytest.mark.parametrize("record, field, reason", [
    ({"prompt": "p", "steps": ["a", "b"], "labels": [1]}, "labels", "label_count"),
    ({"prompt": "p", "steps": ["a", "  "], "labels": [1, 1]}, "steps[1]", "empty_step"),
    ({"prompt": "p", "steps": [], "labels": []}, "steps", "no_steps"),
    ({"prompt": "p", "steps": ["a", "b"], "labels": [1, 2]}, "labels[1]", "bad_label"),
    ({"prompt": "p", "steps": ["a\n\nb"], "labels": [1]}, "steps[0]", "separator_in_step"),
    ({"steps": ["a"], "labels": [1]}, "prompt", "missing_field"),
])
def test_bad_records_name_file_line_and_field(tmp_path, record, field, reason):
    path = _write(tmp_path, [{"prompt": "ok", "steps": ["a"], "labels": [1]}, record])
    with pytest.raises(DataError) as err:
        _load(path)
    assert err.value.line == 2 and err.value.field == field and err.value.reason == reason
    assert str(err.value).startswith(f"{path}:2: field '{field}'")


def test_label_after_the_first_error_is_an_error_only_under_that_policy(tmp_path):
    path = _write(tmp_path, [{"prompt": "p", "steps": ["a", "b", "c"], "labels": [1, 0, 1]}])
    assert _load(path)[0].labels == [1, 0, 1]
    with pytest.raises(DataError) as err:
        _load(path, after_error="error")
    assert err.value.field == "labels[2]" and err.value.reason == "label_after_error"
    ok = _write(tmp_path, [{"prompt": "p", "steps": ["a", "b", "c"], "labels": [1, 0, None]}], "ok.jsonl")
    assert _load(ok, after_error="error")[0].first_error == 1


def test_skip_policy_counts_bad_records(tmp_path):
    path = _write(tmp_path, [{"prompt": "p", "steps": ["a"], "labels": [1, 1]}, {"prompt": "p", "steps": ["a"]}])
    report = SkipReport()
    data = DataConfig(format="steps", on_invalid="skip")
    assert len(load_steps(SplitConfig(path=path), data, report)) == 1
    assert report.skipped == {"label_count": 1}


def test_math_shepherd_adapter_splits_question_and_maps_plus_minus():
    ex = _load(str(EXAMPLES / "steps" / "math-shepherd.jsonl"), "math-shepherd")
    first = ex[0]
    assert first.prompt == "Start at 5. Subtract 8, add 3, subtract 3, add 8. What is the result?"
    assert first.steps == ["Step 1: 7 - 8 = -1", "Step 2: -1 + 3 = 2", "Step 3: 2 - 3 = -1", "Step 4: -1 + 8 = 7"]
    assert first.labels == [0, 0, 0, 0]
    assert ex[1].labels == [1, 0, 0, 0]


def test_math_shepherd_label_that_does_not_match_the_input_is_an_error(tmp_path):
    path = _write(tmp_path, [{"input": "Q? Step 1: a ки\nStep 2: b ки", "label": "Q? Step 1: a +\nStep 2: c -"}])
    with pytest.raises(DataError) as err:
        _load(path, "math-shepherd")
    assert err.value.field == "label" and err.value.reason == "label_mismatch"


def test_prm800k_adapter_follows_the_chosen_path_and_maps_ratings():
    ex = _load(str(EXAMPLES / "steps" / "prm800k.jsonl"), "prm800k")
    hand = ex[-1]
    # chosen completion 1 (neutral 0 -> positive by default), the human completion (1), then the first -1 ends it
    assert hand.steps == ["Let me add first.", "4 + 3 = 7", "7 - 5 = 3"]
    assert hand.labels == [1, 1, 0] and hand.correct is False
    negative = _load(str(EXAMPLES / "steps" / "prm800k.jsonl"), "prm800k", neutral="unlabelled")[-1]
    assert negative.labels == [None, 1, 0]
    solved = [e for e in ex[:-1] if e.correct]
    assert solved and all(all(y == 1 for y in e.labels) for e in solved)


def test_trl_stepwise_adapter_maps_booleans():
    ex = _load(str(EXAMPLES / "steps" / "trl-stepwise.jsonl"), "trl-stepwise")
    raw = json.loads((EXAMPLES / "steps" / "trl-stepwise.jsonl").read_text().splitlines()[0])
    assert ex[0].steps == raw["completions"] and ex[0].labels == [int(b) for b in raw["labels"]]


def test_a_non_step_adapter_is_refused_with_the_step_adapters_named(tmp_path):
    with pytest.raises(ValueError, match="prm800k"):
        _load(_write(tmp_path, [{}]), "hh-rlhf")


# --- rendering and step ends ---------------------------------------------------------------------------------

def _encoder(tok, max_length=512, **steps):
    return StepEncoder(tok, Renderer(tok, "decoder"), StepsConfig(**steps), max_length)


def _ex(steps, labels=None, prompt="Start at 2. Add 3, add 4."):
    return Stepwise(prompt=prompt, steps=steps, labels=labels or [1] * len(steps), where="f.jsonl:3")


@pytest.mark.parametrize("tok_name", ["gpt2", "qwen2"])
def test_each_step_end_is_the_last_token_of_its_separator(tokenizer_dirs, tok_name):
    tok = load_test_tokenizer(tokenizer_dirs, tok_name)
    enc = _encoder(tok).encode(_ex(["2 + 3 = 5", "5 + 4 = 9"]))
    assert len(enc.step_ends) == 2 and enc.step_ends[-1] == len(enc.input_ids) - 1
    # the text up to each step end is exactly the prompt, the steps so far and their separators
    upto = [tok.decode(enc.input_ids[:e + 1]) for e in enc.step_ends]
    assert upto[0].endswith("2 + 3 = 5\n\n") and upto[1].endswith("5 + 4 = 9\n\n")
    assert tok.decode(enc.input_ids[enc.response_start:]).startswith("2 + 3")


def test_step_token_marks_every_step_end_with_one_id(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    tid = add_step_token(tok, StepsConfig(step_token="<|step|>"))
    enc = _encoder(tok, step_token="<|step|>").encode(_ex(["2 + 3 = 5", "5 + 4 = 9", "9 - 1 = 8"]))
    assert [enc.input_ids[e] for e in enc.step_ends] == [tid] * 3
    assert [i for i, t in enumerate(enc.input_ids) if t == tid] == enc.step_ends


def test_chat_prompt_goes_through_the_template(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    enc = _encoder(tok).encode(_ex(["3 + 4 = 7"], prompt=[{"role": "user", "content": "3 + 4?"}]))
    text = tok.decode(enc.input_ids)
    assert text.startswith("<|im_start|>") and "<|im_start|>assistant\n3 + 4 = 7\n\n" in text


def test_truncation_drops_whole_trailing_steps_and_counts_them(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    full = _encoder(tok).encode(_ex(["2 + 3 = 5", "5 + 4 = 9", "9 - 1 = 8"], [1, 1, 0]))
    enc = _encoder(tok, max_length=full.step_ends[1] + 2)
    cut = enc.encode(_ex(["2 + 3 = 5", "5 + 4 = 9", "9 - 1 = 8"], [1, 1, 0]))
    assert cut.step_ends == full.step_ends[:2] and cut.labels == [1, 1] and cut.dropped_steps == 1
    assert cut.input_ids == full.input_ids[:full.step_ends[1] + 1]
    assert enc.stats.summary() == {"solutions": 1, "steps": 3, "solutions_truncated": 1, "steps_dropped": 1,
                                   "solutions_dropped": 0}
    with pytest.raises(StepDropped):
        _encoder(tok, max_length=4).encode(_ex(["2 + 3 = 5"]))


def test_truncation_error_policy_names_the_record(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    with pytest.raises(DataError) as err:
        _encoder(tok, max_length=8, truncation="error").encode(_ex(["2 + 3 = 5", "5 + 4 = 9"]))
    assert err.value.source == "f.jsonl" and err.value.line == 3 and err.value.reason == "too_long"


@pytest.mark.parametrize("tok_name", ["gpt2", "qwen2"])
def test_a_steps_tokens_do_not_depend_on_the_steps_after_it(tokenizer_dirs, tok_name):
    tok = load_test_tokenizer(tokenizer_dirs, tok_name)
    full = _encoder(tok).encode(_ex(["2 + 3 = 5", "5 + 4 = 9"]))
    part = _encoder(tok).encode(_ex(["2 + 3 = 5"]))
    assert full.input_ids[:len(part.input_ids)] == part.input_ids and full.step_ends[0] == part.step_ends[0]


def test_with_a_step_token_the_whole_text_tokenizes_to_the_same_ids(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    add_step_token(tok, StepsConfig(step_token="<|step|>"))
    enc = _encoder(tok, step_token="<|step|>")
    text, _, _ = enc.render("Start at 2. Add 3, add 4.", ["2 + 3 = 5", "5 + 4 = 9"])
    assert enc.encode(_ex(["2 + 3 = 5", "5 + 4 = 9"])).input_ids == tok(text)["input_ids"]
