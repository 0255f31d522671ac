"""Prompt + response -> text, and which token is scored.

Decoders see one text, ``prompt_text + response_text``; encoders see the two as a text pair
(``[CLS] prompt [SEP] response [SEP]``). Conversational data goes through the tokenizer's chat template when
it has one (``template: auto``); otherwise through the documented plain format below.

Plain format for messages (the hh-rlhf convention)::

    \\n\\nSystem: ...\\n\\nHuman: ...\\n\\nAssistant: ...

The prompt ends with ``\\n\\nAssistant:`` and the response text starts with a space. A text prompt and a
text response are joined with ``separator`` unless either side already has whitespace at the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import Message, Text

_PLAIN_ROLE = {"system": "System", "user": "Human", "assistant": "Assistant", "tool": "Tool"}


@dataclass(frozen=True)
class Rendered:
    """``prompt`` + ``response`` is the full text (decoders); the two are a text pair for encoders."""

    prompt: str
    response: str
    chat: bool
    """True when a chat template produced the text: it already holds the special tokens."""


def render_plain_messages(messages: list[Message]) -> str:
    return "".join(f"\n\n{_PLAIN_ROLE[m['role']]}: {m['content']}" for m in messages)


class Renderer:
    def __init__(self, tokenizer, kind: str, template: str = "auto", separator: str = "\n"):
        self.tokenizer = tokenizer
        self.kind = kind
        self.template = template
        self.separator = separator
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        if template == "chat" and not self.has_chat_template:
            raise ValueError("data.template is 'chat' but the tokenizer has no chat template; use 'plain' or "
                             "'auto'")

    def uses_chat(self, prompt: Text, response: Text) -> bool:
        if self.kind == "encoder" or self.template == "plain":
            return False
        if self.template == "chat":
            return True
        return self.has_chat_template and (isinstance(prompt, list) or isinstance(response, list))

    def render(self, prompt: Text, response: Text) -> Rendered:
        if self.uses_chat(prompt, response):
            return self._render_chat(_as_messages(prompt, "user"), _as_messages(response, "assistant"))
        if self.kind == "encoder":
            p = render_plain_messages(prompt).strip() if isinstance(prompt, list) else prompt
            r = _response_text(response)
            return Rendered(p, r, chat=False)
        if isinstance(response, list) and len(response) > 1:
            p = render_plain_messages(prompt) if isinstance(prompt, list) else prompt
            r = render_plain_messages(response)
        elif isinstance(response, list):
            p = render_plain_messages(prompt) + "\n\nAssistant:" if isinstance(prompt, list) else prompt
            r = " " + response[0]["content"]
        else:
            p = render_plain_messages(prompt) + "\n\nAssistant:" if isinstance(prompt, list) else prompt
            r = response
        if p and r and not p[-1].isspace() and not r[0].isspace():
            p = p + self.separator
        return Rendered(p, r, chat=False)

    def _render_chat(self, prompt: list[Message], response: list[Message]) -> Rendered:
        tok = self.tokenizer
        full = tok.apply_chat_template(prompt + response, tokenize=False)
        # drop what the template adds after the end-of-turn token (usually "\n"): the score token is last
        full = full.rstrip()
        head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) if prompt else ""
        if not full.startswith(head):
            n = 0
            while n < min(len(full), len(head)) and full[n] == head[n]:
                n += 1
            head = full[:n]
        return Rendered(head, full[len(head):], chat=True)


def _as_messages(value: Text, role: str) -> list[Message]:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


def _response_text(value: Text) -> str:
    if isinstance(value, str):
        return value
    if len(value) == 1:
        return value[0]["content"]
    # several turns in the response (e.g. a tool call and the final answer): keep them all, plain
    return render_plain_messages(value).strip()
