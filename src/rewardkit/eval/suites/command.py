"""``rewardkit eval MODEL DATA --suite NAME [--json] [--report DIR] [--baseline MODEL2]``."""

from __future__ import annotations

import dataclasses
import json

from .runner import format_suite, run_suite


def _scorer(path: str, template: str):
    from ...scoring import Scorer

    scorer = Scorer.from_pretrained(path)
    if template != "auto":  # --data.template chat|plain overrides how the conversation is rendered
        from ...data.render import Renderer

        scorer.renderer = Renderer(scorer.tokenizer, scorer.meta.kind, template, scorer.meta.separator)
    return scorer


def run_suite_command(args, data_cfg) -> int:
    """Score the suite with MODEL (and ``--baseline``), print text or one JSON object, write the report."""
    kwargs = {"n_boot": args.bootstrap, "seed": args.seed, "show_progress": not args.json}
    result = run_suite(_scorer(args.model, data_cfg.template), args.suite, args.data, data_cfg.fields, **kwargs)
    baseline = None
    if args.baseline:
        baseline = run_suite(_scorer(args.baseline, data_cfg.template), args.suite, args.data, data_cfg.fields,
                             **kwargs)
    out = result.to_dict()
    out["model"] = str(args.model)
    if baseline is not None:
        out["baseline"] = {**dataclasses.asdict(baseline), "model": str(args.baseline)}
    if args.report:
        from .report import write_suite_report

        out["report"] = str(write_suite_report(result, args.report, baseline=baseline, model=str(args.model),
                                               baseline_model=args.baseline))
    if args.json:
        print(json.dumps(out, allow_nan=False))
        return 0
    print(format_suite(result, baseline))
    if args.report:
        print(f"report: {out['report']}")
    return 0
