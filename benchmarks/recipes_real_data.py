"""Train every recipe in configs/recipes/ on its real data with a tiny random backbone; print zero-shot vs trained.

    python benchmarks/recipes_real_data.py --steps 300 [--out runs/recipes-real] [RECIPE ...] [-- --train.lr 2e-4]

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
    p.add_argument("recipes", nargs="*")
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    out = Path(args.out)
    for path in sorted((REPO / "configs" / "recipes").glob("*.yaml")):
        if args.recipes and path.stem not in args.recipes:
            continue
        cfg = load_config(path)
        arch = "bert" if cfg.model.name == "minilm-l6" else "llama"
        over = ["--model.name", str(tiny_model(arch, out)), "--model.lora", "null", "--train.max_steps",
                str(args.steps), "--train.lr", "1e-3", "--train.eval_every", "null", "--train.tensorboard", "false",
                "--data.max_length", "128", "--train.warmup_ratio", "0.05", "--output_dir", str(out / path.stem),
                *extra]
        t = time.time()
        result = rewardkit.train(load_config(path, over))
        m, z = result.metrics["eval"], result.metrics["zero_shot"]
        key = PRIMARY[cfg.loss.name]
        print("RESULT", json.dumps({
            "recipe": path.stem, "steps": args.steps, "metric": key, "zero_shot": z.get(key), "trained": m.get(key),
            "zero_shot_loss": z.get("loss"), "trained_loss": m.get("loss"), "seconds": round(time.time() - t),
            "train_size": result.metrics["data"]["train_pairs"], "eval_size": result.metrics["data"]["eval_pairs"]}),
            flush=True)


if __name__ == "__main__":
    main()
