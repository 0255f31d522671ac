"""Judge templates: a prompt and its response(s) rendered as a question to the model itself.

A generative (LM-head) reward reads the next-token logits at the end of a judge template (Zhang et al. 2024,
"Generative Verifiers", arXiv 2408.15240; Mahan et al. 2024, "Generative Reward Models", arXiv 2410.12832):

* **pointwise**: the conversation with the reply to judge, then a user turn with ``question``, then the start of
  the assistant's turn; the reward is ``logit(yes_token) - logit(no_token)`` of the next token.
* **pairwise**: one user turn that holds the conversation as a transcript, ``Reply A``, ``Reply B`` and
  ``pairwise_question``; the margin is ``logit(a_token) - logit(b_token)``, computed with the two replies in
  both orders (see :mod:`rewardkit.models.judge_readout`).

With a chat template (``style: chat``, the default where the tokenizer has one) the text is the tokenizer's own
chat format, so the judge is asked in the form the model was tuned on; ``style: plain`` writes
``Human:/Assistant:`` text and ends with ``Answer:`` (answer tokens then carry a leading space).

The rendered text is kept as pieces: fixed template text (role headers, special tokens, the question) and the
variable contents (messages, replies). Each piece is tokenized on its own so that over-long examples are cut in
the contents only, never in the question or the answer position: the conversation loses its oldest tokens
first, then the replies lose their ends (both replies equally, so neither order is favoured). Untruncated, the
piecewise tokens equal the tokens of the whole text (pinned by a test on real tokenizers), so a server that
receives the text (vLLM) sees the same ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from ..config import JudgeConfig
from .formats import Message, Text

Trim = Literal["keep", "left", "right"]

DEFAULT_POINTWISE_PLAIN = "{conversation}\n\nReply:\n{response}\n\n{question}"
# plain (no chat template) answers follow "Answer:", so the answer token is the word with its leading space
_PLAIN_TOKENS = {"yes": " Yes", "no": " No", "a": " A", "b": " B"}
_CHAT_TOKENS = {"yes": "Yes", "no": "No", "a": "A", "b": "B"}
_ROLE_NAMES = {"Human": "user", "Assistant": "assistant", "System": "system", "Tool": "tool"}
_TRANSCRIPT_ROLE = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}
_SENTINEL = "\x00judge{}\x00"


class JudgeTemplateError(ValueError):
    """A judge template setting that cannot work with this tokenizer (the message names the config key)."""


JudgeTemplateConfig = JudgeConfig
"""The judge settings (``model.judge``), defined in :mod:`rewardkit.config` with the other config sections."""


@dataclass(frozen=True)
class Piece:
    """A run of the judge text: fixed template text (``keep``) or content cut from the ``left`` or ``right``."""

    text: str
    trim: Trim = "keep"
    group: int = 0
    """Truncation order: lower groups are cut first; pieces of one group lose the same number of tokens."""
    reply: bool = False
    """The pointwise reply: where the response starts (what differs between the responses to one prompt)."""


@dataclass(frozen=True)
class JudgeInput:
    """One judge context, tokenized: the read-out is the next-token logits after the last id."""

    input_ids: list[int]
    truncated: int
    """Content tokens cut to fit ``max_length`` (0 when it fitted)."""
    cuts: dict[int, int]
    """Tokens cut per truncation group (what :func:`tokenize_pieces`'s ``at_least`` takes)."""
    response_start: int
    """Index of the first token of the reply piece (0 when there is none)."""


def resolve_style(cfg: JudgeTemplateConfig, tokenizer) -> Literal["chat", "plain"]:
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    if cfg.style == "chat" and not has_chat:
        raise JudgeTemplateError("model.judge.style is 'chat' but the tokenizer has no chat template; use 'plain' "
                                 "or 'auto'")
    if cfg.style == "auto":
        return "chat" if has_chat else "plain"
    return cfg.style


def single_token_id(tokenizer, text: str, key: str) -> int:
    """The id of ``text`` when it is exactly one token; a clear error naming ``key`` otherwise."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise JudgeTemplateError(f"{key} {text!r} is {len(ids)} tokens for this tokenizer ({pieces}); a judge reads "
                                 "the logit of one token: pick a string that is a single token (e.g. with or "
                                 "without a leading space)")
    return ids[0]


def answer_token_ids(cfg: JudgeTemplateConfig, tokenizer, mode: Literal["pointwise", "pairwise"]) -> tuple[int, int]:
    """(positive, negative) token ids: (yes, no) for pointwise, (A, B) for pairwise; each must be one token."""
    defaults = _CHAT_TOKENS if resolve_style(cfg, tokenizer) == "chat" else _PLAIN_TOKENS
    names = ("yes", "no") if mode == "pointwise" else ("a", "b")
    ids = []
    for name in names:
        text = getattr(cfg, f"{name}_token") or defaults[name]
        ids.append(single_token_id(tokenizer, text, f"model.judge.{name}_token"))
    if ids[0] == ids[1]:
        raise JudgeTemplateError(f"model.judge.{names[0]}_token and model.judge.{names[1]}_token are the same token "
                                 f"(id {ids[0]}); the margin would always be 0")
    return ids[0], ids[1]


def plain_to_messages(text: str) -> list[Message]:
    """``\\n\\nHuman: ... \\n\\nAssistant: ...`` (the hh-rlhf form) -> messages; other text is one user turn.

    A trailing empty ``Assistant:`` (an hh-rlhf prompt ends with one) is dropped."""
    parts = re.split(r"(?:^|\n\n)(Human|Assistant|System|Tool):", text)
    if len(parts) < 3 or parts[0].strip():
        return [{"role": "user", "content": text.strip()}]
    messages = [{"role": _ROLE_NAMES[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2)]
    if messages and messages[-1]["role"] == "assistant" and not messages[-1]["content"]:
        messages.pop()
    return messages


def as_messages(value: Text, role: str) -> list[Message]:
    if isinstance(value, list):
        return [dict(m) for m in value]
    return plain_to_messages(value) if role == "user" else [{"role": role, "content": value.strip()}]


def transcript(messages: list[Message]) -> str:
    return "\n".join(f"{_TRANSCRIPT_ROLE.get(m['role'], m['role'])}: {m['content']}" for m in messages)


def _reply_text(response: Text) -> str:
    return transcript(response) if isinstance(response, list) and len(response) > 1 else \
        (response[0]["content"] if isinstance(response, list) else response).strip()


def _split_on_sentinels(rendered: str, contents: list[Piece]) -> list[Piece]:
    """Template text rendered with sentinels in place of the contents -> fixed pieces and content pieces."""
    pieces: list[Piece] = []
    rest = rendered
    for i, content in enumerate(contents):
        mark = _SENTINEL.format(i)
        if rest.count(mark) != 1:
            raise JudgeTemplateError("the chat template does not insert message contents verbatim (it changed or "
                                     "repeated a message); use model.judge.style: plain")
        before, rest = rest.split(mark)
        if before:
            pieces.append(Piece(before))
        pieces.append(content)
    if rest:
        pieces.append(Piece(rest))
    return pieces


def _chat_pieces(tokenizer, messages: list[Message], contents: list[Piece]) -> list[Piece]:
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return _split_on_sentinels(rendered, contents)


def _format_pieces(fmt: str, values: dict[str, Piece]) -> tuple[str, list[Piece]]:
    """Fill a format string with sentinels; return it and the content pieces in the order they appear."""
    order = [name for name in re.findall(r"{(\w+)}", fmt) if name in values]
    filled = fmt.format(**{name: _SENTINEL.format(order.index(name)) if name in order else "" for name in values})
    return filled, [values[name] for name in order]


def pointwise_pieces(cfg: JudgeTemplateConfig, tokenizer, prompt: Text, response: Text) -> list[Piece]:
    """The pointwise judge text: conversation, the reply, the question, the assistant turn start."""
    conv = as_messages(prompt, "user")
    reply = _reply_text(response)
    if resolve_style(cfg, tokenizer) == "plain":
        values = {"conversation": Piece(transcript(conv), "left", 0), "response": Piece(reply, "right", 1, reply=True),
                  "question": Piece(cfg.question)}
        filled, contents = _format_pieces(DEFAULT_POINTWISE_PLAIN, values)
        return _split_on_sentinels(filled + "\nAnswer:", contents)
    # oldest message first; the reply only when the whole conversation is gone
    contents = [Piece(m["content"], "left", i) for i, m in enumerate(conv)] + [Piece(reply, "right", len(conv), reply=True)]
    messages = [{"role": m["role"], "content": _SENTINEL.format(i)} for i, m in enumerate(conv)]
    messages.append({"role": "assistant", "content": _SENTINEL.format(len(conv))})
    messages.append({"role": "user", "content": cfg.question})
    return _chat_pieces(tokenizer, messages, contents)


def pairwise_pieces(cfg: JudgeTemplateConfig, tokenizer, prompt: Text, reply_a: Text, reply_b: Text) -> list[Piece]:
    """The pairwise judge text with ``reply_a`` shown as A and ``reply_b`` as B (call twice for both orders)."""
    conv = as_messages(prompt, "user")
    # reply A marks where the two orders of one pair first differ (the response start: the conversation before it
    # is the prefix that shared-prompt packing computes once for both orders)
    values = {"conversation": Piece(transcript(conv), "left", 0),
              "reply_a": Piece(_reply_text(reply_a), "right", 1, reply=True),
              "reply_b": Piece(_reply_text(reply_b), "right", 1), "question": Piece(cfg.pairwise_question)}
    for name in ("conversation", "reply_a", "reply_b"):
        if "{" + name + "}" not in cfg.pairwise_format:
            raise JudgeTemplateError(f"model.judge.pairwise_format has no {{{name}}} placeholder")
    filled, contents = _format_pieces(cfg.pairwise_format, values)
    if resolve_style(cfg, tokenizer) == "plain":
        return _split_on_sentinels(filled + "\nAnswer:", contents)
    return _chat_pieces(tokenizer, [{"role": "user", "content": filled}], contents)


def pieces_text(pieces: list[Piece]) -> str:
    """The whole judge text (what a text-in server such as vLLM is sent)."""
    return "".join(p.text for p in pieces)


def tokenize_pieces(tokenizer, pieces: list[Piece], max_length: int | None = None,
                    at_least: dict[int, int] | None = None) -> JudgeInput:
    """Token ids of the judge text, cut in the content pieces to fit ``max_length``.

    The whole text is tokenized at once (so the ids are what a text-in server computes; BPE merges across piece
    boundaries, e.g. ``.\n\n``); each token then belongs to the content piece that holds all of its
    characters, and a token that straddles a boundary counts as fixed text: it is never cut. ``at_least``
    cuts that many tokens from each member of a group first (the responses to one prompt keep one context)."""
    text = pieces_text(pieces)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    owner = [-1] * len(ids)  # index of the content piece a token lies in; -1 for fixed text
    bounds, pos = [], 0
    for p in pieces:
        bounds.append((pos, pos + len(p.text)))
        pos += len(p.text)
    k = 0
    for t, (a, b) in enumerate(offsets):
        while k < len(pieces) - 1 and a >= bounds[k][1]:
            k += 1
        if pieces[k].trim != "keep" and a >= bounds[k][0] and b <= bounds[k][1]:
            owner[t] = k
    members_of = {i: [t for t, o in enumerate(owner) if o == i] for i, p in enumerate(pieces) if p.trim != "keep"}
    excess = 0 if max_length is None else len(ids) - max_length
    drop: set[int] = set()
    cuts: dict[int, int] = {}

    def cut(i: int, n: int) -> int:
        toks = members_of[i]
        n = min(n, len(toks))
        gone, members_of[i] = (toks[:n], toks[n:]) if pieces[i].trim == "left" else (toks[len(toks) - n:],
                                                                                      toks[:len(toks) - n])
        drop.update(gone)
        cuts[pieces[i].group] = cuts.get(pieces[i].group, 0) + n
        return n

    groups = sorted({p.group for p in pieces if p.trim != "keep"})
    for group, n in (at_least or {}).items():
        for i in [i for i, p in enumerate(pieces) if p.trim != "keep" and p.group == group]:
            excess -= cut(i, n)
    for group in groups:
        members = [i for i, p in enumerate(pieces) if p.trim != "keep" and p.group == group]
        while excess > 0 and any(members_of[i] for i in members):
            live = [i for i in members if members_of[i]]
            # every member loses the same count (rounded up), so the two replies of a pair lose equally whichever
            # is shown first; the cut may overshoot the budget by fewer tokens than there are members
            share = -(-excess // len(live))
            for i in live:
                excess -= cut(i, share)
    if excess > 0:
        fixed = sum(o == -1 for o in owner)
        raise JudgeTemplateError(f"data.max_length {max_length} is too small for the judge template: its fixed text "
                                 f"alone is {fixed} tokens")
    reply_char = next((bounds[i][0] for i, p in enumerate(pieces) if p.reply), None)
    kept = [t for t in range(len(ids)) if t not in drop]
    start = 0 if reply_char is None else next((j for j, t in enumerate(kept) if offsets[t][0] >= reply_char), 0)
    return JudgeInput([ids[t] for t in kept], len(drop), cuts, start)
