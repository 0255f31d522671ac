"""Multi-step arithmetic solutions with injected errors, labelled step by step by an exact checker.

A problem is a start value and a chain of additions and subtractions (``Start at 7. Add 5, subtract 3, add 8.
What is the result?``); a solution writes one step per operation (``7 + 5 = 12``). A wrong solution has one
injected error at a random step, of one of three kinds:

* ``arith``: the sum is off (``7 + 5 = 13``);
* ``operand``: a number the problem does not give (``7 + 6 = 13``);
* ``carry``: the step does not start from the previous result (``13 - 3 = 10`` after ``7 + 5 = 12``);

and goes on correctly from the wrong value. Labels do not come from the generator's intent: :func:`check_steps`
parses every step and marks it right (1) iff it is exactly the right step (the true previous value, the
problem's operation and number, the true result), so the labels are exact whatever the injection did. With
additions and subtractions only, an error carries to every later step (each starts from a wrong value: 0), so
the earliest error is the first 0.

``python benchmarks/prm_arithmetic.py --out DIR`` writes train/test files in the documented ``steps`` layout
and trains a tiny process reward model on them (see :func:`main`).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

ERROR_KINDS = ("arith", "operand", "carry")
_STEP = re.compile(r"^(-?\d+) ([+-]) (\d+) = (-?\d+)$")


@dataclass(frozen=True)
class Problem:
    start: int
    ops: list[tuple[str, int]]
    """(``+`` or ``-``, operand) in order."""

    @property
    def text(self) -> str:
        words = [("add" if op == "+" else "subtract") + f" {n}" for op, n in self.ops]
        return f"Start at {self.start}. {', '.join(words).capitalize()}. What is the result?"

    def values(self) -> list[int]:
        """The true value after each operation."""
        out, x = [], self.start
        for op, n in self.ops:
            x = x + n if op == "+" else x - n
            out.append(x)
        return out


def make_problem(rng: random.Random, min_ops: int = 3, max_ops: int = 5, max_n: int = 9) -> Problem:
    ops = [(rng.choice("+-"), rng.randint(1, max_n)) for _ in range(rng.randint(min_ops, max_ops))]
    return Problem(rng.randint(1, max_n), ops)


def solve(problem: Problem, rng: random.Random, error_at: int | None = None, kind: str = "arith") -> list[str]:
    """Step texts of a solution; ``error_at`` injects one error of ``kind`` at that step (0-based)."""
    steps, x = [], problem.start
    for i, (op, n) in enumerate(problem.ops):
        left = x
        if i == error_at and kind == "carry":
            left = x + rng.choice([-2, -1, 1, 2])
        if i == error_at and kind == "operand":
            n = rng.choice([m for m in range(1, 10) if m != n])
        result = left + n if op == "+" else left - n
        if i == error_at and kind == "arith":
            result += rng.choice([-2, -1, 1, 2])
        steps.append(f"{left} {op} {n} = {result}")
        x = result
    return steps


def check_steps(problem: Problem, steps: list[str]) -> list[int]:
    """1 for each step that is exactly right, else 0: it starts from the true previous value, applies the
    problem's operation to the problem's number, and states the true result. Parsed from the text."""
    truth = problem.values()
    if len(steps) != len(truth):
        raise ValueError(f"{len(steps)} steps for {len(truth)} operations")
    labels, prev = [], problem.start
    for step, (op, n), value in zip(steps, problem.ops, truth, strict=True):
        m = _STEP.match(step)
        if m is None:
            raise ValueError(f"not a step: {step!r}")
        left, sign, right, result = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        labels.append(int(left == prev and sign == op and right == n and result == value))
        prev = value
    return labels


def generate(n_problems: int, solutions_per_problem: int = 1, error_rate: float = 0.5, seed: int = 0) -> list[dict]:
    """Records in the documented ``steps`` layout, each with ``correct`` (final answer right), ``group`` (the
    problem) and ``answer`` (the stated final result)."""
    rng = random.Random(seed)
    records = []
    for p in range(n_problems):
        problem = make_problem(rng)
        for _ in range(solutions_per_problem):
            err = rng.randrange(len(problem.ops)) if rng.random() < error_rate else None
            steps = solve(problem, rng, err, rng.choice(ERROR_KINDS))
            labels = check_steps(problem, steps)
            answer = steps[-1].rsplit("= ", 1)[1]
            records.append({"prompt": problem.text, "steps": steps, "labels": labels, "correct": bool(labels[-1]),
                            "group": f"p{p}", "answer": answer})
    return records


# --- the same records in the public layouts (fixtures for the adapters) -------------------------------------

def to_math_shepherd(rec: dict, tag: str = "ки") -> dict:
    body = "".join(f"Step {i + 1}: {s} {tag}\n" for i, s in enumerate(rec["steps"]))
    label = "".join(f"Step {i + 1}: {s} {'+' if y else '-'}\n" for i, (s, y) in enumerate(zip(rec["steps"],
                                                                                               rec["labels"], strict=True)))
    return {"input": f"{rec['prompt']} {body}", "label": f"{rec['prompt']} {label}", "task": "arithmetic"}


def to_trl_stepwise(rec: dict) -> dict:
    return {"prompt": rec["prompt"], "completions": rec["steps"], "labels": [bool(y) for y in rec["labels"]]}


def to_prm800k(rec: dict) -> dict:
    """PRM800K's layout: one chosen completion per step (rating 1 or -1); the labeller stops at the first error,
    where no completion is chosen."""
    steps = []
    for s, y in zip(rec["steps"], rec["labels"], strict=True):
        if y:
            steps.append({"completions": [{"text": s, "rating": 1, "flagged": False}], "human_completion": None,
                          "chosen_completion": 0})
        else:
            steps.append({"completions": [{"text": s, "rating": -1, "flagged": False}], "human_completion": None,
                          "chosen_completion": None})
            break
    finish = "solution" if all(rec["labels"]) else "found_error"
    return {"labeler": "rewardkit-arithmetic", "question": {"problem": rec["prompt"]},
            "label": {"steps": steps, "total_time": 0, "finish_reason": finish}}


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
