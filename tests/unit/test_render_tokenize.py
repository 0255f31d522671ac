import pytest

from rewardkit.data.errors import DataError
from rewardkit.data.render import Renderer
from rewardkit.data.tokenize import Dropped, SequenceEncoder

from ..conftest import load_test_tokenizer

PROMPT = "\n\nHuman: What is the capital of France?\n\nAssistant:"
RESPONSE = " The capital of France is Paris."


def test_decoder_plain_appends_eos_and_records_boundaries(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    enc = SequenceEncoder(tok, "decoder", 512).encode(Renderer(tok, "decoder").render(PROMPT, RESPONSE))
    assert enc.input_ids[enc.score_index] == tok.eos_token_id
    assert enc.score_index == len(enc.input_ids) - 1
    assert tok.decode(enc.input_ids[enc.response_start:enc.score_index]) == RESPONSE
    assert tok.decode(enc.input_ids[:enc.response_start]) == PROMPT


def test_plain_separator_only_when_the_boundary_has_no_whitespace(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    r = Renderer(tok, "decoder", separator="\n")
    assert r.render("Question?", "Answer.").prompt == "Question?\n"
    assert r.render(PROMPT, RESPONSE).prompt == PROMPT


def test_chat_template_scores_the_end_of_turn_token(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    prompt = [{"role": "user", "content": "Say hi"}]
    response = [{"role": "assistant", "content": "Hi there!"}]
    rendered = Renderer(tok, "decoder").render(prompt, response)
    assert rendered.chat
    enc = SequenceEncoder(tok, "decoder", 512).encode(rendered)
    assert tok.convert_ids_to_tokens(enc.input_ids[enc.score_index]) == "<|im_end|>"
    assert enc.score_index == len(enc.input_ids) - 1
    assert tok.decode(enc.input_ids[enc.response_start:enc.score_index]) == "Hi there!"
    assert tok.decode(enc.input_ids[:enc.response_start]).endswith("<|im_start|>assistant\n")


def test_text_data_stays_plain_under_auto_even_with_a_chat_template(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    assert not Renderer(tok, "decoder").render(PROMPT, RESPONSE).chat
    assert Renderer(tok, "decoder", template="chat").render(PROMPT, RESPONSE).chat


def test_encoder_pair_scores_cls(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "bert")
    enc = SequenceEncoder(tok, "encoder", 512).encode(Renderer(tok, "encoder").render(PROMPT, RESPONSE))
    assert enc.score_index == 0 and enc.input_ids[0] == tok.cls_token_id
    assert enc.input_ids[-1] == tok.sep_token_id
    assert enc.token_type_ids[enc.response_start] == 1 and enc.token_type_ids[enc.response_start - 1] == 0
    assert tok.decode(enc.input_ids[enc.response_start:-1]) == RESPONSE.strip().lower()


@pytest.mark.parametrize("kind, name", [("decoder", "gpt2"), ("encoder", "bert")])
def test_truncation_keeps_score_token_and_response_end_and_counts(tokenizer_dirs, kind, name):
    tok = load_test_tokenizer(tokenizer_dirs, name)
    long_prompt = "\n\nHuman: " + " ".join(f"word{i}" for i in range(400)) + "\n\nAssistant:"
    renderer = Renderer(tok, kind)
    full = SequenceEncoder(tok, kind, 10_000).encode(renderer.render(long_prompt, RESPONSE))
    encoder = SequenceEncoder(tok, kind, 64)
    enc = encoder.encode(renderer.render(long_prompt, RESPONSE), "f.jsonl:3")
    assert len(enc.input_ids) == 64
    # the response and the score token are intact, at the end
    n_resp = len(full.input_ids) - full.response_start
    assert enc.input_ids[-n_resp:] == full.input_ids[-n_resp:]
    assert enc.input_ids[enc.score_index] == full.input_ids[full.score_index]
    assert encoder.stats.summary() == {"sequences": 1, "prompt_truncated": 1, "response_truncated": 0, "dropped": 0}


def test_response_longer_than_max_keeps_its_end(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    response = " " + " ".join(f"w{i}" for i in range(200)) + " THE END"
    encoder = SequenceEncoder(tok, "decoder", 32)
    enc = encoder.encode(Renderer(tok, "decoder").render("Q:", response))
    assert len(enc.input_ids) == 32 and enc.response_start == 0
    assert tok.decode(enc.input_ids[:-1]).endswith("THE END")
    assert encoder.stats.counts["response_truncated"] == 1


def test_drop_and_error_policies(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    rendered = Renderer(tok, "decoder").render("Q: " + "x " * 100, RESPONSE)
    drop = SequenceEncoder(tok, "decoder", 16, "drop")
    with pytest.raises(Dropped):
        drop.encode(rendered, "f.jsonl:5")
    assert drop.stats.counts["dropped"] == 1
    with pytest.raises(DataError, match=r"f\.jsonl:5: field 'prompt': \d+ tokens is more than data.max_length=16"):
        SequenceEncoder(tok, "decoder", 16, "error").encode(rendered, "f.jsonl:5")


LONG_PROMPT = "\n\nHuman: " + " ".join(f"word{i}" for i in range(200)) + "\n\nAssistant:"


@pytest.mark.parametrize("kind, name", [("decoder", "gpt2"), ("encoder", "bert")])
def test_a_truncated_group_keeps_identical_prompt_tokens(tokenizer_dirs, kind, name):
    """Only the longest member overflows, yet every member loses the same prompt tokens: one context for all."""
    tok = load_test_tokenizer(tokenizer_dirs, name)
    renderer = Renderer(tok, kind)
    responses = [" " + " ".join(f"long{i}" for i in range(30)), " No.", " Maybe, it depends."]
    encoder = SequenceEncoder(tok, kind, 96)
    group = encoder.encode_group([renderer.render(LONG_PROMPT, r) for r in responses], "f.jsonl:2")
    # the longest member is cut to fit exactly; the others fit, with room to spare
    assert len(group[0].input_ids) == 96 and all(len(s.input_ids) < 96 for s in group[1:])
    prompts = [s.input_ids[:s.response_start] for s in group]
    assert prompts[1] == prompts[0] and prompts[2] == prompts[0]
    full = [SequenceEncoder(tok, kind, 10_000).encode(renderer.render(LONG_PROMPT, r)) for r in responses]
    for s, f in zip(group, full, strict=True):  # the responses and score tokens are intact
        assert s.input_ids[s.response_start:] == f.input_ids[f.response_start:]
        assert s.input_ids[s.score_index] == f.input_ids[f.score_index]
    assert encoder.stats.summary() == {"sequences": 3, "prompt_truncated": 3, "response_truncated": 0, "dropped": 0}


def test_a_pair_is_not_truncated_when_both_fit(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    renderer = Renderer(tok, "decoder")
    encoder = SequenceEncoder(tok, "decoder", 512)
    c, r = encoder.encode_group([renderer.render(PROMPT, RESPONSE), renderer.render(PROMPT, " No.")])
    assert c == encoder.encode(renderer.render(PROMPT, RESPONSE))
    assert encoder.stats.counts["prompt_truncated"] == 0


def test_a_response_longer_than_max_leaves_the_whole_group_without_prompt(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    renderer = Renderer(tok, "decoder")
    long_response = " " + " ".join(f"w{i}" for i in range(200)) + " THE END"
    encoder = SequenceEncoder(tok, "decoder", 32)
    long, short = encoder.encode_group([renderer.render(PROMPT, long_response), renderer.render(PROMPT, RESPONSE)])
    assert len(long.input_ids) == 32 and long.response_start == 0
    assert tok.decode(long.input_ids[:-1]).endswith("THE END")
    assert short.response_start == 0 and tok.decode(short.input_ids[:-1]) == RESPONSE
    assert encoder.stats.summary() == {"sequences": 2, "prompt_truncated": 2, "response_truncated": 1, "dropped": 0}


def test_drop_and_error_policies_in_a_group(tokenizer_dirs):
    tok = load_test_tokenizer(tokenizer_dirs, "gpt2")
    renderer = Renderer(tok, "decoder")
    group = [renderer.render("Q:", " " + "x " * 100), renderer.render("Q:", " Short.")]
    drop = SequenceEncoder(tok, "decoder", 16, "drop")
    long, short = drop.encode_group(group, "f.jsonl:7")
    assert long is None and short == SequenceEncoder(tok, "decoder", 16).encode(group[1])
    assert drop.stats.counts["dropped"] == 1
    # the response alone is too long: it is named, not the prompt (a caller's field name when it gives one)
    with pytest.raises(DataError, match=r"f\.jsonl:7: field 'response': \d+ tokens is more than data.max_length=16 "
                       "with the response alone"):
        SequenceEncoder(tok, "decoder", 16, "error").encode_group(group, "f.jsonl:7")
    with pytest.raises(DataError, match=r"field 'chosen': "):
        SequenceEncoder(tok, "decoder", 16, "error").encode_group(group, "f.jsonl:7", names=("chosen", "rejected"))
