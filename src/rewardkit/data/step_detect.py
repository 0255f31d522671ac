"""Recognise step-level records from their keys: the documented ``steps`` layout and the three public ones.

Used where a reader sees a file before it knows what it holds:

* ``load_steps`` (step losses, ``data.format: auto`` or ``steps``, no ``data.adapter``): the first record's
  layout picks the adapter, so PRM800K, Math-Shepherd and TRL stepwise files train without naming one;
* the response-format reader (``data.format: auto`` or an explicit response format): a step file is refused
  with an error saying it is step data, which layout, and how to train it, instead of "cannot tell the format";
* ``rewardkit data inspect``: step files get step statistics (``data/step_inspect.py``).

=============  =========================================================  =====================
layout         recognised by (field names of ``data.steps`` / the layout)  adapter
=============  =========================================================  =====================
steps          ``steps`` (``data.steps.steps_field``) is a list             none (documented)
trl-stepwise   ``prompt``, and ``completions`` and ``labels`` are lists       ``trl-stepwise``
prm800k        ``question`` is an object, ``label.steps`` a list             ``prm800k``
math-shepherd  ``input`` is text holding ``data.steps.step_tag``, ``label``  ``math-shepherd``
               is text
=============  =========================================================  =====================
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain
from typing import Literal

from ..config import DataConfig
from .errors import DataError
from .formats import detect_format
from .readers import Record

log = logging.getLogger(__name__)

StepLayout = Literal["steps", "trl-stepwise", "prm800k", "math-shepherd"]


def detect_step_layout(data: dict, cfg: DataConfig) -> StepLayout | None:
    """The step-level layout a record's keys and types point to, or None when it is not step data."""
    st = cfg.steps
    if isinstance(data.get(st.steps_field), list):
        return "steps"
    if "prompt" in data and isinstance(data.get("completions"), list) and isinstance(data.get("labels"), list):
        return "trl-stepwise"
    label = data.get("label")
    if isinstance(data.get("question"), dict) and isinstance(label, dict) and isinstance(label.get("steps"), list):
        return "prm800k"
    text = data.get("input")
    if isinstance(text, str) and isinstance(label, str) and st.step_tag in text:
        return "math-shepherd"
    return None


def adapter_of(layout: StepLayout) -> str | None:
    """The ``data.adapter`` that reads ``layout`` (None: the documented layout needs none)."""
    return None if layout == "steps" else layout


def layout_field(layout: StepLayout, cfg: DataConfig) -> str:
    """The field a layout's steps sit in (what an error about the record names)."""
    return {"steps": cfg.steps.steps_field, "trl-stepwise": "completions", "prm800k": "label.steps",
            "math-shepherd": "input"}[layout]


def step_data_error(rec: Record, layout: StepLayout, cfg: DataConfig, want: str) -> DataError:
    """The error a response-format reader gives for a step-level record (``want``: what it expected)."""
    adapter = adapter_of(layout)
    how = "data.format steps" + (f" (data.adapter {adapter}, or leave it to auto)" if adapter else "")
    return DataError(rec.source, rec.line, layout_field(layout, cfg),
                     f"step-level data (format steps, layout {layout}), not {want}: train it with loss.name "
                     f"step_bce or step_ce and model.head step, {how}; see docs/prm.md. `rewardkit data inspect` "
                     "shows its step statistics", "step_data")


def peek(records: Iterator[Record]) -> tuple[Record | None, Iterator[Record]]:
    """The first record, and an iterator that still yields it."""
    first = next(records, None)
    return first, (records if first is None else chain([first], records))


def detect_step_adapter(records: Iterator[Record], data: DataConfig, source: str
                        ) -> tuple[str | None, Iterator[Record]]:
    """The adapter of the first record's step layout (None: the documented layout), for ``load_steps`` with no
    ``data.adapter``. A record in no step layout is an error naming what it looks like instead."""
    first, records = peek(records)
    if first is None:
        return None, records
    if data.format not in ("auto", "steps"):
        raise ValueError(f"the step losses read data.format steps (or auto), not {data.format}")
    layout = detect_step_layout(first.data, data)
    if layout is None and data.on_invalid == "skip":
        return None, records  # a bad first record is skipped and counted like any other, not fatal
    if layout is None:
        fmt = detect_format(first.data, data.fields)
        looks = f"it looks like format {fmt} (one response per record); " if fmt else ""
        keys = ", ".join(sorted(first.data)[:12])
        raise DataError(first.source, first.line, data.steps.steps_field,
                        f"not step-level data ({keys}): {looks}expected {{prompt, {data.steps.steps_field}: [...], "
                        f"{data.steps.labels_field}: [...]}} or a prm800k, math-shepherd (step tag "
                        f"{data.steps.step_tag!r} in 'input') or trl-stepwise record; set data.adapter or map the "
                        "fields in data.steps", "unknown_format")
    adapter = adapter_of(layout)
    log.info("%s: step-level layout %r detected from the first record%s", source, layout,
             f" (read with data.adapter {adapter})" if adapter else "")
    return adapter, records
