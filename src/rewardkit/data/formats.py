"""Typed examples, one per record, validated with errors that name file, line and field.

Pairwise record layouts (field names are configurable, see :class:`rewardkit.config.FieldsConfig`):

* ``{"prompt": ..., "chosen": ..., "rejected": ..., "margin"?: float}``: explicit prompt;
* ``{"chosen": ..., "rejected": ...}``: implicit prompt, the common prefix of the two (hh-rlhf dialogues
  ``\\n\\nHuman: ... \\n\\nAssistant: ...``, or two message lists that share their first turns).

Each of prompt/chosen/rejected is either text or chat messages ``[{"role": ..., "content": ...}]``.

Binary (:class:`Labeled`), scalar (:class:`Rated`), multi-attribute (:class:`MultiRated`) and ranked
(:class:`Ranked`) records are described further down and in docs/data.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from ..config import FieldsConfig
from .errors import DataError, SkipReport, each_valid, skip_or_raise
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
        raise DataError(rec.source, rec.line, name, "expected a non-empty list of {role, content} messages; give "
                        "text or at least one message", "wrong_type")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise DataError(rec.source, rec.line, f"{name}[{i}]", "each message needs 'role' and 'content'; write "
                            "it as {\"role\": \"user\", \"content\": \"...\"}", "bad_message")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise DataError(rec.source, rec.line, f"{name}[{i}].role", f"unknown role {role!r}; use one of "
                            f"{', '.join(ROLES)}", "unknown_role")
        if not isinstance(content, str):
            raise DataError(rec.source, rec.line, f"{name}[{i}].content", f"expected text, got "
                            f"{type(content).__name__}; put the message text in a string", "wrong_type")
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
                    f"{type(value).__name__}; give a string or [{{role, content}}, ...]", "wrong_type")


def _check_response(value: Text, rec: Record, field_name: str) -> None:
    if isinstance(value, str):
        if not value.strip():
            raise DataError(rec.source, rec.line, field_name, "the response is empty or only whitespace; remove "
                            "the record or fill in the response", "empty_response")
        return
    if value[-1]["role"] != "assistant":
        raise DataError(rec.source, rec.line, field_name, "the conversation must end with an assistant turn; "
                        "the last message is the response being judged", "no_final_assistant")
    if not value[-1]["content"].strip():
        raise DataError(rec.source, rec.line, field_name, "the final assistant turn is empty; remove the record "
                        "or fill in the response", "empty_response")


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
                        "be messages; convert one to the other's form", "wrong_type")
    if fields.prompt in rec.data and rec.data[fields.prompt] is not None:
        prompt = _text_or_messages(rec, "prompt", fields.prompt)
    else:
        if isinstance(chosen, str):
            prompt, chosen, rejected = split_implicit_prompt(chosen, rejected)
        else:
            prompt, chosen, rejected = _split_messages(chosen, rejected)
    if isinstance(chosen, list) and chosen and chosen[0]["role"] != "assistant":
        raise DataError(rec.source, rec.line, fields.chosen, "the response messages must start with an assistant "
                        "turn; end both conversations with the assistant replies being compared", "no_final_assistant")
    _check_response(chosen, rec, fields.chosen)
    _check_response(rejected, rec, fields.rejected)
    if chosen == rejected:
        raise DataError(rec.source, rec.line, fields.rejected, "chosen and rejected are identical; the pair "
                        "carries no preference, remove it", "identical_responses")
    margin = None
    raw_margin = rec.data.get(fields.margin)
    if raw_margin is not None and raw_margin != "":
        try:
            if isinstance(raw_margin, bool):  # float(True) is 1.0: a flag is not a margin
                raise TypeError
            margin = float(raw_margin)
        except (TypeError, ValueError, OverflowError):
            raise DataError(rec.source, rec.line, fields.margin, f"expected a number, got {raw_margin!r:.40}; "
                            "write a plain number or leave it out", "wrong_type") from None
        if not math.isfinite(margin):
            raise DataError(rec.source, rec.line, fields.margin, f"must be finite, got {margin}; write a plain "
                            "number or leave it out", "not_finite")
    return Pair(prompt=prompt, chosen=chosen, rejected=rejected, margin=margin, where=rec.where)


def parse_pairs(records: Iterable[Record], fields: FieldsConfig, on_invalid: str = "error",
                report: SkipReport | None = None) -> Iterator[Pair]:
    """:func:`parse_examples` for ``pairs`` (kept as a name: benchmarks and users call it)."""
    return parse_examples(records, "pairs", fields, on_invalid, report)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------
# One response judged on its own (binary, scalar, multi-attribute) and ranked lists.
#
#   binary  {"prompt", "response", "label"}                label: 1/0, true/false, "yes"/"no", "1"/"0"
#   scalar  {"prompt", "response", "score", "annotator"?, "group"?}
#   multi   {"prompt", "response", "scores": {name: number | null}}     null = not rated (masked)
#   ranked  {"prompt", "responses": [...], "ranks": [int, ...]}         lower rank = better; ties allowed
#
# Text or chat messages everywhere. With messages, the prompt may be left out: the response field then holds
# the whole conversation and the trailing assistant turns are the response (as implicit prompts in pairs).

Format = Literal["pairs", "binary", "scalar", "multi", "ranked"]


@dataclass(frozen=True)
class Labeled:
    """A response judged acceptable (``label == 1``) or not (``0``): the classification head's data."""

    prompt: Text
    response: Text
    label: int
    where: str


@dataclass(frozen=True)
class Rated:
    """A response with a scalar rating (higher is better), optionally naming the annotator who gave it.

    ``group`` names the item when ratings of several responses to it do not share the same prompt text.
    """

    prompt: Text
    response: Text
    score: float
    annotator: str | None
    where: str
    group: str | None = None


@dataclass(frozen=True)
class MultiRated:
    """A response rated on several attributes; ``None`` marks an attribute that was not rated (masked in the
    loss, never read as zero)."""

    prompt: Text
    response: Text
    scores: dict[str, float | None]
    where: str


@dataclass(frozen=True)
class Ranked:
    """K responses to one prompt with their ranks: lower is better, equal ranks are ties."""

    prompt: Text
    responses: list[Text]
    ranks: list[int]
    where: str


Example = Pair | Labeled | Rated | MultiRated | Ranked
EXAMPLE_TYPES: dict[str, type] = {"pairs": Pair, "binary": Labeled, "scalar": Rated, "multi": MultiRated,
                                  "ranked": Ranked}

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


def _required_text(rec: Record, field_name: str, fmt: str) -> Text:
    value = rec.data.get(field_name)
    if value is None:
        raise DataError(rec.source, rec.line, field_name, f"missing; a {fmt} record needs '{field_name}' (map other "
                        "names with data.fields)", "missing_field")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _messages(value, rec, field_name)
    raise DataError(rec.source, rec.line, field_name, f"expected text or a list of messages, got "
                    f"{type(value).__name__}", "wrong_type")


def _split_final_turns(conv: list[Message]) -> tuple[list[Message], list[Message]]:
    n = len(conv)
    while n > 0 and conv[n - 1]["role"] == "assistant":
        n -= 1
    return conv[:n], conv[n:]


def _prompt_and_response(rec: Record, fields: FieldsConfig, fmt: str) -> tuple[Text, Text]:
    response = _required_text(rec, fields.response, fmt)
    if rec.data.get(fields.prompt) is not None:
        prompt = _required_text(rec, fields.prompt, fmt)
    elif isinstance(response, list):
        prompt, response = _split_final_turns(response)
        if not prompt:
            raise DataError(rec.source, rec.line, fields.response, "the conversation has no turn before the final "
                            "assistant reply to use as the prompt", "missing_field")
    else:
        raise DataError(rec.source, rec.line, fields.prompt, f"missing; a {fmt} record with a text response needs "
                        f"'{fields.prompt}' (or give the whole conversation as messages)", "missing_field")
    _check_response_start(response, rec, fields.response)
    _check_response(response, rec, fields.response)
    return prompt, response


def _check_response_start(value: Text, rec: Record, field_name: str) -> None:
    if isinstance(value, list) and (not value or value[0]["role"] != "assistant"):
        raise DataError(rec.source, rec.line, field_name, "the response messages must be assistant turns that end "
                        "the conversation", "no_final_assistant")


def _number(value: object, rec: Record, field_name: str) -> float:
    if isinstance(value, bool) or value is None or value == "":
        raise DataError(rec.source, rec.line, field_name, f"expected a number, got {value!r}; write a plain "
                        "number", "wrong_type")
    try:
        x = float(value)  # CSV cells arrive as text
    except (TypeError, ValueError, OverflowError):
        raise DataError(rec.source, rec.line, field_name, f"expected a number, got {value!r:.40}; write a plain "
                        "number", "wrong_type") from None
    if not math.isfinite(x):
        raise DataError(rec.source, rec.line, field_name, f"must be finite, got {x}; write a plain number",
                        "not_finite")
    return x


def parse_label(value: object, rec: Record, field_name: str) -> int:
    """1 or 0. Accepted spellings: the integers 1/0 (or 1.0/0.0), JSON true/false, and the strings "1"/"0",
    "true"/"false", "yes"/"no" in any case (CSV cells and yes/no labelled sets such as HaluEval)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return 1
        if low in _FALSE:
            return 0
    if value is None:
        raise DataError(rec.source, rec.line, field_name, "missing; a binary record needs a label (1 = acceptable, "
                        "0 = not)", "missing_field")
    raise DataError(rec.source, rec.line, field_name, f"expected 1/0, true/false or yes/no, got {value!r:.40}; "
                    "use 1 for acceptable and 0 for not", "bad_label")


def parse_labeled(rec: Record, fields: FieldsConfig) -> Labeled:
    prompt, response = _prompt_and_response(rec, fields, "binary")
    label = parse_label(rec.data.get(fields.label), rec, fields.label)
    return Labeled(prompt=prompt, response=response, label=label, where=rec.where)


def _optional_str(rec: Record, field_name: str) -> str | None:
    value = rec.data.get(field_name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DataError(rec.source, rec.line, field_name, f"expected a name or number, got {type(value).__name__}",
                        "wrong_type")
    return str(value)


def parse_rated(rec: Record, fields: FieldsConfig) -> Rated:
    prompt, response = _prompt_and_response(rec, fields, "scalar")
    if rec.data.get(fields.score) is None:
        raise DataError(rec.source, rec.line, fields.score, "missing; a scalar record needs a numeric score",
                        "missing_field")
    score = _number(rec.data[fields.score], rec, fields.score)
    return Rated(prompt=prompt, response=response, score=score, annotator=_optional_str(rec, fields.annotator),
                 where=rec.where, group=_optional_str(rec, fields.group))


def parse_multi_rated(rec: Record, fields: FieldsConfig) -> MultiRated:
    prompt, response = _prompt_and_response(rec, fields, "multi")
    raw = rec.data.get(fields.scores)
    if isinstance(raw, str):  # a CSV cell holding a JSON object
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            pass
    if raw is None:
        raise DataError(rec.source, rec.line, fields.scores, "missing; a multi record needs {attribute: score}",
                        "missing_field")
    if not isinstance(raw, dict) or not raw:
        raise DataError(rec.source, rec.line, fields.scores, "expected a non-empty mapping {attribute: number or "
                        "null}", "wrong_type")
    scores: dict[str, float | None] = {}
    for name, value in raw.items():
        scores[str(name)] = None if value is None else _number(value, rec, f"{fields.scores}.{name}")
    if all(v is None for v in scores.values()):
        raise DataError(rec.source, rec.line, fields.scores, "every attribute is null; nothing to learn from",
                        "no_scores")
    return MultiRated(prompt=prompt, response=response, scores=scores, where=rec.where)


def parse_ranked(rec: Record, fields: FieldsConfig) -> Ranked:
    prompt = _required_text(rec, fields.prompt, "ranked")
    raw = rec.data.get(fields.responses)
    if raw is None:
        raise DataError(rec.source, rec.line, fields.responses, "missing; a ranked record needs a list of responses",
                        "missing_field")
    if not isinstance(raw, list) or len(raw) < 2:
        raise DataError(rec.source, rec.line, fields.responses, "expected a list of at least 2 responses; a "
                        "single response has nothing to be ranked against", "too_few_responses")
    responses: list[Text] = []
    for i, value in enumerate(raw):
        name = f"{fields.responses}[{i}]"
        if isinstance(value, str):
            responses.append(value)
        elif isinstance(value, list):
            responses.append(_messages(value, rec, name))
            _check_response_start(responses[-1], rec, name)
        else:
            raise DataError(rec.source, rec.line, name, f"expected text or a list of messages, got "
                            f"{type(value).__name__}", "wrong_type")
        _check_response(responses[-1], rec, name)
    ranks = rec.data.get(fields.ranks)
    if ranks is None:
        raise DataError(rec.source, rec.line, fields.ranks, "missing; a ranked record needs one rank per response "
                        "(lower is better)", "missing_field")
    if not isinstance(ranks, list) or len(ranks) != len(responses):
        got = len(ranks) if isinstance(ranks, list) else type(ranks).__name__
        raise DataError(rec.source, rec.line, fields.ranks, f"expected a list of {len(responses)} ranks (one per "
                        f"response), got {got}; give each response exactly one rank", "rank_count")
    for i, r in enumerate(ranks):
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise DataError(rec.source, rec.line, f"{fields.ranks}[{i}]", f"expected an integer >= 0, got "
                            f"{r!r:.40}; rank 0 is the best response", "bad_rank")
    if len(set(ranks)) == 1:
        raise DataError(rec.source, rec.line, fields.ranks, "every response has the same rank; the list carries no "
                        "preference", "all_tied")
    return Ranked(prompt=prompt, responses=responses, ranks=list(ranks), where=rec.where)


PARSERS = {"pairs": parse_pair, "binary": parse_labeled, "scalar": parse_rated, "multi": parse_multi_rated,
           "ranked": parse_ranked}


def detect_format(data: dict, fields: FieldsConfig) -> Format | None:
    """The format a record's keys point to (``data.format: auto``), or None when nothing matches.

    Checked in order: responses+ranks -> ranked; scores -> multi; label -> binary; score -> scalar;
    chosen+rejected -> pairs.
    """
    keys = {k for k, v in data.items() if v is not None}
    if {fields.response_a, fields.response_b, fields.winner} <= keys:
        return "ab"  # type: ignore[return-value]  (read by parse_ab_records, into pairs)
    if fields.responses in keys and fields.ranks in keys:
        return "ranked"
    if fields.response in keys:
        if fields.scores in keys:
            return "multi"
        if fields.label in keys:
            return "binary"
        if fields.score in keys:
            return "scalar"
    if fields.chosen in keys and fields.rejected in keys:
        return "pairs"
    return None


def parse_examples(records: Iterable[Record], fmt: Format, fields: FieldsConfig, on_invalid: str = "error",
                   report: SkipReport | None = None) -> Iterator[Example]:
    """Validate each record as ``fmt``; invalid ones raise, or are skipped and counted in ``report``."""
    parse = PARSERS[fmt]
    return each_valid(records, lambda rec: parse(rec, fields), on_invalid, report)


# ---------------------------------------------------------------------------------------------------------
# A/B judgments as they come: {prompt, response_a, response_b, winner, strength?} (Chatbot Arena, MT-Bench human
# judgments, HelpSteer3-preference, Auto-J, LLMBar, JudgeBench). The winner's values are mapped explicitly
# (data.winner: {a: [...], b: [...], tie: [...]}); each record becomes a Pair, ties are counted and skipped.


def winner_key(value: object) -> str:
    """A winner value compared across spellings: 1, 1.0 and "1" are the same; text is compared stripped."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, str):
        s = value.strip()
        try:
            return winner_key(float(s)) if s and s.lstrip("+-").replace(".", "", 1).isdigit() else s
        except ValueError:
            return s
    return str(value)


def winner_table(winner) -> dict[str, str]:
    """``{winner_key(value): "a" | "b" | "tie"}`` from a :class:`rewardkit.config.WinnerConfig`."""
    table: dict[str, str] = {}
    for side in ("a", "b", "tie"):
        values = getattr(winner, side, None)
        for v in values if isinstance(values, list) else ([] if values is None else [values]):
            key = winner_key(v)
            if table.get(key, side) != side:
                raise ValueError(f"data.winner: value {v!r} is listed under both {table[key]} and {side}")
            table[key] = side
    if not any(s in table.values() for s in ("a", "b")):
        raise ValueError("data.format ab needs data.winner, e.g. {a: [1], b: [2], tie: [0]}: which winner values "
                         "mean that response_a won, that response_b won, and a tie")
    return table


def parse_ab(rec: Record, fields: FieldsConfig, table: dict[str, str], strength: str | None = None) -> Pair | None:
    """One A/B judgment as a :class:`Pair` (the winner as chosen), or None for a tie."""
    raw = rec.data.get(fields.winner)
    if raw is None or raw == "":
        raise DataError(rec.source, rec.line, fields.winner, "missing; an A/B record needs the winner",
                        "missing_field")
    side = table.get(winner_key(raw))
    if side is None:
        known = ", ".join(sorted(table))
        raise DataError(rec.source, rec.line, fields.winner, f"value {raw!r:.40} is not mapped by data.winner "
                        f"(mapped: {known}); add it under a, b or tie", "unmapped_winner")
    a = _text_or_messages(rec, "response_a", fields.response_a)
    b = _text_or_messages(rec, "response_b", fields.response_b)
    if side == "tie":
        return None
    chosen, rejected = (a, b) if side == "a" else (b, a)
    data = {fields.prompt: rec.data.get(fields.prompt), "chosen": chosen, "rejected": rejected}
    if strength is not None and rec.data.get(strength) not in (None, ""):
        data["margin"] = abs(_number(rec.data[strength], rec, strength))  # the sign says who won, not how much
    pair_fields = FieldsConfig(prompt=fields.prompt)  # chosen / rejected / margin under their default names
    return parse_pair(Record(data, rec.source, rec.line), pair_fields)


def _ab_ranked(rec: Record, fields: FieldsConfig, table: dict[str, str]) -> Ranked:
    """An A/B judgment as a ranked list of two (``data.ties: train``): the winner rank 0, a tie ranks [0, 0]."""
    parse_ab(rec, fields, table)  # the same checks (winner mapped, responses valid, a prompt)
    side = table[winner_key(rec.data[fields.winner])]
    prompt = _required_text(rec, fields.prompt, "ab")
    responses = [_text_or_messages(rec, "response_a", fields.response_a),
                 _text_or_messages(rec, "response_b", fields.response_b)]
    return Ranked(prompt=prompt, responses=responses, ranks={"a": [0, 1], "b": [1, 0], "tie": [0, 0]}[side],
                  where=rec.where)


def parse_ab_records(records: Iterable[Record], fields: FieldsConfig, winner, strength: str | None = None,
                     on_invalid: str = "error", report: SkipReport | None = None,
                     ties: str = "skip") -> Iterator[Pair | Ranked]:
    """Pairs from A/B records, each tie counted in ``report`` (reason ``tie``) and skipped; with ``ties:
    train`` ranked lists of two instead, ties kept as equal ranks."""
    table = winner_table(winner)  # no mapping: the error says how to write one
    for rec in records:
        try:
            if ties == "train":
                yield _ab_ranked(rec, fields, table)
                continue
            pair = parse_ab(rec, fields, table, strength)
        except DataError as err:
            skip_or_raise(err, on_invalid, report)
            continue
        if pair is None:
            if report is not None:
                report.add(DataError(rec.source, rec.line, fields.winner, "a tie: skipped (Bradley-Terry has no tie "
                                     "outcome)", "tie"))
            continue
        yield pair
