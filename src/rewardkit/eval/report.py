"""The evaluation report: PNG figures and one self-contained HTML page (figures embedded as base64).

Figures: chosen vs rejected reward histograms (raw, normalised on a second axis when the model has
statistics), the margin distribution, a reliability diagram, reward against response length, accuracy by
length-difference bucket and, when the run's ``metrics.jsonl`` sits next to the model, the training curves.
A table lists the worst-scored pairs (the largest wrong margins) with their text, HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from pathlib import Path

import numpy as np

from .evaluate import ExampleEvaluation, PairEvaluation, text_of

log = logging.getLogger(__name__)

CHOSEN_COLOR, REJECTED_COLOR = "#1f77b4", "#d62728"
MAX_CHARS = 1500
"""Longest text shown per cell of the worst-examples table (the prompt keeps its end, responses their start)."""


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def fig_reward_histograms(ev: PairEvaluation, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    both = np.r_[ev.r_chosen, ev.r_rejected]
    bins = np.histogram_bin_edges(both, bins=min(40, max(5, len(both) // 10)))
    ax.hist(ev.r_chosen, bins=bins, alpha=0.55, color=CHOSEN_COLOR, label=f"chosen (mean {ev.r_chosen.mean():.3f})")
    ax.hist(ev.r_rejected, bins=bins, alpha=0.55, color=REJECTED_COLOR,
            label=f"rejected (mean {ev.r_rejected.mean():.3f})")
    ax.set_xlabel("raw reward")
    ax.set_ylabel("responses")
    ax.set_title("Rewards of chosen and rejected responses")
    ax.legend()
    norm = ev.normalization
    if norm:
        mean, std = norm["mean"], norm["std"]
        sec = ax.secondary_xaxis("top", functions=(lambda x: (x - mean) / std, lambda z: z * std + mean))
        sec.set_xlabel("normalised reward (r - mean) / std")
    return _save(fig, path)


def fig_margins(ev: PairEvaluation, path: Path) -> Path:
    plt = _plt()
    diff = ev.r_chosen - ev.r_rejected
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.hist(diff, bins=min(40, max(5, len(diff) // 8)), color="#555555")
    ax.axvline(0, color="black", lw=1)
    ax.set_xlabel("margin r_chosen - r_rejected (raw)")
    ax.set_ylabel("pairs")
    ax.set_title(f"Margins: {(diff > 0).mean():.1%} right, {(diff == 0).mean():.1%} ties, "
                 f"{(diff < 0).mean():.1%} wrong")
    return _save(fig, path)


def fig_reliability(ev: PairEvaluation, path: Path) -> Path:
    plt = _plt()
    cal = ev.metrics["calibration"]
    rows = [r for r in cal["table"] if r["count"]]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0.5, 1.0], [0.5, 1.0], ls="--", color="gray", label="perfect calibration")
    if rows:
        width = rows[0]["hi"] - rows[0]["lo"]
        ax.bar([r["lo"] for r in rows], [r["accuracy"] for r in rows], width=width, align="edge", alpha=0.7,
               edgecolor="black", label="accuracy in bin")
        ax.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o", color="black",
                label="(mean confidence, accuracy)")
        for r in rows:  # pair counts at the foot of each bar
            ax.annotate(f"n={r['count']}", (r["lo"] + width / 2, 0.02), ha="center", va="bottom", fontsize=7,
                        color="white")
    ax.set_xlim(0.5, 1.0)
    ax.set_ylim(0.0, 1.05)
    ax.set_xlabel("confidence of the predicted winner, max(p, 1-p)")
    ax.set_ylabel("fraction where it is the chosen response")
    ax.set_title(f"Reliability of sigmoid(r_c - r_r): ECE {cal['ece']:.3f}")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def fig_uncertainty(ev: PairEvaluation, path: Path) -> Path:
    """Ensembles: accuracy by quantile of the heads' margin std, and the ensemble's vs one head's reliability."""
    plt = _plt()
    u = ev.metrics["uncertainty"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    q = u["by_quantile"]
    left.bar([str(r["quantile"]) for r in q], [r["accuracy"] for r in q], color="tab:blue", edgecolor="black")
    for i, r in enumerate(q):
        left.annotate(f"n={r['count']}\nstd<={r['std_hi']:.2g}", (i, 0.02), ha="center", va="bottom", fontsize=7,
                      color="white")
    left.set_ylim(0.0, 1.05)
    left.set_xlabel("quantile of std over heads of the pair margin (1 = most certain)")
    left.set_ylabel("accuracy")
    auroc = u["auroc_std"]
    left.set_title(f"Accuracy by uncertainty; AUROC(std -> wrong) {auroc:.3f}" if auroc is not None else
                   "Accuracy by uncertainty")
    right.plot([0.5, 1.0], [0.5, 1.0], ls="--", color="gray", label="perfect calibration")
    for key, label, style in (("reliability_ensemble", f"ensemble mean p (ECE {u['ece_ensemble']:.3f})", "o-"),
                              ("reliability_single_head", f"head 0 alone (ECE {u['ece_single_head']:.3f})", "s--")):
        rows = [r for r in u[key] if r["count"]]
        right.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], style, label=label)
    right.set_xlim(0.5, 1.0)
    right.set_ylim(0.0, 1.05)
    right.set_xlabel("confidence of the predicted winner")
    right.set_ylabel("fraction where it is the chosen response")
    right.set_title("Calibration: ensemble vs one head")
    right.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def _uncertainty_section(m: dict) -> list[str]:
    u = m["uncertainty"]
    rows = [[name, _fmt(u.get(key)), f"[{_fmt((u.get(key + '_ci') or [None, None])[0])}, "
                                      f"{_fmt((u.get(key + '_ci') or [None, None])[1])}]"]
            for name, key in (("accuracy (aggregate)", "accuracy"), ("accuracy (head 0 alone)", "accuracy_single_head"),
                              ("AUROC of std for a wrong pair", "auroc_std"),
                              ("AUROC of -|margin| of head 0 (single-model baseline)", "auroc_margin"),
                              ("AUROC of the share of heads voting against the ranking", "auroc_disagreement"),
                              ("AUROC of -|margin| / std", "auroc_margin_z"),
                              ("ECE, ensemble mean probability", "ece_ensemble"), ("ECE, head 0", "ece_single_head"))]
    return [f"<h2>Ensemble uncertainty ({u['heads']} heads, reward = {html.escape(u['aggregate'])})</h2>",
            "<p class=note>uncertainty of a pair: population std over the heads of r_chosen - r_rejected.</p>",
            _table(["metric", "value", "95% CI"], rows, text_cols=frozenset({0})),
            _table(["std quantile", "pairs", "std range", "accuracy"],
                   [[str(r["quantile"]), str(r["count"]), f"[{r['std_lo']:.3g}, {r['std_hi']:.3g}]",
                     _fmt(r["accuracy"])] for r in u["by_quantile"]])]


def fig_reward_vs_length(ev: PairEvaluation, path: Path) -> Path:
    plt = _plt()
    lb = ev.metrics["length"]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(ev.chosen_len, ev.r_chosen, s=8, alpha=0.5, color=CHOSEN_COLOR, label="chosen")
    ax.scatter(ev.rejected_len, ev.r_rejected, s=8, alpha=0.5, color=REJECTED_COLOR, label="rejected")
    lengths, rewards = np.r_[ev.chosen_len, ev.rejected_len], np.r_[ev.r_chosen, ev.r_rejected]
    if len(np.unique(lengths)) >= 10:
        # median reward per length decile: shows the trend on any axis scale, unlike a fitted line
        edges = np.unique(np.quantile(lengths, np.linspace(0, 1, 11)))
        which = np.clip(np.searchsorted(edges, lengths, side="right") - 1, 0, len(edges) - 2)
        xs, ys = [], []
        for b in range(len(edges) - 1):
            if (which == b).any():
                xs.append(float(np.median(lengths[which == b])))
                ys.append(float(np.median(rewards[which == b])))
        ax.plot(xs, ys, "o-", color="black", lw=1.5, ms=4, label="median reward per length decile")
    if lengths.min() > 0 and lengths.max() / lengths.min() > 50:
        ax.set_xscale("log")
    r = lb["reward_pearson"]
    ax.set_title(f"Reward vs response length: Pearson {r:.3f}" if r is not None else "Reward vs response length")
    ax.set_xlabel(f"response length ({ev.metrics['length_unit']})")
    ax.set_ylabel("raw reward")
    ax.legend(fontsize=8)
    return _save(fig, path)


def fig_length_buckets(ev: PairEvaluation, path: Path) -> Path:
    plt = _plt()
    rows = ev.metrics["by_length_diff"]
    fig, ax = plt.subplots(figsize=(8.5, 4))
    xs = np.arange(len(rows))
    acc = [r["accuracy"] if r["accuracy"] is not None else 0.0 for r in rows]
    ax.bar(xs, acc, color=["#999999" if r["pairs"] == 0 else "#2ca02c" for r in rows])
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(f"n={r['pairs']}", (x, acc[x]), ha="center", va="bottom", fontsize=8)
    ax.axhline(ev.metrics["accuracy"], color="black", lw=1, label=f"overall {ev.metrics['accuracy']:.3f}")
    ax.axhline(0.5, color="gray", ls="--", lw=1, label="chance")
    ax.set_xticks(xs, [r["bucket"] for r in rows], rotation=20, fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel(f"len(chosen) - len(rejected), {ev.metrics['length_unit']} "
                  "(left: chosen is shorter, right: chosen is longer)")
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy by length difference (flat if the reward ignores length)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def read_training_log(path: Path) -> dict[str, dict[int, dict]]:
    """{split: {step: values}} from ``metrics.jsonl``; a step logged twice (a resumed run) keeps its last
    entry. Lines that do not parse are skipped with a warning: the log may be being written."""
    out: dict[str, dict[int, dict]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            rec = json.loads(line)
            out.setdefault(rec["split"], {})[int(rec["step"])] = rec
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("%s:%d: not a metrics record, skipped", path, n)
    return out


def fig_training_curves(log_path: Path, path: Path) -> Path | None:
    runs = read_training_log(log_path)
    train, evals = runs.get("train", {}), {**runs.get("eval_zero_shot", {}), **runs.get("eval", {})}
    if not train and not evals:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    if train:
        steps = sorted(train)
        a1.plot(steps, [train[s]["loss"] for s in steps], label="train loss", color="#555555")
    if evals:
        steps = sorted(evals)
        a1.plot(steps, [evals[s]["loss"] for s in steps], "o-", label="eval loss", color="#ff7f0e")
        a2.plot(steps, [evals[s]["accuracy"] for s in steps], "o-", label="eval accuracy", color="#2ca02c")
        aucs = [(s, evals[s]["auc"]) for s in steps if evals[s].get("auc") is not None]
        if aucs:
            a2.plot(*zip(*aucs, strict=True), "s--", label="eval AUC", color="#9467bd")
        eces = [(s, evals[s]["ece"]) for s in steps if evals[s].get("ece") is not None]
        if eces:
            a2.plot(*zip(*eces, strict=True), "^:", label="eval ECE", color="#8c564b")
    a1.set_xlabel("step (eval at step 0: before training)")
    a1.set_title("Loss")
    a1.legend(fontsize=8)
    a2.set_xlabel("step")
    a2.set_title("Held-out metrics")
    a2.legend(fontsize=8)
    return _save(fig, path)


# --- HTML -----------------------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; vertical-align: top; }
th { background: #f3f3f3; }
td.text { text-align: left; white-space: pre-wrap; max-width: 320px; font-family: monospace; font-size: 12px; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 13px; }
"""


def _fmt(v, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _ci(m: dict, key: str) -> str:
    ci = m.get(f"{key}_ci")
    if not ci or ci[0] is None:
        return _fmt(m.get(key))
    return f"{_fmt(m.get(key))} <span class=note>[{_fmt(ci[0])}, {_fmt(ci[1])}]</span>"


def _table(headers: list[str], rows: list[list[str]], text_cols: frozenset[int] = frozenset()) -> str:
    """Cells are HTML already (escaped by the caller); ``text_cols`` are shown as wrapped monospace text."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=text>{c}</td>" if j in text_cols else f"<td>{c}</td>"
                                    for j, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _clip(text: str, keep: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return "..." + text[-MAX_CHARS:] if keep == "end" else text[:MAX_CHARS] + "..."


def worst_pairs(ev: PairEvaluation, k: int) -> list[int]:
    """Indices of the ``k`` pairs with the most negative margin (most confidently wrong), ties excluded."""
    diff = ev.r_chosen - ev.r_rejected
    wrong = np.flatnonzero(diff < 0)
    return wrong[np.argsort(diff[wrong], kind="stable")][:k].tolist()


def _headline(m: dict) -> str:
    lw, lb = m["longer_wins"], m["length"]
    rows = [
        ["pairs scored", _fmt(m["pairs"])],
        ["accuracy (ties are not wins) [95% CI]", _ci(m, "accuracy")],
        ["wins / ties / losses", f"{m['wins']} / {m['ties']} / {m['losses']}"],
        ["AUC, chosen vs rejected rewards unpaired [95% CI]", _ci(m, "auc")],
        ["ECE [95% CI]", _ci(m, "ece")],
        ["Brier score", _fmt(m["brier"])],
        ["Bradley-Terry loss", _fmt(m["loss"])],
        ["mean margin [95% CI]", _ci(m, "mean_margin")],
        ["longer-response-wins baseline accuracy", f"{_fmt(lw['accuracy'])} ({lw['ties']} equal-length ties)"],
        [f"reward vs length Pearson ({m['length_unit']}) [95% CI]", _ci(lb, "reward_pearson")],
        ["reward vs length Spearman", _fmt(lb["reward_spearman"])],
        ["margin vs length difference Pearson", _fmt(lb["margin_vs_length_diff_pearson"])],
        ["model gives the higher reward to the longer response", _fmt(lb["model_prefers_longer"])],
        ["data: chosen is the longer response", _fmt(lb["data_prefers_longer"])],
    ]
    return _table(["metric", "value"], [[html.escape(a), b] for a, b in rows])


def _rewards_table(m: dict) -> str:
    cols = ["mean", "std", "min", "q05", "q25", "q50", "q75", "q95", "max"]
    rows = [[f"raw {name}"] + [_fmt(m["rewards"][name].get(c)) for c in cols] for name in ("chosen", "rejected", "all")]
    rows.append(["raw margin"] + [_fmt(m["margin"].get(c)) for c in cols])
    norm = m.get("normalized")
    if norm:
        rows += [[f"normalised {name}"] + [_fmt(norm["rewards"][name].get(c)) for c in cols]
                 for name in ("chosen", "rejected", "all")]
    return _table(["rewards"] + cols, rows)


def render_html(ev: PairEvaluation, figures: dict[str, Path], title: str, worst: int = 20) -> str:
    m = ev.metrics
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p class=note>data: {html.escape(ev.data)}; {m['data']['pairs_scored']} pairs scored of "
             f"{m['data']['pairs_read']} read; invalid records skipped: {m['invalid']['skipped']}; over-length: "
             f"{html.escape(json.dumps(m['truncation']))}. Intervals: 95% percentile bootstrap over pairs "
             f"(seeded). Lengths in {m['length_unit']}.</p>",
             "<h2>Headline</h2>", _headline(m)]
    norm = m.get("normalized")
    parts.append("<h2>Rewards: raw and normalised</h2>")
    if norm:
        s = norm["statistics"]
        parts.append(f"<p class=note>normalisation (r - {s['mean']:.4f}) / {s['std']:.4f}, fitted on "
                     f"{html.escape(str(s.get('fitted_on', '?')))} (n={s.get('n', '?')}). Normalised: mean margin "
                     f"{norm['mean_margin']:.4f}, ECE {norm['ece']:.4f}, Brier {norm['brier']:.4f}.</p>")
    else:
        parts.append("<p class=note>the model has no normalisation statistics: fit them with "
                     "<code>rewardkit eval MODEL DATA --fit-normalization</code>.</p>")
    parts.append(_rewards_table(m))
    captions = {
        "rewards": "Chosen vs rejected reward histograms",
        "margins": "Margin distribution",
        "reliability": f"Reliability diagram ({html.escape(m['calibration']['binning'])})",
        "reward_vs_length": "Reward vs response length",
        "length_buckets": "Accuracy by length-difference bucket",
        "training_curves": "Training curves (from the run's metrics.jsonl)",
        "uncertainty": "Ensemble: accuracy by uncertainty quantile; calibration vs a single head",
    }
    parts.append("<h2>Figures</h2>")
    for key, png in figures.items():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(f"<figure><img id='fig-{key}' alt='{html.escape(captions.get(key, key))}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{captions.get(key, key)}</figcaption></figure>")
    if "uncertainty" in m:
        parts += _uncertainty_section(m)
    parts.append("<h2>Calibration table</h2>")
    parts.append(_table(["confidence bin", "pairs", "mean confidence", "accuracy"],
                        [[f"[{r['lo']:.2f}, {r['hi']:.2f}{']' if r['hi'] >= 1 else ')'}", str(r["count"]),
                          _fmt(r["confidence"]), _fmt(r["accuracy"])] for r in m["calibration"]["table"]]))
    parts.append("<h2>Accuracy by length difference</h2>")
    parts.append(_table(["len(chosen) - len(rejected)", "pairs", "accuracy", "ties", "mean margin"],
                        [[html.escape(r["bucket"]), str(r["pairs"]), _fmt(r["accuracy"]), str(r["ties"]),
                          _fmt(r["mean_margin"])] for r in m["by_length_diff"]]))
    if "by" in m:
        parts.append(f"<h2>By {html.escape(m['by']['column'])}</h2>")
        parts.append(_table([m["by"]["column"], "pairs", "accuracy [95% CI]", "ties", "mean margin", "AUC"],
                            [[html.escape(k), str(g["pairs"]), _ci(g, "accuracy"), str(g["ties"]),
                              _fmt(g["mean_margin"]), _fmt(g["auc"])] for k, g in m["by"]["groups"].items()]))
    idx = worst_pairs(ev, worst)
    parts.append(f"<h2>Worst-scored pairs ({len(idx)} largest wrong margins)</h2>")
    rows = []
    for i in idx:
        p = ev.pairs[i]
        rows.append([html.escape(p.where), _fmt(float(ev.r_chosen[i] - ev.r_rejected[i])),
                     _fmt(float(ev.r_chosen[i])), _fmt(float(ev.r_rejected[i])),
                     html.escape(_clip(text_of(p.prompt).lstrip("\n"), "end")),
                     html.escape(_clip(text_of(p.chosen), "start")), html.escape(_clip(text_of(p.rejected), "start"))])
    parts.append(_table(["record", "margin", "r chosen", "r rejected", "prompt (end)", "chosen", "rejected"], rows,
                        text_cols=frozenset({4, 5, 6})))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(ev: PairEvaluation, out_dir: str | Path, *, training_log: Path | None = None,
                 title: str = "rewardkit evaluation", worst: int = 20) -> Path:
    """Write the PNG figures and ``report.html`` (figures embedded) to ``out_dir``; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {
        "rewards": fig_reward_histograms(ev, out / "rewards.png"),
        "margins": fig_margins(ev, out / "margins.png"),
        "reliability": fig_reliability(ev, out / "reliability.png"),
        "reward_vs_length": fig_reward_vs_length(ev, out / "reward_vs_length.png"),
        "length_buckets": fig_length_buckets(ev, out / "length_buckets.png"),
    }
    if "uncertainty" in ev.metrics:
        figures["uncertainty"] = fig_uncertainty(ev, out / "uncertainty.png")
    if training_log is not None:
        curves = fig_training_curves(training_log, out / "training_curves.png")
        if curves is not None:
            figures["training_curves"] = curves
    (out / "metrics.json").write_text(json.dumps(ev.metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    path = out / "report.html"
    path.write_text(render_html(ev, figures, title, worst), encoding="utf-8")
    log.info("report written to %s (%d figures)", path, len(figures))
    return path


def write_examples_report(ev: ExampleEvaluation, out_dir: str | Path, *, title: str = "rewardkit evaluation") -> Path:
    """Binary, scalar or ranked data: ``metrics.json`` and an HTML page of metric tables (no figures yet); step
    data (process reward models): with figures (:mod:`rewardkit.eval.step_eval`)."""
    if ev.format == "steps":
        from .step_eval import write_step_report

        return write_step_report(ev, out_dir, title)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = ev.metrics
    (out / "metrics.json").write_text(json.dumps(m, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    skip = {"by", "data", "invalid", "truncation", "calibration", "attributes", "mean"}
    rows = [[html.escape(k), _ci(m, k)] for k, v in m.items()
            if k not in skip and not k.endswith("_ci") and not isinstance(v, (dict, list))]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class=note>data: {html.escape(ev.data)} ({html.escape(ev.format)}); intervals: 95% percentile "
             "bootstrap (seeded).</p>", _table(["metric", "value [95% CI]"], rows)]
    if "attributes" in m:  # multi-attribute data: one row per attribute
        parts.append("<h2>Per attribute</h2>")
        parts.append(_table(["attribute", "rated", "rmse", "pearson [95% CI]", "spearman"],
                            [[html.escape(a), str(v.get("n")), _fmt(v.get("rmse")), _ci(v, "pearson"),
                              _fmt(v.get("spearman"))] for a, v in m["attributes"].items()]))
    if "calibration" in m:
        parts.append(_table(["confidence bin", "examples", "mean confidence", "accuracy"],
                            [[f"[{r['lo']:.2f}, {r['hi']:.2f})", str(r["count"]), _fmt(r["confidence"]),
                              _fmt(r["accuracy"])] for r in m["calibration"]["table"]]))
    if "by" in m:
        groups = m["by"]["groups"]
        keys = [k for k in next(iter(groups.values())) if not isinstance(next(iter(groups.values()))[k], (dict, list))]
        parts.append(f"<h2>By {html.escape(m['by'].get('column', ''))}</h2>")
        parts.append(_table([m["by"].get("column", "group")] + keys,
                            [[html.escape(g)] + [_fmt(v.get(k)) for k in keys] for g, v in groups.items()]))
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
