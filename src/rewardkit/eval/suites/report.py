"""The benchmark section of the HTML report: per-section bars with bootstrap intervals (against a baseline
model when given) and, for RewardBench, accuracy by reward-bench's length category in each section."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np

from ..report import _plt, _save
from .result import SuiteResult


def fig_sections(result: SuiteResult, baseline: SuiteResult | None, path: Path, labels: tuple[str, str]) -> Path:
    plt = _plt()
    names = [*result.sections, "overall"]
    runs = [(result, labels[0])] + ([(baseline, labels[1])] if baseline is not None else [])
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names)), 3.6))
    x = np.arange(len(names))
    for k, (r, label) in enumerate(runs):
        values = [r.sections.get(n) if n != "overall" else r.overall for n in names]
        ci = r.details.get("intervals", {})
        lo = [v - ci[n][0] if v is not None and n in ci else 0 for n, v in zip(names, values, strict=True)]
        hi = [ci[n][1] - v if v is not None and n in ci else 0 for n, v in zip(names, values, strict=True)]
        ax.bar(x + k * width - 0.4 + width / 2, [v if v is not None else 0 for v in values], width,
               yerr=[lo, hi], capsize=3, label=label)
    ax.set_xticks(x, [n + (" *" if n in result.partial_sections else "") for n in names], rotation=20, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("score (95% bootstrap interval)")
    ax.set_title(f"{result.suite}" + ("  (* partial)" if result.partial_sections else ""))
    if baseline is not None:
        ax.legend(fontsize=8)
    return _save(fig, path)


def fig_length_categories(result: SuiteResult, path: Path) -> Path | None:
    cats = result.details.get("length_categories")
    if not cats:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    order = ("True", "Neutral", "False")
    names = list(cats)
    x = np.arange(len(names))
    for k, c in enumerate(order):
        ax.bar(x + (k - 1) * 0.27, [cats[s].get(c, {}).get("accuracy", 0) for s in names], 0.27,
               label={"True": "chosen longer", "Neutral": "similar length", "False": "chosen shorter"}[c])
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy by reward-bench length category")
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_suite_report(result: SuiteResult, out_dir: str | Path, *, baseline: SuiteResult | None = None,
                       model: str = "model", baseline_model: str | None = None) -> Path:
    """Write ``DIR/report.html`` (figures embedded), the PNGs and ``DIR/metrics.json``; returns the HTML path."""
    import base64

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = [fig_sections(result, baseline, out / f"{result.suite}_sections.png", (model, baseline_model or "")),
            fig_length_categories(result, out / f"{result.suite}_length_categories.png")]
    imgs = "".join(f'<img src="data:image/png;base64,{base64.b64encode(f.read_bytes()).decode()}">' for f in figs
                   if f is not None)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v['n']}</td><td>{v['accuracy']:.4f}</td></tr>"
                   for k, v in result.subsets.items())
    missing = (f"<p>missing subsets ({len(result.missing_subsets)}): {html.escape(', '.join(result.missing_subsets))}"
               f"; partial: {html.escape(', '.join(result.partial_sections) or 'none')}</p>")
    body = (f"<h1>{html.escape(result.suite)}: {html.escape(model)}</h1><p>rendering: {html.escape(result.rendering)}"
            f"</p><p>overall {result.overall:.4f}</p>{missing}{imgs}<table><tr><th>subset</th><th>n</th>"
            f"<th>accuracy</th></tr>{rows}</table>")
    path = out / "report.html"
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(result.suite)}</title>{body}",
                    encoding="utf-8")
    metrics = {"suite": result.to_dict(), "baseline": baseline.to_dict() if baseline else None}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False), encoding="utf-8")
    return path
