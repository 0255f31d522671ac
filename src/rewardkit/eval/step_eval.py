"""``rewardkit eval`` for a process reward model: step metrics on a step-level file, and their report figures.

The file is read with the model's own step rendering (``rewardkit.json`` ``steps``) and any step adapter
(``--adapter math-shepherd``, ...); metrics are :func:`rewardkit.eval.step_metrics.step_metrics` (step accuracy,
AUC, F1; ProcessBench earliest-error accuracy with chance; best-of-N per aggregate when solutions carry
``correct`` and several share a problem). The report adds three figures: step-score histograms for right and
wrong steps, earliest-error accuracy against chance, and best-of-N selection accuracy.
"""

from __future__ import annotations

import dataclasses
import html
import json
from pathlib import Path

from ..config import DataConfig, SplitConfig
from ..data.errors import SkipReport
from ..data.step_tokenize import StepDropped
from ..data.steps import load_steps
from ..step_scoring import score_step_sequences, steps_config
from .step_metrics import flat_step_metrics, step_metrics


def evaluate_step_file(scorer, split: SplitConfig, data: DataConfig | None = None):
    """An :class:`~rewardkit.eval.evaluate.ExampleEvaluation` of format ``steps`` (rewards: step scores)."""
    from .evaluate import ExampleEvaluation

    data = dataclasses.replace(data or DataConfig(), format="steps", steps=steps_config(scorer.meta))
    report = SkipReport()
    examples = load_steps(split, data, report)
    scorer.step_encoder.stats.counts.clear()
    items = []
    for ex in examples:
        try:
            items.append(scorer.step_encoder.encode(ex))
        except StepDropped:
            continue
    probs = score_step_sequences(scorer.model, items, scorer.tokenizer.pad_token_id, scorer.device,
                                 scorer.max_tokens, scorer.max_batch)
    nested = step_metrics(probs, [x.labels for x in items], [x.correct for x in items], [x.group for x in items],
                          [x.answer for x in items])
    metrics = flat_step_metrics(nested)
    metrics.update({"details": nested, "data": {"source": split.path, "examples_read": len(examples)},
                    "invalid": report.summary(), "truncation": scorer.step_encoder.stats.summary(),
                    "step_aggregate": scorer.meta.step_aggregate})
    ev = ExampleEvaluation(data=split.path, format="steps", metrics=metrics, rewards=probs)
    ev.labels = [x.labels for x in items]  # for the report's histograms
    return ev


def write_step_report(ev, out_dir: str | Path, title: str) -> Path:
    """``metrics.json``, ``step_report.png`` and ``report.html`` for a step evaluation."""
    from .report import CSS, _fmt, _table

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = ev.metrics
    (out / "metrics.json").write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    fig = step_figures(ev, out / "step_report.png")
    rows = [[html.escape(k), _fmt(v)] for k, v in m.items() if not isinstance(v, (dict, list))]
    page = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
            f"<p class=note>data: {html.escape(ev.data)} (steps); a step is predicted right when its score > 0.5; "
            "the predicted earliest error is the first step scored <= 0.5.</p>",
            f"<img src='{fig.name}' style='max-width:100%'>", _table(["metric", "value"], rows), "</body></html>"]
    path = out / "report.html"
    path.write_text("\n".join(page), encoding="utf-8")
    return path


def step_figures(ev, path: Path) -> Path:
    from .report import _plt, _save

    plt = _plt()
    m = ev.metrics
    right = [p for ps, ls in zip(ev.rewards, ev.labels, strict=True) for p, y in zip(ps, ls, strict=True) if y == 1]
    wrong = [p for ps, ls in zip(ev.rewards, ev.labels, strict=True) for p, y in zip(ps, ls, strict=True) if y == 0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].hist([right, wrong], bins=20, range=(0, 1), label=["right steps", "wrong steps"])
    axes[0].set(title="step scores P(right)", xlabel="score")
    axes[0].legend()
    model = [m.get("earliest_error_accuracy_erroneous"), m.get("earliest_error_accuracy_correct"),
             m.get("earliest_error_f1")]
    chance = [m.get("earliest_error_chance_accuracy_erroneous"), m.get("earliest_error_chance_accuracy_correct"),
              m.get("earliest_error_chance_f1")]
    axes[1].bar([0, 1, 2], [v or 0 for v in model], width=0.4, label="PRM")
    axes[1].bar([0.4, 1.4, 2.4], [v or 0 for v in chance], width=0.4, label="chance (uniform guess)")
    axes[1].set(title="earliest-error identification", xticks=[0.2, 1.2, 2.2],
                xticklabels=["erroneous", "correct", "F1"], ylim=(0, 1))
    axes[1].legend()
    keys = ["min", "prod", "last", "mean", "majority_vote", "random", "oracle"]
    if m.get("best_of_n_problems"):
        axes[2].bar(keys, [m.get(f"best_of_n_{k}") or 0 for k in keys])
        axes[2].tick_params(axis="x", rotation=30)
        axes[2].set(title=f"best-of-{m['best_of_n_solutions_per_problem']:.0f} selection accuracy", ylim=(0, 1))
    else:
        axes[2].set(title="best-of-N: no problem with several flagged solutions")
        axes[2].axis("off")
    fig.tight_layout()
    return _save(fig, path)


def steps_summary(m: dict) -> str:
    """The console summary of a step evaluation (``rewardkit eval`` without ``--json``)."""
    def f(v) -> str:
        return "-" if v is None else f"{v:.4f}"

    lines = [f"steps: {m['solutions']} solutions, {m['steps']} labelled steps ({m.get('wrong_steps')} wrong)",
             f"  step accuracy {f(m.get('step_accuracy'))}  AUC {f(m.get('step_auc'))}  "
             f"F1 (wrong) {f(m.get('step_f1_wrong'))}",
             f"  earliest error: erroneous {f(m.get('earliest_error_accuracy_erroneous'))}  correct "
             f"{f(m.get('earliest_error_accuracy_correct'))}  F1 {f(m.get('earliest_error_f1'))}  (chance F1 "
             f"{f(m.get('earliest_error_chance_f1'))})"]
    if m.get("best_of_n_problems"):
        lines.append(f"  best-of-{m['best_of_n_solutions_per_problem']:.0f} on {m['best_of_n_problems']} problems: "
                     + "  ".join(f"{k} {f(m.get(f'best_of_n_{k}'))}"
                                 for k in ("min", "prod", "last", "mean", "majority_vote", "random", "oracle")))
    return "\n".join(lines)
