"""Side-by-side training throughput: TRL's RewardTrainer vs rewardkit, same model, data, batches and optimizer.

    python benchmarks/train_vs_trl.py                      # all sizes and data variants (a few minutes)
    python benchmarks/train_vs_trl.py --sizes 10m --variants hh --steps 4

What is held equal: a randomly initialised Llama model (SmolLM2-135M's dimensions, or a ~10M one with the
same vocabulary), seed 0, fp32 (bf16 is emulated on AVX2-only CPUs: see the matmul rates printed), AdamW
(lr 1e-4, no weight decay, linear schedule, grad-norm clip 1.0), the same pairs *already tokenized by
rewardkit* (TRL gets them as ``chosen_ids``/``rejected_ids``, so both see identical token sequences), the same
micro-batches in the same order (rewardkit's length-grouped order; TRL's sampler is made sequential), the same
number of warm-up and timed steps, and gradient checkpointing (``--grad-ckpt``, on by default for both
because TRL's ``RewardConfig`` turns it on by default: it trades a second forward for much lower
activation memory, so comparing peak memory only makes sense with the same setting; a ``-nockpt`` tool turns
it off for itself, and rewardkit then runs each micro-batch as passes of at most ``--forward-tokens`` tokens,
``train.max_tokens_per_forward``). Each tool runs in its own process (clean peak RSS), and the processes
alternate round after round, so all see the same machine load.

Tools: ``trl`` (RewardTrainer), ``rewardkit`` (``train.packing``, the default kernel: ``tree`` on CPU, the batch in
one row), ``rewardkit-sdpa`` (packing with the dense-mask kernel, short rows), ``rewardkit-padded`` (no packing),
each optionally with ``-nockpt``.

Reported per tool: pairs/s, non-pad tokens/s (tokens of the sequences themselves, prompt counted twice as in
the padded layout, so this is the same work for every tool), computed tokens (what the tool actually ran
through the model: padded slots, or packed slots), achieved model FLOP/s (6 x non-embedding parameters x
computed tokens, plus attention) against the measured fp32 matmul rate, peak RSS, and the losses per step.

Data variants built from the bundled hh-rlhf harmless-base sample:
* ``hh``: the real pairs (implicit prompt = the shared dialogue);
* ``long-prompt``: several real dialogues joined as the prompt, responses cut to their first ~12 words;
* ``long-response``: only the last human turn as the prompt, each response extended with other real
  responses (same ones for chosen and rejected order-shifted, so they differ from the first token).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # SmolLM2-135M's architecture (the dims of the built-in GGUF's config), randomly initialised
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3, head_dim=64),
    "10m": dict(hidden_size=192, intermediate_size=512, num_hidden_layers=4, num_attention_heads=3,
                num_key_value_heads=1, head_dim=64),
}


# --------------------------------------------------------------------------------------------------------
# data: the same encoded pairs and the same batches in every worker


def build_pairs(variant: str, n: int):
    from rewardkit.config import DataConfig, SplitConfig
    from rewardkit.data.dataset import load_pairs
    from rewardkit.data.formats import Pair

    data = DataConfig(train=SplitConfig(path="builtin:hh-rlhf-harmless"), on_invalid="skip")
    pairs = load_pairs(data.train, data)
    if variant == "hh":
        return pairs[:n]
    out = []
    texts = [p for p in pairs if isinstance(p.prompt, str)]
    for i, p in enumerate(texts[:n]):
        if variant == "long-prompt":
            context, k = "", 1
            while len(context) < 1200:  # ~300 tokens of other real dialogues before this one
                other = texts[(i + k) % len(texts)]
                context, k = context + other.prompt + other.chosen, k + 1
            prompt = context + p.prompt
            chosen, rejected = (" " + " ".join(x.split()[:12]) for x in (p.chosen, p.rejected))
        elif variant == "long-response":
            last = p.prompt.rsplit("\n\nHuman:", 1)[-1]
            prompt = "\n\nHuman:" + last
            extra = [texts[(i + k) % len(texts)].chosen for k in range(1, 5)]
            chosen = p.chosen + "".join(extra)
            rejected = p.rejected + "".join(reversed(extra))
        else:
            raise ValueError(variant)
        out.append(Pair(prompt=prompt, chosen=chosen, rejected=rejected, margin=None, where=p.where))
    return out


def encoded_batches(tok, variant: str, batch: int, n_batches: int, max_length: int):
    from rewardkit.data.dataset import encode_pairs
    from rewardkit.data.render import Renderer
    from rewardkit.data.tokenize import SequenceEncoder
    from rewardkit.training.trainer import epoch_batches

    pairs = build_pairs(variant, 1000)
    # over-long pairs are dropped, as TRL does (it filters them): both tools train on the same whole pairs
    enc = encode_pairs(pairs, Renderer(tok, "decoder", "plain"), SequenceEncoder(tok, "decoder", max_length, "drop"))
    lengths = [max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in enc]
    order = epoch_batches(lengths, batch, seed=0, epoch=0)[:n_batches]
    return [[enc[i] for i in b] for b in order]


def build_model(tok_dir: str, size: str):
    import torch
    from transformers import AutoTokenizer, LlamaConfig

    from rewardkit.models.reward_model import model_from_config

    tok = AutoTokenizer.from_pretrained(tok_dir)
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=8192, rope_theta=100000.0,
                      tie_word_embeddings=True, rms_norm_eps=1e-5, **SIZES[size])
    torch.manual_seed(0)
    model = model_from_config(cfg, "decoder", tok)  # adds a pad token distinct from EOS (same for both tools)
    return model, tok


def flops_per_token(model, width: float) -> float:
    """6 x non-embedding parameters (forward + backward) + attention (12 x layers x hidden x context)."""
    cfg = model.transformer.config
    emb = cfg.vocab_size * cfg.hidden_size
    params = sum(p.numel() for p in model.parameters()) - emb
    return 6 * params + 12 * cfg.num_hidden_layers * cfg.hidden_size * width


# --------------------------------------------------------------------------------------------------------
# workers: one tool, one process


def worker(spec: dict) -> dict:
    import torch

    torch.set_num_threads(spec["threads"])
    model, tok = build_model(spec["tok_dir"], spec["size"])
    batches = encoded_batches(tok, spec["variant"], spec["batch"], spec["warmup"] + spec["steps"],
                              spec["max_length"])
    timed = batches[spec["warmup"]:]
    pairs = sum(len(b) for b in timed)
    real = sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for b in timed for p in b)
    if spec["base"] == "trl":
        seconds, cpu, losses, computed, width = run_trl(model, tok, batches, spec)
    else:
        seconds, cpu, losses, computed, width = run_rewardkit(model, tok, batches, spec, spec["base"] != "rewardkit-padded")
    fpt = flops_per_token(model, width / 2)
    return {"tool": spec["tool"], "size": spec["size"], "variant": spec["variant"], "seconds": seconds,
            "cpu_seconds": cpu,
            "pairs": pairs, "real_tokens": real, "computed_tokens": computed, "flops": fpt * computed,
            "losses": losses, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _optimizer(model, total: int, lr: float):
    """rewardkit's own optimizer and schedule, configured like TRL's run (fused AdamW, no decay, linear)."""
    from rewardkit.config import TrainConfig
    from rewardkit.training.optim import build_optimizer, build_scheduler

    cfg = TrainConfig(lr=lr, weight_decay=0.0, scheduler="linear", warmup_ratio=0.0)
    opt = build_optimizer(model, cfg)
    return opt, build_scheduler(opt, cfg, total)


def run_rewardkit(model, tok, batches, spec, packed: bool):
    import torch

    from rewardkit.data.collate import pair_batch
    from rewardkit.data.packing import budget_batches, packed_pair_batch
    from rewardkit.losses import bradley_terry
    from rewardkit.models import tree_attention
    from rewardkit.models.packed import pack_settings, select_attention

    rows, cost, kernel = spec["row_tokens"], None, None
    if packed:  # as the trainer: the kernel, then the row layout that suits it
        kernel = select_attention(model, "sdpa" if spec["base"] == "rewardkit-sdpa" else "auto", torch.device("cpu"))
        rows, cost = pack_settings(model, spec["row_tokens"])
    if spec["grad_ckpt"]:  # what model.gradient_checkpointing: true does (models/reward_model.py)
        model.hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt, sched = _optimizer(model, len(batches), spec["lr"])
    model.train()
    seconds, cpu, losses, computed, widths = 0.0, 0.0, [], 0, []
    for i, chunk in enumerate(batches):
        t, c0 = time.perf_counter(), time.process_time()
        # train.max_tokens_per_forward: the micro-batch as several passes, each weighted by its share of pairs
        pieces = (budget_batches(chunk, spec["forward_tokens"], packed, "decoder", cost)
                  if spec["forward_tokens"] else [list(range(len(chunk)))])
        step_loss = 0.0
        for piece in pieces:
            c, r = [chunk[j].chosen for j in piece], [chunk[j].rejected for j in piece]
            if packed:  # what the trainer does with train.packing: true
                batch = packed_pair_batch(c, r, [0.0] * len(c), "decoder", tok.pad_token_id, rows, cost)
            else:
                batch = pair_batch(c, r, [0.0] * len(c), tok.pad_token_id)
            rewards = model(batch.tokens)
            b = len(piece)
            loss = bradley_terry(rewards[:b], rewards[b:]) * (b / len(chunk))
            loss.backward()
            step_loss += loss.item()
            if i >= spec["warmup"]:
                computed += batch.tokens.input_ids.numel()
                # attention context for the FLOP estimate: the row (dense kernels), each group's span (tree)
                widths.append(batch.tokens.num_tokens / b if packed and kernel == tree_attention.NAME
                              else batch.tokens.input_ids.shape[1])
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(step_loss)
        if i >= spec["warmup"]:
            seconds += time.perf_counter() - t
            cpu += time.process_time() - c0
    return seconds, cpu, losses, computed, sum(widths) / len(widths)


def run_trl(model, tok, batches, spec):
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer

    rows = [p for b in batches for p in b]
    ds = Dataset.from_dict({"chosen_ids": [p.chosen.input_ids for p in rows],
                            "rejected_ids": [p.rejected.input_ids for p in rows]})

    class Sequential(RewardTrainer):
        def _get_train_sampler(self, *args, **kwargs):  # the same batches, in the same order, as rewardkit
            return SequentialSampler(self.train_dataset)

    class Clock(TrainerCallback):
        def __init__(self):
            self.step, self.seconds, self.cpu, self.losses = 0, 0.0, 0.0, []

        def on_step_begin(self, args, state, control, **kw):
            self.t, self.c0 = time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            if self.step >= spec["warmup"]:
                self.seconds += time.perf_counter() - self.t
                self.cpu += time.process_time() - self.c0
            self.step += 1

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.losses.append(logs["loss"])

    steps = len(batches)
    args = RewardConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=spec["batch"],
                        max_steps=steps, learning_rate=spec["lr"], weight_decay=0.0, lr_scheduler_type="linear",
                        warmup_steps=0, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
                        bf16=False, fp16=False, use_cpu=True, dataloader_num_workers=0, seed=0,
                        max_length=spec["max_length"], disable_dropout=True, remove_unused_columns=False,
                        gradient_checkpointing=spec["grad_ckpt"])  # TRL's RewardConfig default: on
    clock = Clock()
    trainer = Sequential(model=model.hf, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock])
    trainer.train()
    timed = batches[spec["warmup"]:]
    widths = [max(max(len(p.chosen.input_ids), len(p.rejected.input_ids)) for p in b) for b in timed]
    computed = sum(2 * len(b) * w for b, w in zip(timed, widths, strict=True))
    return clock.seconds, clock.cpu, clock.losses, computed, sum(widths) / len(widths)


# --------------------------------------------------------------------------------------------------------
# driver


def matmul_gflops(dtype_name: str, seconds: float = 2.0) -> tuple[float, float]:
    """(GFLOP/s wall, GFLOP per CPU-second) of a 512^3 matmul: the machine's reference rate, per CPU-second
    too because the machine is shared and wall-clock rates move with the load."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(512, 512, dtype=dtype), torch.randn(512, 512, dtype=dtype)
    a @ b
    n, t, c = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t < seconds:
        a @ b
        n += 1
    flops = 2 * 512 ** 3 * n / 1e9
    return flops / (time.perf_counter() - t), flops / max(time.process_time() - c, 1e-9)


def save_tokenizer() -> str:
    """The built-in SmolLM2 tokenizer (from its GGUF, slow to read) saved once as a plain directory."""
    from rewardkit.models.backbones import load_tokenizer, resolve_model

    d = Path(tempfile.gettempdir()) / "rewardkit-bench-smollm2-tokenizer"
    if not (d / "tokenizer.json").exists():
        path, gguf = resolve_model("smollm2-135m", None)
        load_tokenizer(path, gguf).save_pretrained(d)
    return str(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10m,135m")
    ap.add_argument("--variants", default="hh,long-prompt,long-response")
    ap.add_argument("--tools", default="trl,rewardkit,rewardkit-nockpt")
    ap.add_argument("--batch", type=int, default=8, help="pairs per step (both tools)")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 6 for 10m, 2 for 135m)")
    ap.add_argument("--rounds", type=int, default=1, help="alternations of all tools per configuration")
    ap.add_argument("--row-tokens", type=int, default=None, help="rewardkit packed row capacity (default auto)")
    ap.add_argument("--grad-ckpt", choices=("on", "off"), default="on",
                    help="gradient checkpointing for both tools (on: TRL's RewardConfig default)")
    ap.add_argument("--forward-tokens", type=int, default=1536,
                    help="rewardkit-nockpt: train.max_tokens_per_forward (activation memory per pass)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--json", default=None, help="also write every measurement here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print("RESULT " + json.dumps(worker(json.loads(a.worker))), flush=True)
        return

    import torch

    torch.set_num_threads(a.threads)
    rates = {"fp32": matmul_gflops("float32"), "bf16": matmul_gflops("bfloat16")}
    print(f"matmul 512^3, {a.threads} threads: fp32 {rates['fp32'][0]:.1f} GFLOP/s wall, {rates['fp32'][1]:.1f} per "
          f"CPU-s; bf16 {rates['bf16'][0]:.1f} GFLOP/s wall, {rates['bf16'][1]:.1f} per CPU-s "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)", flush=True)
    tok_dir = save_tokenizer()
    results = []
    for size in a.sizes.split(","):
        steps = a.steps or (6 if size == "10m" else 2)
        for variant in a.variants.split(","):
            for rnd in range(a.rounds):
                for tool in a.tools.split(","):
                    base = tool.removesuffix("-nockpt")  # "-nockpt": no checkpointing (rewardkit: in passes)
                    ckpt = a.grad_ckpt == "on" and base == tool
                    forward_tokens = a.forward_tokens if base != tool and base != "trl" else None
                    spec = {"tool": tool, "base": base, "size": size, "variant": variant, "batch": a.batch,
                            "steps": steps, "warmup": a.warmup, "max_length": a.max_length,
                            "row_tokens": a.row_tokens, "threads": a.threads, "lr": a.lr, "tok_dir": tok_dir,
                            "grad_ckpt": ckpt, "forward_tokens": forward_tokens}
                    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                          capture_output=True, text=True)
                    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                    if proc.returncode or not line:
                        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                        raise SystemExit(f"worker failed: {spec['tool']} {size} {variant}")
                    r = json.loads(line[0][7:])
                    r["round"] = rnd
                    results.append(r)
                    print(f"  {size:>5} {variant:<13} round {rnd} {tool:<16} {r['pairs'] / r['seconds']:7.2f} pairs/s  "
                          f"{r['pairs'] / r['cpu_seconds']:7.2f} pairs/CPU-s  "
                          f"rss {r['peak_rss_mb']:.0f} MB  losses {[round(x, 4) for x in r['losses']]}", flush=True)
    rates["fp32_end"] = matmul_gflops("float32")
    print(f"matmul fp32 at the end: {rates['fp32_end'][0]:.1f} GFLOP/s wall, {rates['fp32_end'][1]:.1f} per CPU-s "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(table(results, rates))
    if a.json:
        Path(a.json).write_text(json.dumps({"rates": rates, "args": vars(a), "results": results}, indent=1))


def table(results: list[dict], rates: dict) -> str:
    """Markdown table: sums over rounds per (size, variant, tool), ratios against TRL."""
    agg: dict[tuple, dict] = {}
    for r in results:
        k = (r["size"], r["variant"], r["tool"])
        s = agg.setdefault(k, {"seconds": 0.0, "cpu": 0.0, "pairs": 0, "real": 0, "computed": 0, "flops": 0.0,
                               "rss": 0.0})
        s["seconds"] += r["seconds"]
        s["cpu"] += r["cpu_seconds"]
        s["pairs"] += r["pairs"]
        s["real"] += r["real_tokens"]
        s["computed"] += r["computed_tokens"]
        s["flops"] += r["flops"]
        s["rss"] = max(s["rss"], r["peak_rss_mb"])
    machine = (rates["fp32"][1] + rates["fp32_end"][1]) / 2  # per CPU-second
    lines = ["| model | data | tool | pairs/s (wall) | pairs per CPU-s | non-pad tok/s | computed tok / non-pad "
             "| GFLOP per CPU-s (% of fp32 matmul) | peak RSS MB | vs TRL (wall) | vs TRL (CPU) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (size, variant, tool), s in agg.items():
        trl = agg.get((size, variant, "trl"))
        wall = s["pairs"] / s["seconds"]
        per_cpu = s["pairs"] / s["cpu"]
        r_wall = wall / (trl["pairs"] / trl["seconds"]) if trl else float("nan")
        r_cpu = per_cpu / (trl["pairs"] / trl["cpu"]) if trl else float("nan")
        gf = s["flops"] / s["cpu"] / 1e9
        lines.append(f"| {size} | {variant} | {tool} | {wall:.2f} | {per_cpu:.2f} | {s['real'] / s['seconds']:.0f} "
                     f"| {s['computed'] / s['real']:.2f} | {gf:.1f} ({100 * gf / machine:.0f}%) | {s['rss']:.0f} "
                     f"| {r_wall:.2f}x | {r_cpu:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
