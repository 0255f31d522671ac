"""Step-level records for process reward models (``data.format: steps``), validated, and three public layouts.

The documented layout (field names are configurable in ``data.steps``)::

    {"prompt": text or messages, "steps": ["step 1", "step 2", ...], "labels": [1, 0, null, ...],
     "correct"?: true/false, "group"?: "problem id", "answer"?: "final answer"}

``labels[i]`` is 1 (the step is right), 0 (it is wrong) or null (not labelled: masked in the loss and the step
metrics). A record without ``labels`` is a solution to score (every step unlabelled). ``correct`` flags the
whole solution (best-of-N evaluation); ``group`` names the problem when several solutions answer it; ``answer``
(the final answer) lets best-of-N compare against majority voting.

Adapters (``data.adapter``), each a converter to the documented layout plus one row of :data:`STEP_ADAPTERS`:

==============  =====================================================  ==============================================
adapter         raw layout                                             policy
==============  =====================================================  ==============================================
prm800k         ``{question: {problem}, label: {steps: [{completions:  follow the chosen completion of every step
                [{text, rating}], chosen_completion, human_completion}  (else the human one, rated 1); at a step with
                ], finish_reason}}`` (Lightman et al. 2023)            neither, the first completion rated -1 (the
                                                                       error the labeller stopped on) ends the
                                                                       solution, else it ends before that step.
                                                                       rating 1 -> 1, -1 -> 0, 0 (neutral) ->
                                                                       ``data.steps.neutral`` (default 1, as the
                                                                       paper scores neutral steps as positive)
math-shepherd   ``{input: "question Step 1: ... ки\\nStep 2: ... ки",   the text up to ``Step 1:`` is the prompt; each
                label: same text with "+" / "-" in place of each tag}``  tag ends a step; ``+`` -> 1, ``-`` -> 0
                (Wang et al. 2023)
trl-stepwise    TRL's stepwise supervision ``{prompt, completions:     completions are the steps; true -> 1, false
                [...], labels: [true/false, ...]}``                    -> 0
==============  =====================================================  ==============================================

Validation errors name file, line and field: a labels list of the wrong length, an empty step, a label that is
not 1/0/null, a step that contains the separator, and (``data.steps.after_error: error``) a label after the
first wrong step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from ..config import DataConfig, FieldsConfig, SplitConfig, StepsConfig
from .errors import DataError, SkipReport, skip_or_raise
from .examples import split_records
from .formats import Text, _messages
from .readers import Record
from .step_detect import detect_step_adapter


@dataclass(frozen=True)
class Stepwise:
    """One solution split into steps, with a label per step (1 right, 0 wrong, None not labelled)."""

    prompt: Text
    steps: list[str]
    labels: list[int | None]
    where: str
    correct: bool | None = None
    """Whether the final answer is right (best-of-N); None when the record does not say."""
    group: str | None = None
    """The problem this solution answers (several solutions per prompt); None: grouped by prompt text."""
    answer: str | None = None
    """The solution's final answer, when given (majority vote in best-of-N evaluation)."""

    @property
    def first_error(self) -> int | None:
        """Index of the first step labelled 0, or None when no step is labelled wrong."""
        return next((i for i, y in enumerate(self.labels) if y == 0), None)


def _label(value: object, rec: Record, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "0", "true", "false", "+", "-"):
        return int(value.strip().lower() in ("1", "true", "+"))
    raise DataError(rec.source, rec.line, name, f"expected 1 (right), 0 (wrong) or null (not labelled), got "
                    f"{value!r:.40}", "bad_label")


def _prompt(rec: Record, name: str) -> Text:
    value = rec.data.get(name)
    if value is None:
        raise DataError(rec.source, rec.line, name, f"missing; a steps record needs '{name}' (text or messages)",
                        "missing_field")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _messages(value, rec, name)
    raise DataError(rec.source, rec.line, name, f"expected text or a list of messages, got {type(value).__name__}",
                    "wrong_type")


def parse_stepwise(rec: Record, prompt_field: str, cfg: StepsConfig) -> Stepwise:
    """Validate one record as ``steps``; raises :class:`DataError` naming file, line and field."""
    prompt = _prompt(rec, prompt_field)
    sf, lf = cfg.steps_field, cfg.labels_field
    raw = rec.data.get(sf)
    if not isinstance(raw, list) or not raw:
        got = "missing" if raw is None else f"got {type(raw).__name__}" if not isinstance(raw, list) else "empty"
        raise DataError(rec.source, rec.line, sf, f"expected a non-empty list of step texts ({got})", "no_steps")
    sep = None if cfg.step_token else cfg.separator
    steps = []
    for i, s in enumerate(raw):
        if not isinstance(s, str):
            raise DataError(rec.source, rec.line, f"{sf}[{i}]", f"expected text, got {type(s).__name__}",
                            "wrong_type")
        if not s.strip():
            raise DataError(rec.source, rec.line, f"{sf}[{i}]", "the step is empty or only whitespace; remove it "
                            "(its label too) or fill it in", "empty_step")
        if sep and sep in s:
            raise DataError(rec.source, rec.line, f"{sf}[{i}]", f"the step contains the step separator {sep!r}, "
                            "which would read as two steps; split it, or set data.steps.step_token", "separator_in_step")
        if cfg.step_token and cfg.step_token in s:
            raise DataError(rec.source, rec.line, f"{sf}[{i}]", f"the step contains the step token "
                            f"{cfg.step_token!r}", "separator_in_step")
        steps.append(s)
    raw_labels = rec.data.get(lf)
    if raw_labels is None:
        labels: list[int | None] = [None] * len(steps)
    elif not isinstance(raw_labels, list) or len(raw_labels) != len(steps):
        got = len(raw_labels) if isinstance(raw_labels, list) else type(raw_labels).__name__
        raise DataError(rec.source, rec.line, lf, f"expected {len(steps)} labels (one per step), got {got}; give "
                        "every step a label, null for an unlabelled one", "label_count")
    else:
        labels = [_label(y, rec, f"{lf}[{i}]") for i, y in enumerate(raw_labels)]
    if cfg.after_error == "error":
        first = next((i for i, y in enumerate(labels) if y == 0), None)
        later = next((i for i in range(len(labels)) if first is not None and i > first and labels[i] is not None),
                     None)
        if later is not None:
            raise DataError(rec.source, rec.line, f"{lf}[{later}]", f"a label after the first wrong step "
                            f"({lf}[{first}]); with data.steps.after_error: error a solution ends at its first "
                            "error: drop the later steps or set them to null", "label_after_error")
    correct = rec.data.get(cfg.correct_field)
    if correct is not None:
        correct = _label(correct, rec, cfg.correct_field)
    group, answer = rec.data.get(cfg.group_field), rec.data.get(cfg.answer_field)
    return Stepwise(prompt=prompt, steps=steps, labels=labels, where=rec.where,
                    correct=None if correct is None else bool(correct), group=None if group is None else str(group),
                    answer=None if answer is None else str(answer))


# --- adapters ------------------------------------------------------------------------------------------------

Convert = Callable[[Record, StepsConfig], dict]


def _need(rec: Record, data: dict, name: str, kind: type | tuple, what: str, where: str | None = None):
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        got = "missing" if value is None else f"got {type(value).__name__}"
        raise DataError(rec.source, rec.line, where or name, f"expected {what} ({got})", "missing_field"
                        if value is None else "wrong_type")
    return value


_PRM800K_RATING = {1: 1, -1: 0}


def _prm800k(rec: Record, cfg: StepsConfig) -> dict:
    problem = _need(rec, _need(rec, rec.data, "question", dict, "{problem, ...}"), "problem", str, "the problem "
                    "text", "question.problem")
    label = _need(rec, rec.data, "label", dict, "{steps: [...], finish_reason}")
    raw_steps = _need(rec, label, "steps", list, "a list of labelled steps", "label.steps")
    neutral = {"positive": 1, "negative": 0, "unlabelled": None}[cfg.neutral]
    steps, labels = [], []
    for i, step in enumerate(raw_steps):
        where = f"label.steps[{i}]"
        if not isinstance(step, dict):
            raise DataError(rec.source, rec.line, where, "expected {completions, chosen_completion, ...}",
                            "wrong_type")
        completions = step.get("completions") or []
        chosen = step.get("chosen_completion")
        if isinstance(chosen, int) and not isinstance(chosen, bool):
            if not 0 <= chosen < len(completions):
                raise DataError(rec.source, rec.line, f"{where}.chosen_completion", f"{chosen} is not an index of "
                                f"its {len(completions)} completions", "bad_index")
            pick, final = completions[chosen], False
        elif isinstance(step.get("human_completion"), dict):
            pick, final = dict(step["human_completion"], rating=1), False  # written by the labeller: right
        else:
            # no chosen path: the labeller stopped here; the first wrong completion is the solution's error
            pick = next((c for c in completions if isinstance(c, dict) and c.get("rating") == -1), None)
            if pick is None:
                break
            final = True
        text, rating = pick.get("text"), pick.get("rating")
        if not isinstance(text, str):
            raise DataError(rec.source, rec.line, f"{where}.completions", "a completion without text", "wrong_type")
        if rating not in (-1, 0, 1):
            raise DataError(rec.source, rec.line, f"{where}.completions", f"rating must be -1, 0 or 1, got "
                            f"{rating!r}", "bad_label")
        steps.append(text.strip())
        labels.append(_PRM800K_RATING.get(rating, neutral))
        if final:
            break
    if not steps:
        raise DataError(rec.source, rec.line, "label.steps", "no step on the chosen path", "no_steps")
    out = {"prompt": problem, cfg.steps_field: steps, cfg.labels_field: labels}
    if label.get("finish_reason") in ("solution", "found_error"):
        # "solution": the labeller rated every step to the end; the answer is right when no step was wrong
        out[cfg.correct_field] = label["finish_reason"] == "solution" and 0 not in labels
    return out


def _math_shepherd(rec: Record, cfg: StepsConfig) -> dict:
    text = _need(rec, rec.data, "input", str, f"the solution text with a {cfg.step_tag!r} after each step")
    marks = _need(rec, rec.data, "label", str, "the same text with '+' or '-' in place of each step tag")
    pieces = text.split(cfg.step_tag)
    if len(pieces) < 2:
        raise DataError(rec.source, rec.line, "input", f"no step tag {cfg.step_tag!r}; set data.steps.step_tag to "
                        "the tag the data uses", "no_steps")
    labels, pos = [], 0
    for k, piece in enumerate(pieces[:-1]):
        if marks[pos:pos + len(piece)] != piece or pos + len(piece) >= len(marks) or marks[pos + len(piece)] not in "+-":
            raise DataError(rec.source, rec.line, "label", f"does not match 'input' at step tag {k + 1}: expected "
                            "the input text with '+' or '-' in place of each tag", "label_mismatch")
        labels.append(1 if marks[pos + len(piece)] == "+" else 0)
        pos += len(piece) + 1
    head, _, first = pieces[0].partition("Step 1:")
    if not _:
        raise DataError(rec.source, rec.line, "input", "cannot find where the question ends: expected 'Step 1:' "
                        "before the first step", "no_prompt")
    steps = ["Step 1:" + first] + pieces[1:-1]
    return {"prompt": head.strip(), cfg.steps_field: [s.strip() for s in steps], cfg.labels_field: labels}


def _trl_stepwise(rec: Record, cfg: StepsConfig) -> dict:
    completions = _need(rec, rec.data, "completions", list, "a list of step texts")
    labels = rec.data.get("labels")
    return {"prompt": rec.data.get("prompt"), cfg.steps_field: completions, cfg.labels_field: labels}


STEP_ADAPTERS: dict[str, tuple[Convert, str]] = {
    "prm800k": (_prm800k, "PRM800K phase 1/2 labels: the chosen path, ratings 1 -> 1, -1 -> 0, 0 -> data.steps.neutral"),
    "math-shepherd": (_math_shepherd, "Math-Shepherd {input, label}: a step tag after each step, '+' / '-' labels"),
    "trl-stepwise": (_trl_stepwise, "TRL stepwise supervision {prompt, completions, labels}"),
}


def parse_steps(records: Iterable[Record], data: DataConfig, adapter: str | None = None,
                report: SkipReport | None = None) -> Iterator[Stepwise]:
    """Convert (``adapter``) and validate each record; invalid ones raise, or are skipped and counted."""
    fields: FieldsConfig = data.fields
    prompt_field = fields.prompt if adapter is None else "prompt"
    convert = STEP_ADAPTERS[adapter][0] if adapter is not None else None
    for rec in records:
        try:
            if convert is not None:
                rec = Record(convert(rec, data.steps), rec.source, rec.line)
            yield parse_stepwise(rec, prompt_field, data.steps)
        except DataError as err:
            skip_or_raise(err, data.on_invalid, report)


def load_steps(split: SplitConfig, data: DataConfig, report: SkipReport | None = None) -> list[Stepwise]:
    """Every usable step-level example of ``split``; raises when none is left."""
    report = report if report is not None else SkipReport()
    adapter = split.adapter or data.adapter
    if adapter is not None and adapter not in STEP_ADAPTERS:
        raise ValueError(f"data.adapter {adapter!r} does not produce step-level data; step adapters: "
                         f"{', '.join(STEP_ADAPTERS)}")
    records = split_records(split, data, report)
    if adapter is None:  # the first record's layout picks the adapter (data/step_detect.py)
        adapter, records = detect_step_adapter(records, data, split.path)
    out = list(parse_steps(records, data, adapter, report))
    if not out:
        raise DataError(split.path, None, None, f"no usable step-level examples (every record was skipped: "
                        f"{dict(report.skipped)})", "empty")
    return out
