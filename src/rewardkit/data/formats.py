"""Typed examples, one per record, validated with errors that name file, line and field.

Pairwise record layouts (field names are configurable, see :class:`rewardkit.config.FieldsConfig`):

* ``{"prompt": ..., "chosen": ..., "rejected": ..., "margin"?: float}``: explicit prompt;
* ``{"chosen": ..., "rejected": ...}``: implicit prompt, the common prefix of the two (hh-rlhf dialogues
  ``\\n\\nHuman: ... \\n\\nAssistant: ...``, or two message lists that share their first turns).

Each of prompt/chosen/rejected is either text or chat messages ``[{"role": ..., "content": ...}]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..config import FieldsConfig
from .errors import DataError, SkipReport
from .readers import Record

Message = dict[str, str]
Text = str | list[Message]
ROLES = ("system", "user", "assistant", "tool")
ASSISTANT_MARKER = "\n\nAssistant:"


@dataclass(frozen=True)
class Pair:
    """One preference: ``chosen`` is better than ``rejected`` as a reply to ``prompt``.

    ``prompt`` is text or messages; a response is text, or the assistant messages that end the conversation.
    """

    prompt: Text
    chosen: Text
    rejected: Text
    margin: float | None
    where: str


def _messages(value: object, rec: Record, name: str) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise DataError(rec.source, rec.line, name, "expected a non-empty list of {role, content} messages",
                        "wrong_type")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(rec.source, rec.line, f"{name}[{i}]", "each message needs 'role' and 'content'",
                            "bad_message")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise DataError(rec.source, rec.line, f"{name}[{i}].role", f"unknown role {role!r}; use one of "
                            f"{', '.join(ROLES)}", "unknown_role")
        if not isinstance(content, str):
            raise DataError(rec.source, rec.line, f"{name}[{i}].content", f"expected text, got "
                            f"{type(content).__name__}", "wrong_type")
        out.append({"role": role, "content": content})
    return out


def _text_or_messages(rec: Record, name: str, field_name: str) -> Text:
    if field_name not in rec.data or rec.data[field_name] is None:
        raise DataError(rec.source, rec.line, field_name, f"missing; a pairwise record needs '{field_name}' "
                        "(map other names with data.fields)", "missing_field")
    value = rec.data[field_name]
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _messages(value, rec, field_name)
    raise DataError(rec.source, rec.line, field_name, f"expected text or a list of messages, got "
                    f"{type(value).__name__}", "wrong_type")


def _check_response(value: Text, rec: Record, field_name: str) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise DataError(rec.source, rec.line, field_name, "the response is empty", "empty_response")
        return
    if value[-1]["role"] != "assistant":
        raise DataError(rec.source, rec.line, field_name, "the conversation must end with an assistant turn",
                        "no_final_assistant")
    if not value[-1]["content"].strip():
        raise DataError(rec.source, rec.line, field_name, "the final assistant turn is empty", "empty_response")


def split_implicit_prompt(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two full texts into (prompt, chosen response, rejected response).

    The prompt is their common prefix, cut back to the end of its last ``\\n\\nAssistant:`` marker when there
    is one (so a response that starts with the same word as the other is not split mid-turn), else to the
    last whitespace.
    """
    n = 0
    limit = min(len(chosen), len(rejected))
    while n < limit and chosen[n] == rejected[n]:
        n += 1
    prefix = chosen[:n]
    k = prefix.rfind(ASSISTANT_MARKER)
    if k >= 0:
        n = k + len(ASSISTANT_MARKER)
    else:
        while n > 0 and not prefix[n - 1].isspace():
            n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def _split_messages(chosen: list[Message], rejected: list[Message]) -> tuple[list, list, list]:
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    # the responses start at the first assistant turn after the shared part
    while n > 0 and chosen[n - 1]["role"] == "assistant" and (n >= len(chosen) or n >= len(rejected)):
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def parse_pair(rec: Record, fields: FieldsConfig) -> Pair:
    """Validate one record and return a :class:`Pair`; raises :class:`DataError` naming the field."""
    chosen = _text_or_messages(rec, "chosen", fields.chosen)
    rejected = _text_or_messages(rec, "rejected", fields.rejected)
    if type(chosen) is not type(rejected):
        raise DataError(rec.source, rec.line, fields.rejected, "chosen and rejected must both be text or both "
                        "be messages", "wrong_type")
    if fields.prompt in rec.data and rec.data[fields.prompt] is not None:
        prompt = _text_or_messages(rec, "prompt", fields.prompt)
    else:
        if isinstance(chosen, str):
            prompt, chosen, rejected = split_implicit_prompt(chosen, rejected)
        else:
            prompt, chosen, rejected = _split_messages(chosen, rejected)
    if isinstance(chosen, list) and chosen and chosen[0]["role"] != "assistant":
        raise DataError(rec.source, rec.line, fields.chosen, "the response messages must start with an assistant "
                        "turn", "no_final_assistant")
    _check_response(chosen, rec, fields.chosen)
    _check_response(rejected, rec, fields.rejected)
    if chosen == rejected:
        raise DataError(rec.source, rec.line, fields.rejected, "chosen and rejected are identical; the pair "
                        "carries no preference", "identical_responses")
    margin = None
    raw_margin = rec.data.get(fields.margin)
    if raw_margin is not None and raw_margin != "":
        try:
            margin = float(raw_margin)
        except (TypeError, ValueError):
            raise DataError(rec.source, rec.line, fields.margin, f"expected a number, got {raw_margin!r}",
                            "wrong_type") from None
        if not math.isfinite(margin):
            raise DataError(rec.source, rec.line, fields.margin, f"must be finite, got {margin}", "not_finite")
    return Pair(prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, where=rec.where)


def parse_pairs(records: Iterable[Record], fields: FieldsConfig, on_invalid: str = "error",
                report: SkipReport | None = None) -> Iterator[Pair]:
    for rec in records:
        try:
            yield parse_pair(rec, fields)
        except DataError as err:
            if on_invalid != "skip":
                raise
            if report is not None:
                report.add(err)
