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


def make_problem(rng: random.Random, min_ops: int = 3, max_ops: int = 5, max_n: int = 9,
                 single_digit: bool = False) -> Problem:
    """``single_digit``: every true value stays in 0..9, so every number of a right solution is one token."""
    if not single_digit:
        ops = [(rng.choice("+-"), rng.randint(1, max_n)) for _ in range(rng.randint(min_ops, max_ops))]
        return Problem(rng.randint(1, max_n), ops)
    x = start = rng.randint(0, 9)
    ops = []
    for _ in range(rng.randint(min_ops, max_ops)):
        op, n = rng.choice([(o, m) for o in "+-" for m in range(1, 10) if 0 <= (x + m if o == "+" else x - m) <= 9])
        ops.append((op, n))
        x = x + n if op == "+" else x - n
    return Problem(start, ops)


def _single_digit(steps: list[str]) -> bool:
    return all(0 <= int(v) <= 9 for s in steps for v in _STEP.match(s).group(1, 3, 4))


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


def generate(n_problems: int, solutions_per_problem: int = 1, error_rate: float = 0.5, seed: int = 0,
             single_digit: bool = False, kinds: tuple[str, ...] = ERROR_KINDS) -> list[dict]:
    """Records in the documented ``steps`` layout, each with ``correct`` (final answer right), ``group`` (the
    problem), ``answer`` (the stated final result) and ``error_kind`` (the injection, None for none; a diagnostic
    the loader ignores). ``kinds``: the error kinds injected (``("arith",)``: every first error can be checked
    inside its own step, without looking the operation up in the prompt)."""
    unknown = set(kinds) - set(ERROR_KINDS)
    if unknown or not kinds:
        raise ValueError(f"error kinds must be some of {ERROR_KINDS}, got {kinds}")
    rng = random.Random(seed)
    records = []
    for p in range(n_problems):
        problem = make_problem(rng, single_digit=single_digit)
        for _ in range(solutions_per_problem):
            err = rng.randrange(len(problem.ops)) if rng.random() < error_rate else None
            kind = rng.choice(kinds)
            steps = solve(problem, rng, err, kind)
            # single-digit data: a wrong solution keeps its numbers in 0..9 too (redrawn), so a two-digit or
            # negative number never gives an error away
            for _ in range(50):
                if not single_digit or _single_digit(steps):
                    break
                steps = solve(problem, rng, err, kind)
            else:
                err, kind, steps = None, None, solve(problem, rng)
            labels = check_steps(problem, steps)
            answer = steps[-1].rsplit("= ", 1)[1]
            records.append({"prompt": problem.text, "steps": steps, "labels": labels, "correct": bool(labels[-1]),
                            "group": f"p{p}", "answer": answer, "error_kind": kind if err is not None else None})
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


# --- the learning run ----------------------------------------------------------------------------------------

CHAR_SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")


def char_tokenizer(directory: Path):
    """A character-level fast tokenizer (printable ASCII and newline, one token each), saved to ``directory``.

    Why: GPT-2's BPE gives a number a different token at a step's start (``"4"``) than after a space (``" 4"``),
    and some two-digit numbers one token, others two; a tiny model trained from scratch must then learn that
    ``"4"`` and ``" 4"`` are the same value before it can check a step. One token per character removes that.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {t: i for i, t in enumerate([*CHAR_SPECIALS, *chars])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                  unk_token="<unk>", model_max_length=1024)
    tok.save_pretrained(directory)
    return tok


def tiny_model(directory: Path, tokenizer_dir: str, hidden: int = 128, layers: int = 4, seed: int = 0) -> Path:
    """A randomly initialised Llama-architecture decoder (no pretrained weights) with a real GPT-2 tokenizer, or
    (``tokenizer_dir`` ``char``) :func:`char_tokenizer`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    tok = char_tokenizer(directory) if tokenizer_dir == "char" else AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512, num_labels=1,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForSequenceClassification(cfg).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


# --- baselines and intervals ----------------------------------------------------------------------------------

def position_prior(records: list[dict]) -> dict[tuple[int, int], float]:
    """P(step right | step index, number of steps) counted on ``records``: what the position alone predicts."""
    seen: dict[tuple[int, int], list[int]] = {}
    for r in records:
        for i, y in enumerate(r["labels"]):
            seen.setdefault((i, len(r["labels"])), []).append(y)
    return {k: sum(v) / len(v) for k, v in seen.items()}


def position_scores(records: list[dict], prior: dict[tuple[int, int], float]) -> list[list[float]]:
    """Step scores of the position-only baseline (a position never seen in training: the overall right rate)."""
    overall = sum(prior.values()) / len(prior)
    return [[prior.get((i, len(r["steps"])), overall) for i in range(len(r["steps"]))] for r in records]


def prm_figures(scores: list[list[float]], records: list[dict]) -> dict:
    """The figures the note reports, from step scores: step AUC / accuracy / F1 and earliest-error accuracy."""
    from rewardkit.eval.step_metrics import earliest_error_metrics, step_level_metrics

    labels = [r["labels"] for r in records]
    st, ee = step_level_metrics(scores, labels), earliest_error_metrics(scores, labels)
    return {"step_auc": st["step_auc"], "step_accuracy": st["step_accuracy"], "step_f1_wrong": st["step_f1_wrong"],
            "ee_accuracy_erroneous": ee["accuracy_erroneous"], "ee_accuracy_correct": ee["accuracy_correct"],
            "ee_f1": ee["f1"], "ee_chance_f1": ee["chance"]["f1"]}


def with_intervals(scores: list[list[float]], records: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """:func:`prm_figures` with 95% percentile bootstrap intervals, resampling problems (``group``), so the
    several solutions of one problem stay together."""
    import numpy as np

    point = prm_figures(scores, records)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        groups.setdefault(r["group"], []).append(i)
    keys = list(groups)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(n_boot):
        idx = [i for g in rng.choice(len(keys), len(keys)) for i in groups[keys[g]]]
        for k, v in prm_figures([scores[i] for i in idx], [records[i] for i in idx]).items():
            if v is not None:
                draws[k].append(v)
    return {k: {"value": v, "ci95": [float(np.percentile(draws[k], 2.5)), float(np.percentile(draws[k], 97.5))]
                if draws[k] else None} for k, v in point.items()}


def figures(scorer, test: list[dict], metrics: dict, out: Path) -> list[Path]:
    """Step-score histograms (right vs wrong steps), earliest-error accuracy against chance, best-of-N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores = scorer.score_steps([r["prompt"] for r in test], [r["steps"] for r in test])
    right = [p for s, r in zip(scores, test, strict=True) for p, y in zip(s.step_rewards, r["labels"], strict=True) if y]
    wrong = [p for s, r in zip(scores, test, strict=True) for p, y in zip(s.step_rewards, r["labels"], strict=True)
             if not y]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].hist([right, wrong], bins=20, range=(0, 1), label=["right steps", "wrong steps"])
    axes[0].set(title="step scores P(right)", xlabel="score")
    axes[0].legend()
    m = metrics
    names = ["erroneous", "correct", "F1"]
    model = [m["earliest_error_accuracy_erroneous"], m["earliest_error_accuracy_correct"], m["earliest_error_f1"]]
    axes[1].bar([0, 1, 2], model, width=0.4, label="PRM")
    axes[1].bar([0.4, 1.4, 2.4], [m["earliest_error_chance_accuracy_erroneous"],
                                  m["earliest_error_chance_accuracy_correct"], m["earliest_error_chance_f1"]],
                width=0.4, label="chance (uniform guess)")
    axes[1].set(title="earliest-error identification", xticks=[0.2, 1.2, 2.2], xticklabels=names, ylim=(0, 1))
    axes[1].legend()
    keys = ["min", "prod", "last", "mean", "majority_vote", "random", "oracle"]
    axes[2].bar(keys, [m.get(f"best_of_n_{k}") or 0 for k in keys])
    axes[2].set(title=f"best-of-{m.get('best_of_n_solutions_per_problem', 0):.0f} selection accuracy", ylim=(0, 1))
    axes[2].tick_params(axis="x", rotation=30)
    fig.tight_layout()
    path = out / "prm_arithmetic.png"
    fig.savefig(path, dpi=110)
    return [path]


def by_error_kind(scorer, records: list[dict]) -> dict:
    """Earliest-error accuracy per injected error kind (and on correct solutions): which errors the PRM finds."""
    from rewardkit.eval.step_metrics import predicted_earliest_error, true_earliest_error

    scores = scorer.score_steps([r["prompt"] for r in records], [r["steps"] for r in records])
    hits: dict[str, list[int]] = {}
    for s, r in zip(scores, records, strict=True):
        kind = r.get("error_kind") or "none (correct)"
        hits.setdefault(kind, []).append(int(predicted_earliest_error(s.step_rewards) == true_earliest_error(r["labels"])))
    return {k: {"solutions": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(hits.items())}


def parse_args(argv: list[str] | None):
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/prm-arithmetic")
    p.add_argument("--train-problems", type=int, default=1500)
    p.add_argument("--test-problems", type=int, default=150)
    p.add_argument("--solutions", type=int, default=4, help="solutions per test problem (best-of-N)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--tokenizer", default="/work/shared/tokenizers/gpt2",
                   help="a tokenizer directory, or 'char' (one token per character, see char_tokenizer)")
    p.add_argument("--loss", default="step_bce", choices=["step_bce", "step_ce"])
    p.add_argument("--step-target", default="all", choices=["all", "last", "until_first_error"])
    p.add_argument("--wrong-weight", type=float, default=None,
                   help="class weight of wrong steps (right = 1); default: right/wrong step count of the train data")
    p.add_argument("--error-kinds", default=",".join(ERROR_KINDS),
                   help=f"comma-separated kinds of injected errors, of {', '.join(ERROR_KINDS)}")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--multi-digit", action="store_true", help="values beyond 0..9 (harder: a GPT-2 token per number)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--max-length", type=int, default=192)
    p.add_argument("--eval-every", type=int, default=None, help="evaluate during training (a learning curve)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples of the test problems")
    p.add_argument("--data-only", action="store_true", help="write train.jsonl / test.jsonl and stop")
    return p.parse_args(argv)


def run_config(args, out: Path, model_dir: Path, wrong_weight: float) -> dict:
    train = {"lr": args.lr, "batch_size": args.batch_size, "max_steps": args.steps, "warmup_ratio": 0.05,
             "tensorboard": False, "log_every": 50, "seed": 0}
    if args.eval_every:
        train["eval_every"] = args.eval_every
    return {"model": {"name": str(model_dir), "head": "step", "step_outputs": 1 if args.loss == "step_bce" else 2},
            "data": {"train": str(out / "train.jsonl"), "eval": str(out / "test.jsonl"), "format": "steps",
                     "max_length": args.max_length},
            "loss": {"name": args.loss, "class_weights": [wrong_weight, 1.0], "step_target": args.step_target},
            "train": train, "output_dir": str(out / "run")}


def eval_curve(metrics_file: Path) -> list[dict]:
    """Step AUC and earliest-error F1 at each evaluation during training (``--eval-every``), from metrics.jsonl."""
    if not metrics_file.exists():
        return []
    rows = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
    keys = ("step_auc", "earliest_error_f1")
    return [{"step": r.get("step"), **{k: r[k] for k in r if any(k.endswith(x) for x in keys)}}
            for r in rows if any(k.endswith(x) for k in r for x in keys)]


def main(argv: list[str] | None = None) -> dict:
    import time

    args = parse_args(argv)
    out = Path(args.out)
    kinds = tuple(k.strip() for k in args.error_kinds.split(",") if k.strip())
    train_records = generate(args.train_problems, 2, seed=1, single_digit=not args.multi_digit, kinds=kinds)
    test_records = generate(args.test_problems, args.solutions, seed=2, single_digit=not args.multi_digit, kinds=kinds)
    write_jsonl(out / "train.jsonl", train_records)
    write_jsonl(out / "test.jsonl", test_records)
    if args.data_only:
        return {}
    import rewardkit

    model_dir = tiny_model(out / "tiny-model", args.tokenizer, args.hidden, args.layers)
    n_right = sum(y for r in train_records for y in r["labels"])
    n_wrong = sum(1 - y for r in train_records for y in r["labels"])
    wrong_weight = args.wrong_weight or round(n_right / n_wrong, 3)  # the usual imbalance: most steps are right
    t0 = time.time()
    result = rewardkit.train(run_config(args, out, model_dir, wrong_weight))
    seconds = round(time.time() - t0, 1)
    m = dict(result.metrics["eval"])
    scores = [s.step_rewards for s in result.scorer.score_steps([r["prompt"] for r in test_records],
                                                                 [r["steps"] for r in test_records])]
    baseline = position_scores(test_records, position_prior(train_records))
    paths = figures(result.scorer, test_records, m, out)
    summary = {"argv": argv, "error_kinds": list(kinds), "train_solutions": len(train_records),
               "test_solutions": len(test_records), "steps": args.steps, "class_weights": [wrong_weight, 1.0],
               "seconds": seconds, "model": with_intervals(scores, test_records, args.n_boot),
               "position_only_baseline": with_intervals(baseline, test_records, args.n_boot), "trained": m,
               "curve": eval_curve(out / "run" / "metrics.jsonl"), "by_error_kind": by_error_kind(result.scorer, test_records),
               "zero_shot": result.metrics["zero_shot"], "figures": [str(x) for x in paths]}
    (out / "prm_arithmetic.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("error_kinds", "seconds", "model", "position_only_baseline")}, indent=2))
    return summary


if __name__ == "__main__":
    main()
