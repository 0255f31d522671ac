"""Data at scale: time to the first step and peak RSS, first run (tokenize + write the cache) vs cached run.

    python benchmarks/data_scale.py --sizes 10000,100000            # the table in benchmarks/README.md
    python benchmarks/data_scale.py --sizes 1000000 --runs first,cached,cached   # 1M pairs (the first run takes long)

Data: the bundled hh-rlhf harmless sample (2,312 records) repeated to N pairs, each copy made unique by a tag
appended to both responses (``" [copy k]"``), written as JSONL. Model: a tiny randomly initialised Llama (2
layers, hidden 32) with the GPT-2 tokenizer from ``--tokenizer``, so the model costs nothing next to the data.
Each run is ``rewardkit.train`` with ``train.max_steps: 1``, no eval split, in its own process:

* ``to first step``: process start (imports included) until the training loop starts, i.e. the wall time of the
  process minus the loop's ``train_seconds`` and the saving of the tiny model;
* ``of which data``: reading, validating and tokenizing (or opening the cache), ``data.load_seconds`` of
  summary.json;
* ``peak RSS``: the training process's ``ru_maxrss`` (tokenizer workers are separate processes: their own peak
  is printed as ``workers``).

The first run of a size starts with an empty cache directory; the cached run is the same command again.
Each row also gives the CPU seconds of the run (the training process and its tokenizer workers) and the load
average of the machine over the run, since a shared machine's wall times mean little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_data(n: int, out: Path) -> Path:
    from rewardkit.data.readers import read_records

    base = [r.data for r in read_records("builtin:hh-rlhf-harmless")]
    path = out / f"pairs_{n}.jsonl"
    if path.exists():
        return path
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            r = base[i % len(base)]
            k = i // len(base)
            tag = f" [copy {k}]" if k else ""
            f.write(json.dumps({"chosen": r["chosen"] + tag, "rejected": r["rejected"] + tag}) + "\n")
    return path


def make_model(tokenizer_dir: str, out: Path) -> Path:
    import torch
    import transformers as tf

    d = out / "tiny-llama"
    if d.exists():
        return d
    tok = tf.AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    cfg = tf.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, num_labels=1)
    tf.AutoModelForSequenceClassification.from_config(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def child(args) -> None:
    """One training run in this process; prints one JSON line."""
    t0 = time.time()
    import rewardkit

    cfg = {"model": {"name": args.model},
           "data": {"train": args.data, "on_invalid": "skip", "cache_dir": args.cache_dir, "num_proc": args.num_proc},
           "train": {"max_steps": 1, "batch_size": 8, "tensorboard": False, "eval_zero_shot": False},
           "output_dir": args.output_dir}
    result = rewardkit.train(cfg)
    wall = time.time() - t0
    m = result.metrics
    print(json.dumps({"wall": wall, "train_seconds": m["train_seconds"], "to_first_step": wall - m["train_seconds"],
                      "data_seconds": m["data"]["load_seconds"], "pairs": m["data"]["train_pairs"],
                      "cached": m["data"]["sources"][0]["cached"],
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "workers_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--runs", default="first,cached",
                    help="runs per size, in order: 'first' empties the size's cache directory, 'cached' reuses it")
    ap.add_argument("--num-proc", type=int, default=None, help="data.num_proc (default: the cores)")
    ap.add_argument("--tokenizer", default="/work/shared/tokenizers/gpt2")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--cache-dir", help=argparse.SUPPRESS)
    ap.add_argument("--output-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="rk-data-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    model = make_model(args.tokenizer, work)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    print(f"cpu: {os.cpu_count()} cores visible, load average {os.getloadavg()[0]:.1f}; work dir {work}",
          flush=True)
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        data = make_data(n, work)
        cache = work / f"cache_{n}"
        for i, run in enumerate(args.runs.split(",")):
            if run == "first":
                shutil.rmtree(cache, ignore_errors=True)
            out = work / f"run_{n}_{i}_{run}"
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, __file__, "--child", "--model", str(model), "--data", str(data),
                   "--cache-dir", str(cache), "--output-dir", str(out)]
            if args.num_proc is not None:
                cmd += ["--num-proc", str(args.num_proc)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            load0 = os.getloadavg()[0]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            # user + system seconds of the child and of its (waited-for) tokenizer workers
            r["cpu_seconds"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            r["load"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
            rows.append((n, run, r))
            print(json.dumps({"n": n, "run": run, **r}), flush=True)
    print("\n| pairs | run | to first step (s) | of which data (s) | CPU (s) | peak RSS (MB) | workers' peak RSS (MB) "
          "| load (start, end) |")
    print("|---:|---|---:|---:|---:|---:|---:|---|")
    for n, run, r in rows:
        print(f"| {n:,} | {run} | {r['to_first_step']:.1f} | {r['data_seconds']:.1f} | {r['cpu_seconds']:.0f} | "
              f"{r['rss_mb']:.0f} | {r['workers_rss_mb']:.0f} | {r['load'][0]}, {r['load'][1]} |")


if __name__ == "__main__":
    main()
