"""Step-time cost of an ensemble: one training step (forward, loss, backward, AdamW, fp32) on the same 8 real
hh-rlhf harmless pairs (max_length 128). MiniLM (built-in minilm-l6): plain scalar head vs K = 5 heads vs K = 5
heads on a frozen backbone vs one LoRA adapter (scalar head) vs K = 5 LoRA adapters (``ensemble_members:
lora``). SmolLM2-135M (``--model smollm2-135m``, every variant with LoRA r=8): one adapter + scalar head vs one
adapter + K = 5 heads vs K = 5 adapters. The variants alternate step after step in one process, so all see the
same machine load (the shared development CPU is loaded by other jobs: compare the medians, not the absolute
seconds).

    python benchmarks/ensemble_step_time.py [--model minilm-l6|smollm2-135m] [--reps 6] [--pairs 8] [--max-length 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

LORA = {"r": 8, "alpha": 16}
K5 = {"head": "ensemble", "ensemble_size": 5}
VARIANTS = {
    "minilm-l6": {"scalar": {"head": "scalar"}, "ensemble K=5": K5,
                  "ensemble K=5 frozen": {**K5, "ensemble_freeze_backbone": True},
                  "scalar, LoRA": {"head": "scalar", "lora": LORA},
                  "ensemble K=5 LoRA members": {**K5, "ensemble_members": "lora", "lora": LORA}},
    "smollm2-135m": {"scalar, LoRA": {"head": "scalar", "lora": LORA},
                     "ensemble K=5 heads, one LoRA": {**K5, "lora": LORA},
                     "ensemble K=5 LoRA members": {**K5, "ensemble_members": "lora", "lora": LORA}},
}


def main() -> None:
    from rewardkit.config import DataConfig, ModelConfig, RunConfig, SplitConfig, from_dict
    from rewardkit.data.collate import pair_batch
    from rewardkit.data.dataset import encode_pairs, load_pairs
    from rewardkit.data.render import Renderer
    from rewardkit.data.tokenize import SequenceEncoder
    from rewardkit.losses import bradley_terry
    from rewardkit.models.reward_model import build_model
    from rewardkit.training.ensemble_step import ensemble_pair_loss

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--model", default="minilm-l6", choices=["minilm-l6", "smollm2-135m"])
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    variants = VARIANTS[args.model]
    runs = {}
    for name, extra in variants.items():
        mcfg = from_dict(ModelConfig, {"name": args.model, **extra})
        model, tok, kind = build_model(mcfg, seed=0)
        cfg = from_dict(RunConfig, {"model": {"name": args.model, **extra}, "data": {"train": "x"}})
        data = DataConfig(max_length=args.max_length, truncation="truncate_prompt_left", on_invalid="skip")
        pairs = load_pairs(SplitConfig(path="builtin:hh-rlhf-harmless", start=0, stop=args.pairs + 4), data)
        enc = encode_pairs(pairs, Renderer(tok, kind, data.template, data.separator),
                           SequenceEncoder(tok, kind, data.max_length, data.truncation))[:args.pairs]
        batch = pair_batch([p.chosen for p in enc], [p.rejected for p in enc], [0.0] * len(enc), tok.pad_token_id,
                           "right")
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        runs[name] = (model, batch, opt, cfg, [p.where for p in enc])
    times = {name: [] for name in variants}

    def step(name: str) -> float:
        model, batch, opt, cfg, keys = runs[name]
        t0 = time.perf_counter()
        out = model(batch.tokens, full=True)
        b = batch.num_pairs
        if model.spec.head == "ensemble":
            loss = ensemble_pair_loss(out, keys, b, None, cfg)[1]
        else:
            loss = bradley_terry(out.rewards[:b], out.rewards[b:])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for name in variants:  # warm-up
        step(name)
    for _ in range(args.reps):
        for name in variants:
            times[name].append(step(name))
    first = next(iter(variants))
    base = statistics.median(times[first])
    print(f"{args.model}, {args.pairs} pairs, max_length {args.max_length}, {args.reps} interleaved reps")
    print(f"{'variant':30s} {'median s/step':>14s} {'vs ' + first:>20s}  all")
    for name, t in times.items():
        med = statistics.median(t)
        print(f"{name:30s} {med:14.2f} {med / base:19.2f}x  {' '.join(f'{x:.2f}' for x in t)}")


if __name__ == "__main__":
    main()
