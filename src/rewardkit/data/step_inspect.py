"""`rewardkit data inspect FILE` on step-level data (process reward models): what a step file holds.

Reports the layout (documented ``steps``, or the adapter that reads it: given, or detected from the first
record), solutions and steps read, steps per solution, the step labels (right / wrong / unlabelled), where the
first wrong step sits, the solution-level correctness flags and the problems with several solutions (what
best-of-N evaluation needs), prompt and per-step lengths (tokens with a tokenizer, else characters), and the
invalid records counted by reason with their ``file:line: field`` errors. Invalid records never stop it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from ..config import DataConfig
from .errors import DataError, SkipReport
from .inspect import CountedRecords, Inspection, LengthStats, _text
from .readers import read_records
from .step_detect import adapter_of, detect_step_layout, peek
from .steps import STEP_ADAPTERS, Stepwise, parse_steps


def is_step_input(path: str, data: DataConfig, options=None) -> bool:
    """Whether ``path`` is to be inspected as step data: a step adapter or ``data.format: steps`` is set, or
    (``auto``, no adapter) its first record is in a step layout and in no response format."""
    from .formats import detect_format

    if data.adapter in STEP_ADAPTERS or data.format == "steps":
        return True
    if data.format != "auto" or data.adapter is not None:
        return False
    try:
        first, _ = peek(iter(read_records(path, "skip", SkipReport(), options)))
    except (DataError, ValueError, OSError):
        return False  # unreadable: the response-format inspection reports the error
    return (first is not None and detect_format(first.data, data.fields) is None
            and detect_step_layout(first.data, data) is not None)


def step_details(examples: list[Stepwise]) -> dict:
    """Step counts, label balance, first-error positions, correctness flags and problems with several solutions."""
    labels = Counter("unlabelled" if y is None else "right" if y == 1 else "wrong" for e in examples for y in e.labels)
    first = Counter()
    for e in examples:
        i = e.first_error
        if i is not None and all(y is not None for y in e.labels[:i]):
            first[str(i + 1)] += 1
        elif i is None and e.labels and all(y == 1 for y in e.labels):
            first["none (all right)"] += 1
        else:
            first["unknown (unlabelled before it)"] += 1
    per = Counter(len(e.steps) for e in examples)
    flags = Counter(str(e.correct).lower() for e in examples if e.correct is not None)
    groups = Counter(e.group if e.group is not None else _text(e.prompt) for e in examples)
    return {"steps": sum(len(e.steps) for e in examples),
            "steps_per_solution": dict(sorted(per.items())),
            "step_labels": {k: labels[k] for k in ("right", "wrong", "unlabelled")},
            "first_wrong_step": dict(sorted(first.items(), key=lambda kv: (0, int(kv[0])) if kv[0].isdigit()
                                            else (1, kv[0]))),
            "correct_flag": {"true": flags["true"], "false": flags["false"],
                             "missing": len(examples) - flags["true"] - flags["false"]},
            "problems": len(groups), "problems_with_several_solutions": sum(1 for n in groups.values() if n > 1)}


def inspect_steps(path: str, data: DataConfig, tokenizer=None, max_errors: int = 5, options=None) -> Inspection:
    """Read ``path`` as step-level data, skipping (and counting) invalid records."""
    data = dataclasses.replace(data, on_invalid="skip")
    report = SkipReport(max_examples=max_errors)
    counted = CountedRecords(path, report, options)

    unit = "tokens" if tokenizer is not None else "characters"
    adapter = data.adapter
    ins = Inspection(path=path, format="steps", adapter=adapter, records=0, examples=0, unit=unit)
    try:
        records = iter(counted)
        if adapter is None:
            first, records = peek(records)
            layout = detect_step_layout(first.data, data) if first is not None else None
            adapter = adapter_of(layout) if layout is not None else None
            ins.details["layout"] = layout or "steps"
        examples = list(parse_steps(records, data, adapter, report))
    except (DataError, ValueError) as e:
        ins.error, ins.records = str(e), counted.n
        ins.skipped, ins.first_invalid = dict(report.skipped), list(report.examples)
        return ins

    def length(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if tokenizer is not None else len(text)

    ins.adapter, ins.records, ins.examples = adapter, counted.n, len(examples)
    ins.prompt_lengths = LengthStats.of([length(_text(e.prompt)) for e in examples])
    ins.response_lengths = LengthStats.of([length(s) for e in examples for s in e.steps])
    ins.details.update(step_details(examples))
    ins.skipped, ins.first_invalid = dict(report.skipped), list(report.examples)
    return ins
