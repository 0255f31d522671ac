"""What can be scored: one response (`{prompt, response}` or a conversation `{messages}`) or a pair
(`{prompt?, chosen, rejected}`), validated with errors that name the field; and OpenRLHF's full-text queries.

Shared by `rewardkit score` and the HTTP server so that both turn the same record into the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..config import FieldsConfig
from ..data.errors import DataError
from ..data.formats import ASSISTANT_MARKER, Pair, Text, _check_response, _messages, parse_pair
from ..data.readers import Record
from ..data.render import Rendered

RecordKind = Literal["single", "pair"]


@dataclass(frozen=True)
class Single:
    """One response to score: ``prompt`` is text or messages (may be empty), ``response`` text or messages."""

    prompt: Text
    response: Text
    where: str


def record_kind(data: dict) -> RecordKind:
    """Pairs carry ``chosen`` and ``rejected``; everything else is scored as a single response."""
    return "pair" if "chosen" in data or "rejected" in data else "single"


def _text_field(rec: Record, name: str, allow_empty: bool = False) -> Text:
    value = rec.data.get(name)
    if value is None:
        raise DataError(rec.source, rec.line, name, f"missing; a single-response record needs '{name}' (or "
                        "'messages')", "missing_field")
    if isinstance(value, str):
        if not allow_empty and not value.strip():
            raise DataError(rec.source, rec.line, name, "is empty", "empty_response")
        return value
    if isinstance(value, list):
        if allow_empty and not value:
            return value
        return _messages(value, rec, name)
    raise DataError(rec.source, rec.line, name, f"expected text or a list of messages, got "
                    f"{type(value).__name__}", "wrong_type")


def parse_single(rec: Record) -> Single:
    """``{prompt, response}`` or ``{messages}`` (a conversation whose final assistant turns are the response)."""
    if "messages" in rec.data and "response" not in rec.data:
        msgs = _messages(rec.data["messages"], rec, "messages")
        n = len(msgs)
        while n > 0 and msgs[n - 1]["role"] == "assistant":
            n -= 1
        if n == len(msgs):
            raise DataError(rec.source, rec.line, "messages", "the conversation must end with an assistant turn",
                            "no_final_assistant")
        response = msgs[n:]
        _check_response(response, rec, "messages")
        return Single(msgs[:n], response, rec.where)
    prompt = _text_field(rec, "prompt", allow_empty=True)
    response = _text_field(rec, "response")
    if isinstance(response, list):
        _check_response(response, rec, "response")
    return Single(prompt, response, rec.where)


def parse_item(rec: Record, fields: FieldsConfig | None = None) -> Single | Pair:
    """A record as a :class:`Single` or a :class:`Pair`; raises :class:`DataError` naming the field."""
    if record_kind(rec.data) == "pair":
        return parse_pair(rec, fields or FieldsConfig())
    return parse_single(rec)


@dataclass(frozen=True)
class QuerySplit:
    prompt: str
    response: str
    how: Literal["prompt", "assistant_marker", "whole"]
    """`prompt`: the query starts with the given prompt; `assistant_marker`: split after the last
    ``\\n\\nAssistant:``; `whole`: no boundary found, the whole query is scored as the response."""


def split_query(query: str, prompt: str | None, pad_token: str | None = None) -> QuerySplit:
    """Split an OpenRLHF query (prompt and response already joined and templated by the client).

    Trailing pad tokens are removed first (OpenRLHF's own server strips them too). When the query starts with
    its prompt the boundary is exact. Otherwise (no prompts sent, or a client that re-templated the prompt)
    the text is cut after its last ``\\n\\nAssistant:`` marker, else scored whole with an empty prompt; the
    tokens are the same either way for decoders, only prompt-side truncation of over-long texts differs.
    """
    if pad_token:
        while query.endswith(pad_token):
            query = query[: -len(pad_token)]
    if prompt and query.startswith(prompt) and len(query) > len(prompt):
        return QuerySplit(prompt, query[len(prompt):], "prompt")
    k = query.rfind(ASSISTANT_MARKER)
    if k >= 0 and k + len(ASSISTANT_MARKER) < len(query):
        n = k + len(ASSISTANT_MARKER)
        return QuerySplit(query[:n], query[n:], "assistant_marker")
    return QuerySplit("", query, "whole")


def rendered_query(split: QuerySplit, chat: bool) -> Rendered:
    """The query's text exactly as sent: no template or separator is added (the client already templated it).

    ``chat`` marks text produced by a chat template (special tokens in the text, no BOS added again)."""
    return Rendered(split.prompt, split.response.rstrip() if chat else split.response, chat=chat)
