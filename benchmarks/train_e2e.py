"""The race as users run it: `rewardkit train CONFIG` with its defaults against a plain TRL `RewardTrainer` script
with TRL's defaults, whole processes, alternating A B A B.

    python benchmarks/train_e2e.py                                  # defaults: 3 rounds, 20 steps, both precisions
    python benchmarks/train_e2e.py --rounds 1 --steps 5 --precisions fp32
    python benchmarks/train_e2e.py --lora                           # LoRA r=16 on both
    python benchmarks/train_e2e.py --accuracy --rounds 1            # 1 epoch on 1,912 pairs, the last 400 held out
    python benchmarks/train_e2e.py --accuracy --accuracy-pairs 480  # 1 epoch on the first 480 (slow machines)

Both sides: SmolLM2-135M-Instruct from the built-in package (`smollm2-135m`, GGUF de-quantised to fp32 and written
once as a plain transformers directory that both tools read: TRL's Trainer refuses the GGUF-loaded model), the first
pairs of the bundled hh-rlhf harmless-base file (as the quickstart), batch 8, max length 512, seed 0. Each tool's
*default* precision on the machine at hand (`--precisions default`): rewardkit's `precision: auto` (bf16 where
the CPU has amx_bf16 / avx512_bf16 or on CUDA, else fp32) and TRL's `RewardConfig` default (bf16 always:
emulated, ~100x slower matmuls, on AVX2-only CPUs); `fp32` pins fp32 on both. Everything else is each tool's
default: rewardkit packs, bounds each pass (`max_tokens_per_forward: auto`) and checkpoints only where needed;
TRL pads and checkpoints (`gradient_checkpointing: True`), lr 1e-4 vs rewardkit's 2e-5 (each its own default).

Reported per tool and row (median over rounds): train seconds (each tool's own training clock: summary.json
`train_seconds`, TRL's `train_runtime`), pairs/s, peak RSS of the process (from the OS: `wait4`), model FLOP/s
(6 x non-embedding parameters x tokens of the sequences, chosen + rejected as each tool tokenized them; 4 x for
LoRA, whose frozen weights need no weight gradient: the work a padded trainer does, so packing's saving shows
as a higher rate), the achieved share of the measured 512^3 matmul rate of the precision used (on the tokens
actually computed: a packed row holds the prompt once; padding is not counted for either tool), and with `--accuracy` held-out accuracy with a 95% interval (normal approximation, n = 400).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "src" / "rewardkit" / "assets" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
HELD_OUT = 400


def cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


def records() -> list[dict]:
    with gzip.open(DATA, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


# --------------------------------------------------------------------------------------------------------
# the two programs, as a user writes them


TRL_SCRIPT = r'''
import json, sys, tempfile, time
import torch
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from trl import RewardConfig, RewardTrainer

spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
tok = AutoTokenizer.from_pretrained(spec["model_dir"])
if tok.pad_token is None:
    tok.pad_token = tok.eos_token
model = AutoModelForSequenceClassification.from_pretrained(spec["model_dir"], num_labels=1, dtype=torch.float32)
model.config.pad_token_id = tok.pad_token_id
train = Dataset.from_list(spec["train"])
evals = Dataset.from_list(spec["eval"]) if spec["eval"] else None
kw = dict(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=8, per_device_eval_batch_size=8,
          max_length=spec["max_length"], logging_steps=10, save_strategy="no", report_to=[], seed=0, use_cpu=True)
if spec["max_steps"]:
    kw["max_steps"] = spec["max_steps"]
else:
    kw["num_train_epochs"] = 1
if spec["precision"] == "fp32":
    kw["bf16"] = False
args = RewardConfig(**kw)
peft = None
if spec["lora"]:
    from peft import LoraConfig
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="SEQ_CLS")
trainer = RewardTrainer(model=model, args=args, train_dataset=train, eval_dataset=evals, processing_class=tok,
                        peft_config=peft)
tokens = sum(len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trainer.train_dataset)
out = trainer.train()
result = {"train_seconds": out.metrics["train_runtime"], "steps": out.global_step, "bf16": bool(args.bf16),
          "tokens_per_epoch": tokens, "pairs_per_epoch": len(trainer.train_dataset)}
if evals is not None:
    result["accuracy"] = trainer.evaluate().get("eval_accuracy")
print("RESULT " + json.dumps(result), flush=True)
'''


def rewardkit_config(tmp: Path, spec: dict) -> Path:
    train_stop = spec["train_pairs"]
    cfg = {"model": {"name": spec["model_dir"], **({"lora": {"r": 16, "alpha": 32, "dropout": 0.0}}
                                                 if spec["lora"] else {})},
           "data": {"train": {"path": "builtin:hh-rlhf-harmless", "start": 0, "stop": train_stop},
                    "max_length": spec["max_length"], "on_invalid": "skip"},
           "train": {"batch_size": 8, "seed": 0, "eval_zero_shot": False, "tensorboard": False,
                     **({"max_steps": spec["max_steps"]} if spec["max_steps"] else {"epochs": 1})},
           "output_dir": str(tmp / "run")}
    if spec["eval"]:
        cfg["data"]["eval"] = {"path": "builtin:hh-rlhf-harmless", "start": len(records()) - HELD_OUT}
    if spec["precision"] == "fp32":
        cfg["train"]["precision"] = "fp32"
    import yaml

    p = tmp / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def plain_checkpoint() -> str:
    """SmolLM2-135M-Instruct as a plain fp32 transformers directory, written once from the built-in package.

    Both tools read this same directory, as a user would read a checkpoint downloaded from the hub: TRL cannot
    train the GGUF-loaded model itself (transformers marks it quantized and its Trainer refuses it), and one
    source of weights keeps the race about training, not loading."""
    out = Path(os.environ.get("REWARDKIT_BENCH_DIR", Path.home() / ".cache" / "rewardkit" / "bench")) / "smollm2-135m"
    if (out / "config.json").exists():
        return str(out)
    import torch
    from transformers import AutoModelForCausalLM

    from rewardkit.models.backbones import detach_gguf_quantizer, load_tokenizer, resolve_model

    path, gguf = resolve_model("smollm2-135m")
    model = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf, dtype=torch.float32)
    detach_gguf_quantizer(model)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    load_tokenizer(path, gguf).save_pretrained(tmp)
    tmp.rename(out)
    return str(out)


def run_process(cmd: list[str], env: dict) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS GB of the process tree's largest member, from the OS)."""
    t = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(out[-4000:])
        raise SystemExit(f"{cmd[:4]} failed with {proc.returncode}")
    return out, time.time() - t, usage.ru_maxrss / 1024 ** 2  # KiB -> GiB


def run_rewardkit(spec: dict, env: dict) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="rk-e2e-"))
    cfg = rewardkit_config(tmp, spec)
    out, wall, rss = run_process([sys.executable, "-m", "rewardkit", "train", str(cfg)], env)
    summary = json.loads((tmp / "run" / "summary.json").read_text())
    steps = summary["steps"]
    return {"tool": "rewardkit", "train_seconds": summary["train_seconds"], "steps": steps, "peak_rss_gb": rss,
            "wall_seconds": wall, "precision": summary["resolved"]["precision"], "resolved": summary["resolved"],
            "accuracy": (summary.get("eval") or {}).get("accuracy"),
            "train_pairs": summary["data"]["train_pairs"]}


def run_trl(spec: dict, env: dict) -> dict:
    recs = records()
    train = recs[:spec["train_pairs"]]
    train = [r for r in train if r["chosen"].strip() and r["rejected"].strip()]
    evals = recs[-HELD_OUT:] if spec["eval"] else []
    payload = json.dumps({**spec, "train": train, "eval": evals})
    script = Path(tempfile.mkdtemp(prefix="trl-e2e-")) / "trl_reward.py"
    script.write_text(TRL_SCRIPT)
    arg_file = script.with_suffix(".json")
    arg_file.write_text(payload)
    out, wall, rss = run_process([sys.executable, "-c", f"import sys; sys.argv = ['trl', open({str(arg_file)!r}).read()]; "
                                  f"exec(open({str(script)!r}).read())"], env)
    res = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
    tokens_per_pair = res["tokens_per_epoch"] / max(res["pairs_per_epoch"], 1)
    return {"tool": "trl", "train_seconds": res["train_seconds"], "steps": res["steps"], "peak_rss_gb": rss,
            "wall_seconds": wall, "precision": "bf16" if res["bf16"] else "fp32", "accuracy": res.get("accuracy"),
            "tokens_per_pair": tokens_per_pair}


def rewardkit_tokens_per_pair(spec: dict) -> tuple[float, float]:
    """Per pair, as rewardkit renders and truncates them (its own data path): the tokens of chosen + rejected
    (the work a padded trainer does, padding aside) and the tokens a packed row computes (the prompt once)."""
    from rewardkit.config import load_config
    from rewardkit.data.dataset import encode_pairs, load_pairs
    from rewardkit.data.packing import group_tokens
    from rewardkit.data.render import Renderer
    from rewardkit.data.tokenize import SequenceEncoder
    from rewardkit.models.backbones import load_tokenizer

    cfg = load_config(rewardkit_config(Path(tempfile.mkdtemp()), spec))
    tok = load_tokenizer(spec["model_dir"], None)
    pairs = encode_pairs(load_pairs(cfg.data.train, cfg.data), Renderer(tok, "decoder"),
                         SequenceEncoder(tok, "decoder", spec["max_length"], cfg.data.truncation))
    sequences = sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in pairs) / len(pairs)
    packed = sum(group_tokens([p.chosen, p.rejected], "decoder") for p in pairs) / len(pairs)
    return sequences, packed


def matmul_rate(dtype_name: str, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(512, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
    a @ b
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < 2.0:
        a @ b
        n += 1
    return 2 * 512 ** 3 * n / (time.perf_counter() - t)


def non_embedding_params() -> int:
    """SmolLM2-135M's non-embedding parameters, from its config (no weights loaded)."""
    from rewardkit.models.backbones import load_config, resolve_model

    path, gguf = resolve_model("smollm2-135m")
    c = load_config(path, gguf)
    h, i, layers = c.hidden_size, c.intermediate_size, c.num_hidden_layers
    kv = c.num_key_value_heads * (getattr(c, "head_dim", None) or h // c.num_attention_heads)
    return layers * (2 * h * h + 2 * h * kv + 3 * h * i + 2 * h) + h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run (batch 8)")
    ap.add_argument("--pairs", type=int, default=160, help="training pairs read (the first N of the file)")
    ap.add_argument("--precisions", default="default,fp32", help="rows: each tool's default, and/or fp32 on both")
    ap.add_argument("--tools", default="rewardkit,trl")
    ap.add_argument("--max-length", type=int, default=512, help="data.max_length / RewardConfig.max_length")
    ap.add_argument("--lora", action="store_true", help="LoRA r=16 on both")
    ap.add_argument("--accuracy", action="store_true",
                    help=f"1 epoch on the first {2312 - HELD_OUT} pairs, accuracy on the last {HELD_OUT}")
    ap.add_argument("--accuracy-pairs", type=int, default=None,
                    help="with --accuracy: train on the first N pairs only (the same held-out 400)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if a.accuracy_pairs is not None and not 0 < a.accuracy_pairs <= len(records()) - HELD_OUT:
        ap.error(f"--accuracy-pairs must be in 1..{len(records()) - HELD_OUT} (the held-out {HELD_OUT} stay apart)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": str(a.threads), "PYTHONPATH": str(REPO / "src") + os.pathsep
           + os.environ.get("PYTHONPATH", "")}
    flags = cpu_flags()
    rates = {p: matmul_rate(d, a.threads) for p, d in (("fp32", "float32"), ("bf16", "bfloat16"))}
    print(f"CPU flags: {' '.join(flags) or 'none of avx2/avx512/amx'}; matmul 512^3 ({a.threads} threads): fp32 "
          f"{rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    n_params = non_embedding_params()
    model_dir = plain_checkpoint()
    train_pairs = (a.accuracy_pairs or len(records()) - HELD_OUT) if a.accuracy else a.pairs
    results = []
    for precision in a.precisions.split(","):
        spec = {"precision": precision, "lora": a.lora, "max_steps": None if a.accuracy else a.steps,
                "train_pairs": train_pairs, "eval": a.accuracy, "threads": a.threads, "max_length": a.max_length,
                "model_dir": model_dir}
        rk_tpp, rk_computed = rewardkit_tokens_per_pair(spec)
        print(f"rewardkit tokens per pair: {rk_tpp:.1f} in the sequences, {rk_computed:.1f} in a packed row",
              flush=True)
        for rnd in range(a.rounds):
            for tool in a.tools.split(","):
                r = run_rewardkit(spec, env) if tool == "rewardkit" else run_trl(spec, env)
                pairs = r["steps"] * 8 if not a.accuracy else (r.get("train_pairs") or train_pairs)
                tpp = rk_tpp if tool == "rewardkit" else r["tokens_per_pair"]
                computed = rk_computed if tool == "rewardkit" and r["resolved"]["packing"] else tpp
                flops = (4 if a.lora else 6) * n_params * pairs
                r.update(row=precision, round=rnd, pairs=pairs, pairs_per_s=pairs / r["train_seconds"],
                         model_flops_per_s=flops * tpp / r["train_seconds"],
                         matmul_share=flops * computed / r["train_seconds"] / rates[r["precision"]])
                results.append(r)
                print(json.dumps({k: v for k, v in r.items() if k != "resolved"}), flush=True)
                if tool == "rewardkit":
                    print(f"  rewardkit resolved: {r['resolved']}", flush=True)
    print("\n| row | tool | precision | median train s | pairs/s | peak RSS GB | model GFLOP/s | of matmul "
          "| accuracy (95%) |\n|---|---|---|---|---|---|---|---|---|")
    for precision in a.precisions.split(","):
        for tool in a.tools.split(","):
            rs = [r for r in results if r["row"] == precision and r["tool"] == tool]
            if not rs:
                continue
            med = statistics.median
            acc = [r["accuracy"] for r in rs if r["accuracy"] is not None]
            acc_s = "not measured"
            if acc:
                p = med(acc)
                acc_s = f"{p:.4f} +- {1.96 * (p * (1 - p) / HELD_OUT) ** 0.5:.4f}"
            print(f"| {precision} | {tool} | {rs[0]['precision']} | {med(r['train_seconds'] for r in rs):.1f} "
                  f"| {med(r['pairs_per_s'] for r in rs):.2f} | {med(r['peak_rss_gb'] for r in rs):.2f} "
                  f"| {med(r['model_flops_per_s'] for r in rs) / 1e9:.1f} "
                  f"| {med(r['matmul_share'] for r in rs):.0%} | {acc_s} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"flags": flags, "matmul": rates, "results": results}, indent=2))


if __name__ == "__main__":
    main()
