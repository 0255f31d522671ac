"""Judge templates on real tokenizers: the text the model is asked, its tokens, the answer tokens, truncation."""

from __future__ import annotations

import gzip
import json

import pytest

from rewardkit.data.judge_template import (
    JudgeTemplateConfig,
    JudgeTemplateError,
    answer_token_ids,
    pairwise_pieces,
    pieces_text,
    plain_to_messages,
    pointwise_pieces,
    single_token_id,
    tokenize_pieces,
)
from tests.conftest import HH_SAMPLE, REPO, load_test_tokenizer

CFG = JudgeTemplateConfig()
HH_PROMPT = "\n\nHuman: How do I make tea?\n\nAssistant: With hot water.\n\nHuman: And then?\n\nAssistant:"


@pytest.fixture(scope="module")
def qwen(tokenizer_dirs):
    return load_test_tokenizer(tokenizer_dirs, "qwen2")


@pytest.fixture(scope="module")
def gpt2(tokenizer_dirs):
    return load_test_tokenizer(tokenizer_dirs, "gpt2")


def _real_hh_pairs(n: int) -> list[tuple[str, str, str]]:
    from rewardkit.data.formats import split_implicit_prompt

    out = []
    with gzip.open(REPO / "src/rewardkit/assets/hh-rlhf/harmless-base-test.jsonl.gz", "rt") as f:
        for line in f:
            rec = json.loads(line)
            out.append(split_implicit_prompt(rec["chosen"], rec["rejected"]))
            if len(out) == n:
                return out
    return out


def test_hh_dialogue_becomes_chat_messages_without_the_open_assistant_turn():
    assert plain_to_messages(HH_PROMPT) == [
        {"role": "user", "content": "How do I make tea?"},
        {"role": "assistant", "content": "With hot water."},
        {"role": "user", "content": "And then?"},
    ]
    assert plain_to_messages("just a question") == [{"role": "user", "content": "just a question"}]


def test_pointwise_template_is_the_conversation_then_the_question_then_the_assistant_turn_start(qwen):
    pieces = pointwise_pieces(CFG, qwen, HH_PROMPT, " Let it steep.")
    expected = qwen.apply_chat_template(
        [{"role": "user", "content": "How do I make tea?"}, {"role": "assistant", "content": "With hot water."},
         {"role": "user", "content": "And then?"}, {"role": "assistant", "content": "Let it steep."},
         {"role": "user", "content": CFG.question}], tokenize=False, add_generation_prompt=True)
    assert pieces_text(pieces) == expected
    assert expected.endswith(CFG.question + "<|im_end|>\n<|im_start|>assistant\n")


def test_judge_answer_is_the_next_token_after_the_template(qwen):
    yes, no = answer_token_ids(CFG, qwen, "pointwise")
    pieces = pointwise_pieces(CFG, qwen, HH_PROMPT, " Let it steep.")
    ids = tokenize_pieces(qwen, pieces).input_ids
    # the model writing "Yes" right there is exactly the token whose logit is read
    assert qwen.encode(pieces_text(pieces) + "Yes", add_special_tokens=False) == ids + [yes]
    assert qwen.encode(pieces_text(pieces) + "No", add_special_tokens=False) == ids + [no]
    assert qwen.convert_ids_to_tokens(ids[-3:]) == ["<|im_start|>", "assistant", "Ċ"]


@pytest.mark.parametrize("tok_name", ["qwen2", "gpt2"])
def test_piecewise_tokens_equal_the_tokens_of_the_whole_text_on_real_hh_pairs(tokenizer_dirs, tok_name):
    tok = load_test_tokenizer(tokenizer_dirs, tok_name)
    for prompt, chosen, rejected in _real_hh_pairs(25):
        for pieces in (pointwise_pieces(CFG, tok, prompt, chosen), pairwise_pieces(CFG, tok, prompt, chosen, rejected)):
            assert tokenize_pieces(tok, pieces).input_ids == tok.encode(pieces_text(pieces), add_special_tokens=False)


def test_answer_token_of_several_tokens_is_an_error_naming_the_key(qwen):
    cfg = JudgeTemplateConfig(yes_token="Absolutely yes")
    with pytest.raises(JudgeTemplateError, match=r"model\.judge\.yes_token 'Absolutely yes' is 2 tokens"):
        answer_token_ids(cfg, qwen, "pointwise")
    with pytest.raises(JudgeTemplateError, match=r"model\.judge\.b_token"):
        answer_token_ids(JudgeTemplateConfig(b_token="Bzzzzqx"), qwen, "pairwise")


def test_yes_and_no_must_be_different_tokens(qwen):
    with pytest.raises(JudgeTemplateError, match="same token"):
        answer_token_ids(JudgeTemplateConfig(yes_token="No"), qwen, "pointwise")


def test_single_token_answers_give_their_ids(qwen):
    assert answer_token_ids(CFG, qwen, "pointwise") == (single_token_id(qwen, "Yes", "k"), single_token_id(qwen, "No", "k"))
    assert answer_token_ids(CFG, qwen, "pairwise") == (single_token_id(qwen, "A", "k"), single_token_id(qwen, "B", "k"))


def test_plain_style_without_chat_template_ends_with_answer_and_spaced_tokens(gpt2):
    pieces = pointwise_pieces(CFG, gpt2, HH_PROMPT, " Let it steep.")
    text = pieces_text(pieces)
    assert text.startswith("User: How do I make tea?\nAssistant: With hot water.\nUser: And then?\n\nReply:\n")
    assert text.endswith(CFG.question + "\nAnswer:")
    yes, no = answer_token_ids(CFG, gpt2, "pointwise")
    assert gpt2.decode([yes]) == " Yes" and gpt2.decode([no]) == " No"
    assert gpt2.encode(text + " Yes") == tokenize_pieces(gpt2, pieces).input_ids + [yes]


def test_chat_style_needs_a_chat_template(gpt2):
    with pytest.raises(JudgeTemplateError, match="model.judge.style is 'chat'"):
        pointwise_pieces(JudgeTemplateConfig(style="chat"), gpt2, HH_PROMPT, "x")


def test_pairwise_template_shows_the_first_reply_as_a_and_swaps_in_the_other_order(qwen):
    ab = pieces_text(pairwise_pieces(CFG, qwen, HH_PROMPT, " Steep it.", " Go away."))
    ba = pieces_text(pairwise_pieces(CFG, qwen, HH_PROMPT, " Go away.", " Steep it."))
    assert "Reply A:\nSteep it.\n\nReply B:\nGo away.\n\n" + CFG.pairwise_question in ab
    assert "Reply A:\nGo away.\n\nReply B:\nSteep it.\n\n" + CFG.pairwise_question in ba
    assert ab.count("<|im_start|>user") == 1 and ab.endswith("<|im_start|>assistant\n")
    assert ab.replace("Steep it.", "#").replace("Go away.", "Steep it.").replace("#", "Go away.") == ba


def test_pairwise_format_without_a_reply_placeholder_is_an_error(qwen):
    with pytest.raises(JudgeTemplateError, match=r"pairwise_format has no \{reply_b\}"):
        pairwise_pieces(JudgeTemplateConfig(pairwise_format="{conversation} {reply_a} {question}"), qwen, "q", "a", "b")


def test_truncation_cuts_the_oldest_conversation_first_and_keeps_the_question(qwen):
    long_first = "\n\nHuman: " + "tea " * 200 + "\n\nAssistant: Sure.\n\nHuman: And then?\n\nAssistant:"
    pieces = pointwise_pieces(CFG, qwen, long_first, " Let it steep.")
    full = tokenize_pieces(qwen, pieces)
    cut = tokenize_pieces(qwen, pieces, max_length=120)
    assert full.truncated == 0 and len(cut.input_ids) <= 120 and cut.truncated == len(full.input_ids) - len(cut.input_ids)
    text = qwen.decode(cut.input_ids)
    assert "Sure.<|im_end|>" in text and "And then?" in text and "Let it steep." in text
    assert text.endswith(CFG.question + "<|im_end|>\n<|im_start|>assistant\n")


def test_pairwise_truncation_cuts_both_replies_equally_in_either_order(qwen):
    a, b = " " + "steep it well " * 40, " " + "go away now " * 60
    cut_ab = tokenize_pieces(qwen, pairwise_pieces(CFG, qwen, HH_PROMPT, a, b), max_length=140)
    cut_ba = tokenize_pieces(qwen, pairwise_pieces(CFG, qwen, HH_PROMPT, b, a), max_length=140)
    assert cut_ab.truncated == cut_ba.truncated > 0 and len(cut_ab.input_ids) == len(cut_ba.input_ids) <= 140
    # the same reply keeps the same tokens whichever position it is shown in
    ta, tb = qwen.decode(cut_ab.input_ids), qwen.decode(cut_ba.input_ids)
    kept_a = ta.split("Reply A:\n")[1].split("\n\nReply B:")[0]
    assert kept_a == tb.split("Reply B:\n")[1].split("\n\n" + CFG.pairwise_question)[0]
    assert "Conversation:\n" in ta and ta.endswith("<|im_start|>assistant\n")


def test_max_length_below_the_fixed_template_text_is_a_clear_error(qwen):
    with pytest.raises(JudgeTemplateError, match="data.max_length 10 is too small for the judge template"):
        tokenize_pieces(qwen, pointwise_pieces(CFG, qwen, HH_PROMPT, " Steep."), max_length=10)


def test_messages_prompt_and_text_prompt_render_the_same_judge_text(qwen):
    messages = plain_to_messages(HH_PROMPT)
    assert pieces_text(pointwise_pieces(CFG, qwen, messages, [{"role": "assistant", "content": "Steep."}])) == \
        pieces_text(pointwise_pieces(CFG, qwen, HH_PROMPT, " Steep."))
    prompt, chosen, rejected = HH_SAMPLE[0]["chosen"], "x", "y"
    assert pieces_text(pairwise_pieces(CFG, qwen, prompt, chosen, rejected))
