"""Train every recipe in configs/recipes/ on its real data with a tiny random backbone; print zero-shot vs trained.

    python benchmarks/recipes_real_data.py --steps 300 [--seeds 0 1 2] [--out runs/recipes-real] [RECIPE ...] [-- --train.lr 2e-4]

Each config keeps its data, read-out and loss; the backbone becomes a 2-layer, hidden-32 random model (Llama with
the GPT-2 tokenizer for decoder recipes, BERT for encoder recipes), LoRA off, lr 1e-3, max_length 128. The data
paths in the configs (`../shared/data/...`) must exist. Figures are in docs/recipes.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PRIMARY = {"bradley_terry": "accuracy", "log_exp": "accuracy", "token_level_pairwise": "accuracy",
           "cross_entropy": "auc", "mse": "pearson", "rmse": "pearson", "ranking": "pair_accuracy",
           "multi_attribute_mse": "pearson"}


def tiny_model(arch: str, root: Path) -> Path:
    from tests.conftest import ARCH_TOKENIZER, tiny_config
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = root / f"tiny-{arch}"
    if d.exists():
        return d
    tok_dir = root / f"tokenizer-{arch}"
    tok_dir.mkdir(parents=True, exist_ok=True)
    for f in (REPO / "tests" / "assets" / "tokenizers" / ARCH_TOKENIZER[arch]).iterdir():
        data = gzip.decompress(f.read_bytes()) if f.suffix == ".gz" else f.read_bytes()
        (tok_dir / (f.stem if f.suffix == ".gz" else f.name)).write_bytes(data)
    tok = AutoTokenizer.from_pretrained(str(tok_dir))
    torch.manual_seed(0)
    cfg = tiny_config(arch, len(tok))
    cfg.num_labels = 1
    AutoModelForSequenceClassification.from_config(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def main() -> None:
    import rewardkit
    from rewardkit.config import load_config

    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", default="runs/recipes-real")
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="train.seed values (head initialisation and data order); several give a mean and spread")
    p.add_argument("--select-steps", type=int, default=None, metavar="EVERY",
                   help="early stopping without touching the held-out split: train on the first 80%% of the training "
                   "records with train.early_stopping selecting on the last 20%% (evaluated every EVERY steps), then "
                   "retrain on all training records for the best number of steps (at most --steps) and evaluate "
                   "that on the held-out split")
    p.add_argument("recipes", nargs="*")
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = Path(args.out)
    for path in sorted((REPO / "configs" / "recipes").glob("*.yaml")):
        if args.recipes and path.stem not in args.recipes:
            continue
        cfg = load_config(path)
        arch = "bert" if cfg.model.name == "minilm-l6" else "llama"
        key = PRIMARY[cfg.loss.name]
        runs = []
        for seed in args.seeds:
            over = ["--model.name", str(tiny_model(arch, out)), "--model.lora", "null", "--train.max_steps",
                    str(args.steps), "--train.lr", "1e-3", "--train.eval_every", "null", "--train.tensorboard",
                    "false", "--data.max_length", "128", "--train.warmup_ratio", "0.05", "--train.seed", str(seed),
                    "--output_dir", str(out / path.stem / f"seed{seed}"), *extra]
            t = time.time()
            chosen_steps = None
            if args.select_steps:
                chosen_steps = select_steps(path, over, args.select_steps, key, out / path.stem / f"seed{seed}-select")
                over += ["--train.max_steps", str(chosen_steps)]
            result = rewardkit.train(load_config(path, over), overwrite=True)  # a rerun replaces its runs
            m, z = result.metrics["eval"], result.metrics["zero_shot"]
            row = {"recipe": path.stem, "seed": seed, "steps": chosen_steps or args.steps, "metric": key,
                   "zero_shot": z.get(key),
                   "trained": m.get(key), "zero_shot_loss": z.get("loss"), "trained_loss": m.get("loss"),
                   "seconds": round(time.time() - t), "train_size": result.metrics["data"]["train_pairs"],
                   "eval_size": result.metrics["data"]["eval_pairs"]}
            fit = result.metrics.get("attribute_weights")
            if fit:  # the learned weighting's second stage: pair accuracy of the combined reward
                row["weights"] = dict(zip(fit["attributes"], [round(w, 4) for w in fit["weights"]], strict=True))
                for part in ("train", "eval"):
                    if fit.get(part):
                        row[f"weights_{part}_pairs"] = fit[part]["pairs"]
                        row[f"weights_{part}_accuracy"] = {"uniform": fit[part]["uniform"]["accuracy"],
                                                           "fitted": fit[part]["fitted"]["accuracy"]}
            runs.append(row)
            print("RESULT", json.dumps(row), flush=True)
        if len(runs) > 1:
            print("SUMMARY", json.dumps({"recipe": path.stem, "metric": key, "seeds": args.seeds,
                                         **{f"{k}_{stat}": v for k in ("zero_shot", "trained")
                                            for stat, v in zip(("mean", "std"), _mean_std([r[k] for r in runs]),
                                                               strict=True)},
                                         "improved": sum(r["trained"] > r["zero_shot"] for r in runs)}), flush=True)


def select_steps(path: Path, over: list[str], every: int, key: str, out: Path) -> int:
    """The step count with the best ``key`` on the last 20% of the recipe's training records, training on the
    first 80% (the held-out split is not read). The trainer's own early stopping (``train.early_stopping``,
    patience null: every step trained, the best evaluation kept; ties keep the earlier step) makes the choice."""
    from rewardkit.config import load_config

    train = load_config(path).data.train
    if train.stop is None:
        raise ValueError(f"{path.name}: --select-steps needs data.train.stop")
    cut = train.stop - max(1, (train.stop - train.start) // 5)
    dev = ["--data.train.stop", str(cut), "--data.eval", json.dumps({"path": train.path, "start": cut,
           "stop": train.stop, "adapter": train.adapter}), "--train.eval_every", str(every),
           "--train.eval_zero_shot", "false", "--train.early_stopping.metric", key, "--output_dir", str(out)]
    import rewardkit

    early = rewardkit.train(load_config(path, over + dev), overwrite=True).metrics["early_stopping"]
    curve = [(r["step"], r[key]) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if r["split"] == "eval" and r.get(key) is not None]
    print("SELECT", json.dumps({"recipe": path.stem, "dev_records": [cut, train.stop], "curve": curve,
                                "chosen_steps": early["best_step"]}), flush=True)
    return early["best_step"]


def _mean_std(xs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1)."""
    mean = sum(xs) / len(xs)
    return mean, (sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5


if __name__ == "__main__":
    main()
