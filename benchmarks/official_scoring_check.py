"""One-off check: rewardkit's benchmark scoring against the official scoring functions, on the same scores.

The official functions are taken from the fetched repositories without installing their packages (whose imports
pull in fastchat, the hub client and GPU tooling): the module source is parsed and only the plain scoring
functions are executed, with numpy / pandas / datasets.Dataset in their namespace.

    python benchmarks/official_scoring_check.py --reward-bench DIR --rm-bench DIR [--seed 0]

DIR is a git directory (``git show HEAD:path`` reads it) or a checkout. Prints both figures for every section
and the largest absolute difference.
"""

from __future__ import annotations

import argparse
import ast
import subprocess
from collections import defaultdict
from pathlib import Path

import numpy as np


def _source(repo: str, path: str) -> str:
    p = Path(repo, path)
    if p.exists():
        return p.read_text(encoding="utf-8")
    return subprocess.run(["git", "-C", repo, "show", f"HEAD:{path}"], check=True, capture_output=True,
                          text=True).stdout


def _functions(repo: str, path: str, names: list[str], namespace: dict) -> dict:
    """Execute only the named top-level functions of a module (its imports are not run)."""
    tree = ast.parse(_source(repo, path))
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {n.name for n in body}
    if missing:
        raise SystemExit(f"{path}: no function {', '.join(sorted(missing))}")
    exec(compile(ast.Module(body=body, type_ignores=[]), path, "exec"), namespace)  # noqa: S102
    return namespace


def official(rb: str, rm: str) -> dict:
    import typing

    import pandas as pd
    from datasets import Dataset

    ns: dict = {"np": np, "pd": pd, "Dataset": Dataset, "defaultdict": defaultdict, **vars(typing)}
    exec(compile(_source(rb, "rewardbench/constants.py"), "constants.py", "exec"), ns)  # noqa: S102
    _functions(rb, "rewardbench/utils.py", ["calculate_scores_per_section", "_compute_prompt_stats",
                                            "process_single_model", "reroll_and_score_dataset"], ns)
    _functions(rb, "analysis/get_benchmark_results.py", ["get_average_over_rewardbench"], ns)
    _functions(rm, "scripts/utils.py", ["compute_accuracy", "split_dataset_by_domain"], ns)
    return ns


def check_rewardbench(ns: dict, rng) -> list[tuple[str, float, float]]:
    import pandas as pd

    from rewardkit.eval.suites.rewardbench import score_rewardbench

    subsets, chosen, rejected = [], [], []
    for name, n in ns["EXAMPLE_COUNTS"].items():
        n = 447 if name == "math-prm" else n  # the real row count (the table up-weights it)
        subsets += [name] * n
        chosen += list(np.round(rng.normal(0.3, 1, n), 1))  # rounded: some ties, which count as wrong
        rejected += list(np.round(rng.normal(0, 1, n), 1))
    prior = {s: float(rng.uniform(0.5, 0.8)) for s in ("anthropic_helpful", "anthropic_hhh", "shp", "summarize")}
    ours = score_rewardbench(subsets, chosen, rejected)
    acc = {k: v["accuracy"] for k, v in ours.subsets.items()}
    sections = ns["calculate_scores_per_section"](ns["EXAMPLE_COUNTS"], ns["SUBSET_MAPPING"], acc)
    # the prior sets enter as subsets of their own (in the official flow they come from allenai/pref-test-sets)
    subsets_p = subsets + [s for s, a in prior.items() for _ in range(1000)]
    chosen_p = chosen + [1.0 if i < round(a * 1000) else 0.0 for a in prior.values() for i in range(1000)]
    with_prior = score_rewardbench(subsets_p, chosen_p, rejected + [0.5] * (len(chosen_p) - len(chosen)))
    prior = {s: with_prior.subsets[s]["accuracy"] for s in prior}  # the same accuracies go to the official code
    df = pd.DataFrame([{"model": "m", "model_type": "Seq. Classifier", **acc}])
    prefs = pd.DataFrame([{"model": "m", **prior}])
    avg = ns["get_average_over_rewardbench"](df, prefs).iloc[0]
    rows = [(f"rewardbench {s}", sections[s], ours.sections[s]) for s in ns["SUBSET_MAPPING"]]
    rows.append(("rewardbench overall, prior sets", float(avg["average"]), with_prior.overall))
    rows.append(("rewardbench overall, no prior sets", float(np.mean(list(sections.values()))), ours.overall))
    return rows


def check_rewardbench2(ns: dict, rng) -> list[tuple[str, float, float]]:
    from datasets import Dataset

    from rewardkit.eval.suites.rewardbench2 import score_rewardbench2

    rows = []
    for subset in ("Factuality", "Precise IF", "Math", "Safety", "Focus"):
        for i in range(200):
            rows.append({"id": f"{subset}-{i}", "subset": subset, "num_correct": 1,
                         "scores": list(np.round(rng.normal(0, 1, 4) + [0.4, 0, 0, 0], 1))})
    for n in range(100):
        k = int(rng.integers(2, 5))
        rows.append({"id": f"ref:{n}", "subset": "Ties", "num_correct": 1,
                     "scores": list(rng.normal(0, 1, 4) + [0.8, 0, 0, 0])})
        rows.append({"id": f"tied:{n}", "subset": "Ties", "num_correct": k,
                     "scores": list(rng.normal(0, 1, k + 3) + np.array([0.8] * k + [0.0] * 3))})
    ours = score_rewardbench2([r["subset"] for r in rows], [r["id"] for r in rows], [r["scores"] for r in rows],
                              [r["num_correct"] for r in rows])
    flat = [{"subset": r["subset"], "id": r["id"], "num_correct": r["num_correct"], "text": "x", "scores": s}
            for r in rows for s in r["scores"]]
    rerolled = ns["reroll_and_score_dataset"](Dataset.from_list(flat), [len(r["scores"]) for r in rows])
    out = []
    for subset in ("Factuality", "Precise IF", "Math", "Safety", "Focus"):
        res = [x["results"] for x in rerolled if x["subset"] == subset]
        out.append((f"rewardbench2 {subset}", float(np.mean(res)), ours.sections[subset]))
    ties = Dataset.from_list([{"id": r["id"], "scores": r["scores"], "num_correct": r["num_correct"]}
                              for r in rows if r["subset"] == "Ties"])
    _, official_ties = ns["process_single_model"](ties)
    out.append(("rewardbench2 Ties", official_ties, ours.sections["Ties"]))
    out.append(("rewardbench2 overall", float(np.mean([o[1] for o in out])), ours.overall))
    return out


def check_rmbench(ns: dict, rng) -> list[tuple[str, float, float]]:
    from rewardkit.eval.suites.rmbench import score_rmbench

    domains = ["chat"] * 129 + ["math"] * 529 + ["code"] * 228 + ["safety-refuse"] * 200 + ["safety-response"] * 241
    chosen = [list(np.round(rng.normal(0.3, 1, 3) + [0, 0.2, 0.4], 1)) for _ in domains]
    rejected = [list(np.round(rng.normal(0, 1, 3) + [0, 0.2, 0.4], 1)) for _ in domains]
    ours = score_rmbench(domains, chosen, rejected)
    results = [{"domain": d, "score_chosen": c, "score_rejected": r}
               for d, c, r in zip(domains, chosen, rejected, strict=True)]
    off = ns["compute_accuracy"](results)
    out = [(f"rm-bench {d}", float(off[d]), ours.subsets[d]["accuracy"]) for d in ("chat", "math", "code", "safety")]
    out += [(f"rm-bench {k}", float(off[f"{k}_acc"]), ours.sections[k]) for k in ("easy", "normal", "hard")]
    out.append(("rm-bench overall", float(off["total_avg_acc"]), ours.overall))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward-bench", required=True)
    ap.add_argument("--rm-bench", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ns = official(args.reward_bench, args.rm_bench)
    rng = np.random.default_rng(args.seed)
    rows = check_rewardbench(ns, rng) + check_rewardbench2(ns, rng) + check_rmbench(ns, rng)
    print(f"{'figure':38s} {'official':>10s} {'rewardkit':>10s}")
    for name, a, b in rows:
        print(f"{name:38s} {a:10.6f} {b:10.6f}")
    print(f"largest |difference| over {len(rows)} figures: {max(abs(a - b) for _, a, b in rows):.2e}")


if __name__ == "__main__":
    main()
