"""Adapters: public human-feedback data sets in their own layouts -> the documented formats.

Each adapter turns one raw record into zero or more records in a documented format (``pairs``, ``binary``,
``scalar``, ``multi``, ``ranked``), which then go through the same validation as any user file, so errors
still name file, line and field. Records an adapter leaves out on purpose (a tie under ``pairs``, a sibling
group without ranks) are counted in the :class:`SkipReport` under their reason whatever ``on_invalid`` says:
they are a documented policy, not bad input.

==========  ======================================================  ================  =========================
adapter     raw layout                                              formats           policy
==========  ======================================================  ================  =========================
hh-rlhf     ``{chosen, rejected}`` whole dialogues                  pairs             implicit prompt (common
                                                                                      prefix up to Assistant:)
oasst       message trees (``{message_tree_id, prompt: node}`` or   ranked            sibling assistant replies
            a root node), nodes ``{role, text, rank, replies}``                       with a human rank, >= 2
pandalm     ``{instruction, input, response1, response2,            pairs             majority vote; ties (0
            annotator1..3}``; 0 = tie, 1, 2                                           wins, or no majority) are
                                                                                      skipped and counted
usr         ``{context, fact, annotators, responses: [{response,    multi, scalar     multi: mean over raters
            <quality>: [one rating per annotator]}]}``                                 per quality; scalar: one
                                                                                      rating per rater
halueval    ``{user_query, chatgpt_response, hallucination}``       binary            "no" hallucination -> 1
==========  ======================================================  ================  =========================
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import FieldsConfig
from .errors import DataError, SkipReport, skip_or_raise
from .formats import Example, Format, parse_examples, split_implicit_prompt
from .readers import Record

log = logging.getLogger(__name__)

Skip = Callable[[DataError], None]
Convert = Callable[[Record, Format, FieldsConfig, Skip], Iterator[dict]]


@dataclass(frozen=True)
class Adapter:
    name: str
    formats: tuple[str, ...]
    """Formats it can produce; the first is the default (``data.format: auto``)."""
    convert: Convert
    description: str

    def resolve_format(self, requested: str) -> Format:
        if requested == "auto":
            return self.formats[0]  # type: ignore[return-value]
        if requested not in self.formats:
            raise ValueError(f"data.adapter {self.name!r} produces {', '.join(self.formats)}; data.format is "
                             f"{requested!r}")
        return requested  # type: ignore[return-value]

    def examples(self, records: Iterable[Record], fmt: Format, fields: FieldsConfig, on_invalid: str = "error",
                 report: SkipReport | None = None) -> Iterator[Example]:
        """Convert, then validate each converted record as ``fmt`` (with the documented field names)."""
        report = report if report is not None else SkipReport()
        converted = self._converted(records, fmt, fields, on_invalid, report)
        yield from parse_examples(converted, fmt, FieldsConfig(), on_invalid, report)

    def _converted(self, records: Iterable[Record], fmt: Format, fields: FieldsConfig, on_invalid: str,
                   report: SkipReport) -> Iterator[Record]:
        for rec in records:
            try:
                for data in self.convert(rec, fmt, fields, report.add):
                    yield Record(data, rec.source, rec.line)
            except DataError as err:
                skip_or_raise(err, on_invalid, report)


def _get(rec: Record, name: str, kind: type | tuple[type, ...], what: str):
    if name not in rec.data or rec.data[name] is None:
        raise DataError(rec.source, rec.line, name, f"missing; this adapter expects {what}", "missing_field")
    value = rec.data[name]
    if not isinstance(value, kind):
        raise DataError(rec.source, rec.line, name, f"expected {what}, got {type(value).__name__}", "wrong_type")
    return value


# --- hh-rlhf --------------------------------------------------------------------------------------------------

def _hh_rlhf(rec: Record, fmt: Format, fields: FieldsConfig, skip: Skip) -> Iterator[dict]:
    # whole dialogues; parse_pair splits the shared prefix (up to the last "\n\nAssistant:") off as the prompt
    chosen, rejected = rec.data.get(fields.chosen), rec.data.get(fields.rejected)
    if isinstance(chosen, str) and isinstance(rejected, str):
        _, c, r = split_implicit_prompt(chosen, rejected)
        if not c.strip() or not r.strip():
            # a few hh-rlhf dialogues end in an empty assistant turn: a known quirk of the set, not bad input
            skip(DataError(rec.source, rec.line, fields.chosen if not c.strip() else fields.rejected,
                           "the final assistant turn is empty; skipped", "empty_response"))
            return
    yield {"chosen": chosen, "rejected": rejected}


# --- OASST message trees --------------------------------------------------------------------------------------

_OASST_ROLE = {"prompter": "user", "assistant": "assistant"}


def _oasst(rec: Record, fmt: Format, fields: FieldsConfig, skip: Skip) -> Iterator[dict]:
    root = rec.data.get("prompt") if isinstance(rec.data.get("prompt"), dict) else rec.data
    if "role" not in root or "text" not in root:
        raise DataError(rec.source, rec.line, "prompt", "expected an OASST message tree ({message_tree_id, prompt: "
                        "node}) or a root message node ({role, text, replies})", "wrong_type")
    stack: list[tuple[dict, list[dict]]] = [(root, [])]
    while stack:
        node, path = stack.pop()
        role = _OASST_ROLE.get(node.get("role"))
        if role is None:
            raise DataError(rec.source, rec.line, "role", f"unknown OASST role {node.get('role')!r} in message "
                            f"{node.get('message_id')}", "unknown_role")
        conv = path + [{"role": role, "content": node.get("text") or ""}]
        replies = [r for r in node.get("replies") or [] if isinstance(r, dict)]
        for r in reversed(replies):
            stack.append((r, conv))
        answers = [r for r in replies if r.get("role") == "assistant"]
        if len(answers) < 2:
            continue  # no list to rank (a single reply, or a human turn)
        kept = [r for r in answers if not r.get("deleted") and r.get("review_result") is not False
                and isinstance(r.get("rank"), int) and (r.get("text") or "").strip()]
        if len(kept) < 2:
            skip(DataError(rec.source, rec.line, "replies", f"message {node.get('message_id')}: fewer than 2 of its "
                           f"{len(answers)} assistant replies carry a human rank", "unranked_siblings"))
            continue
        yield {"prompt": conv, "responses": [r["text"] for r in kept], "ranks": [r["rank"] for r in kept]}


# --- PandaLM: three annotators vote 0 (tie), 1 or 2 -----------------------------------------------------------

def _pandalm(rec: Record, fmt: Format, fields: FieldsConfig, skip: Skip) -> Iterator[dict]:
    instruction = _get(rec, "instruction", str, "the instruction text")
    extra = rec.data.get("input") or ""
    prompt = instruction if not extra.strip() else f"{instruction}\n\n{extra}"
    votes = []
    for name in sorted(k for k in rec.data if k.startswith("annotator")):
        v = rec.data[name]
        if isinstance(v, bool) or v not in (0, 1, 2):
            raise DataError(rec.source, rec.line, name, f"expected a vote 0 (tie), 1 or 2, got {v!r}", "bad_vote")
        votes.append(v)
    if not votes:
        raise DataError(rec.source, rec.line, "annotator1", "missing; expected annotator1..N votes", "missing_field")
    winner = majority(votes)
    if winner is None or winner == 0:
        if winner == 0:
            skip(DataError(rec.source, rec.line, "annotator1", f"votes {votes}: the majority voted tie (0); ties "
                           "are skipped under pairs", "tie"))
        else:
            skip(DataError(rec.source, rec.line, "annotator1", f"votes {votes}: no option has a majority; "
                           "skipped as a tie", "no_majority"))
        return
    r1, r2 = _pandalm_text(rec, "response1"), _pandalm_text(rec, "response2")
    for name, text in (("response1", r1), ("response2", r2)):
        if not text.strip():
            skip(DataError(rec.source, rec.line, name, "the response is empty (the model produced nothing); "
                           "skipped", "empty_response"))
            return
    chosen, rejected = (r1, r2) if winner == 1 else (r2, r1)
    yield {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _pandalm_text(rec: Record, name: str) -> str:
    # a few model outputs were stored as JSON literals ("True." answered as true): keep them as their text
    value = _get(rec, name, (str, bool, int, float), "response text")
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def majority(votes: list[int]) -> int | None:
    """The option with strictly more votes than any other, or None (e.g. one vote each for 0, 1 and 2)."""
    (top, n), *rest = Counter(votes).most_common() + [(None, 0)]
    return top if n > rest[0][1] else None


# --- USR: several raters x several qualities per response -----------------------------------------------------

USR_DEFAULT_QUALITY = "Overall"


def _usr(rec: Record, fmt: Format, fields: FieldsConfig, skip: Skip) -> Iterator[dict]:
    context = _get(rec, "context", str, "the dialogue context")
    fact = rec.data.get("fact") or ""
    annotators = _get(rec, "annotators", list, "a list of annotator names")
    responses = _get(rec, "responses", list, "a list of rated responses")
    prompt = (f"Fact: {fact.strip()}\n\n" if fact.strip() else "") + f"Dialogue:\n{context.strip()}"
    # a USR quality name in data.fields.score picks which rating becomes the scalar score
    quality = fields.score if fields.score != "score" else USR_DEFAULT_QUALITY
    for i, item in enumerate(responses):
        if not isinstance(item, dict):
            raise DataError(rec.source, rec.line, f"responses[{i}]", "expected an object", "wrong_type")
        ratings = {k: v for k, v in item.items() if isinstance(v, list)}
        for k, v in ratings.items():
            if len(v) != len(annotators):
                raise DataError(rec.source, rec.line, f"responses[{i}].{k}", f"{len(v)} ratings for "
                                f"{len(annotators)} annotators", "rating_count")
        text = item.get("response")
        if fmt == "multi":
            scores = {k: (sum(v) / len(v) if v else None) for k, v in ratings.items()}
            yield {"prompt": prompt, "response": text, "scores": scores}
        else:
            if quality not in ratings:
                raise DataError(rec.source, rec.line, f"responses[{i}].{quality}", f"no such quality; known: "
                                f"{', '.join(ratings)} (set data.fields.score to one of them)", "missing_field")
            for who, score in zip(annotators, ratings[quality], strict=True):
                yield {"prompt": prompt, "response": text, "score": score, "annotator": str(who),
                       "group": f"{rec.source}:{rec.line}"}


# --- HaluEval: yes/no hallucination ---------------------------------------------------------------------------

def _halueval(rec: Record, fmt: Format, fields: FieldsConfig, skip: Skip) -> Iterator[dict]:
    flag = _get(rec, "hallucination", str, '"yes" or "no"').strip().lower()
    if flag not in ("yes", "no"):
        raise DataError(rec.source, rec.line, "hallucination", f'expected "yes" or "no", got {flag!r}', "bad_label")
    # label 1 = acceptable: a response without hallucination
    yield {"prompt": rec.data.get("user_query"), "response": rec.data.get("chatgpt_response"),
           "label": 1 if flag == "no" else 0}


ADAPTERS: dict[str, Adapter] = {a.name: a for a in (
    Adapter("hh-rlhf", ("pairs",), _hh_rlhf, "Anthropic hh-rlhf dialogues {chosen, rejected}, implicit prompt"),
    Adapter("oasst", ("ranked",), _oasst, "OpenAssistant message trees: ranked sibling assistant replies"),
    Adapter("pandalm", ("pairs",), _pandalm, "PandaLM votes 0/1/2 by several annotators: majority pairs, ties "
            "skipped"),
    Adapter("usr", ("multi", "scalar"), _usr, "USR: several raters x qualities per response"),
    Adapter("halueval", ("binary",), _halueval, "HaluEval yes/no hallucination labels"),
)}


def get_adapter(name: str) -> Adapter:
    if name not in ADAPTERS:
        from .steps import STEP_ADAPTERS

        if name in STEP_ADAPTERS:
            raise ValueError(f"data.adapter {name!r} gives step-level data (format steps): train it with loss.name "
                             "step_bce or step_ce (docs/prm.md)")
        raise ValueError(f"unknown data.adapter {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name]
