"""LM-head judge read-outs against the scalar head on real data and real weights (SmolLM2-135M-Instruct).

    python benchmarks/judge_data_efficiency.py zero-shot [--data hh] [--eval-n 400] [--max-length 320]
    python benchmarks/judge_data_efficiency.py curve --sizes 64 256 1024 [--readouts pointwise scalar] [--data hh]
    python benchmarks/judge_data_efficiency.py probe-curve --readouts pointwise scalar --eval-n 100 --sizes 64 256
    python benchmarks/judge_data_efficiency.py zero-shot-from-cache --readouts pointwise pairwise

``zero-shot``: accuracy on held-out pairs of the pointwise judge (``logit(Yes) - logit(No)`` after a judge
question) and the pairwise judge (both replies in one context, ``logit(A) - logit(B)`` averaged over both orders),
with 95% bootstrap intervals, the pairwise position bias and the accuracy of each single order.

``curve``: for each training-set size, LoRA (r 16, q/v projections) on the first N pairs with Bradley-Terry, the
same optimiser, learning rate, batch size and number of steps for every read-out; then held-out accuracy with
95% bootstrap intervals. ``scalar`` is rewardkit's decoder scalar head (a fresh linear layer on the appended
end token, rendered and tokenized by rewardkit), ``pointwise`` / ``pairwise`` the judges (no new parameters).

``probe-curve`` (what a shared 2-core CPU affords): the backbone frozen, its final hidden states at the read
position cached on disk (resumable: ``--cache``; each pair's shared conversation prefix is computed once on a
key/value cache), then only the head vector trained by Bradley-Terry: for the judge the LM head's
``W[yes] - W[no]`` (it starts at the zero-shot judge), for the scalar head a fresh vector initialised as
transformers initialises a classification head. ``@0`` rows are the untrained read-outs (the judge's equals the
``zero-shot`` figure exactly). ``zero-shot-from-cache`` reports the cached eval features so far.

Data: ``hh`` = the bundled hh-rlhf harmless-base sample, training from record 0, held out from record 1912 (the
quickstart split); ``ultrafeedback`` = ../shared/data/ultrafeedback/train_clean.jsonl, held out: the last 400
records, training from record 0 (so at most 600 pairs). Results are printed and written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from rewardkit.data.judge_template import (  # noqa: E402
    JudgeTemplateConfig,
    answer_token_ids,
    pairwise_pieces,
    pointwise_pieces,
    tokenize_pieces,
)
from rewardkit.eval.metrics import bootstrap_ci  # noqa: E402
from rewardkit.losses import bradley_terry  # noqa: E402
from rewardkit.models.judge_readout import order_averaged, position_consistency, token_margin  # noqa: E402

DATA = {
    "hh": {"path": "builtin:hh-rlhf-harmless", "eval_start": 1912, "eval_stop": None},
    "ultrafeedback": {"path": str(REPO.parent.parent / "shared/data/ultrafeedback/train_clean.jsonl"),
                      "eval_start": 600, "eval_stop": None},
}


def load_pairs(name: str, start: int, stop: int | None) -> list:
    from rewardkit.config import DataConfig, SplitConfig
    from rewardkit.data.examples import load_examples

    spec = DATA[name]
    path = spec["path"]
    if name == "ultrafeedback" and not Path(path).exists():
        path = "/work/shared/data/ultrafeedback/train_clean.jsonl"
    return load_examples(SplitConfig(path=path, start=start, stop=stop), DataConfig(on_invalid="skip"))


def load_causal_lm(lora: bool):
    from transformers import AutoModelForCausalLM

    from rewardkit.models.backbones import detach_gguf_quantizer, load_tokenizer, resolve_model

    path, gguf = resolve_model("smollm2-135m")
    tok = load_tokenizer(path, gguf)
    hf = AutoModelForCausalLM.from_pretrained(path, gguf_file=gguf, dtype=torch.float32)
    detach_gguf_quantizer(hf)
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        hf = get_peft_model(hf, LoraConfig(task_type=TaskType.CAUSAL_LM, r=16, lora_alpha=32, lora_dropout=0.0,
                                           target_modules=["q_proj", "v_proj"]))
    return hf, tok


def judge_margins(hf, ids: list[list[int]], pos_id: int, neg_id: int, pad_id: int) -> torch.Tensor:
    """``logit(pos) - logit(neg)`` at the last token of each right-padded row, ``[N]`` fp32."""
    width = max(map(len, ids))
    x = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(x)
    for i, row in enumerate(ids):
        x[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    base = hf.get_base_model() if hasattr(hf, "get_base_model") else hf
    hidden = base.model(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state
    last = hidden[torch.arange(len(ids)), torch.tensor([len(r) - 1 for r in ids])]
    return token_margin(last, base.get_output_embeddings(), pos_id, neg_id)


class Judge:
    """The judge inputs of a list of pairs and how to score them (pointwise or order-averaged pairwise)."""

    def __init__(self, mode: str, tok, pairs: list, max_length: int, cfg: JudgeTemplateConfig):
        self.mode, self.tok = mode, tok
        self.pos, self.neg = answer_token_ids(cfg, tok, "pointwise" if mode == "pointwise" else "pairwise")
        self.truncated = 0
        if mode == "pointwise":
            self.inputs = [(self._ids(pointwise_pieces(cfg, tok, p.prompt, p.chosen), max_length),
                            self._ids(pointwise_pieces(cfg, tok, p.prompt, p.rejected), max_length)) for p in pairs]
        else:
            self.inputs = [(self._ids(pairwise_pieces(cfg, tok, p.prompt, p.chosen, p.rejected), max_length),
                            self._ids(pairwise_pieces(cfg, tok, p.prompt, p.rejected, p.chosen), max_length))
                           for p in pairs]

    def _ids(self, pieces, max_length: int) -> list[int]:
        out = tokenize_pieces(self.tok, pieces, max_length)
        self.truncated += out.truncated > 0
        return out.input_ids

    def forward(self, hf, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(first, second) margins of the pairs ``idx``: rewards of chosen / rejected (pointwise), or
        m(chosen as A) / m(rejected as A) (pairwise)."""
        rows = [self.inputs[i][0] for i in idx] + [self.inputs[i][1] for i in idx]
        m = judge_margins(hf, rows, self.pos, self.neg, self.tok.pad_token_id or 0)
        return m[:len(idx)], m[len(idx):]

    def loss(self, hf, idx: list[int]) -> torch.Tensor:
        a, b = self.forward(hf, idx)
        if self.mode == "pointwise":
            return bradley_terry(a, b)
        return bradley_terry(order_averaged(a, b).margin, torch.zeros_like(a))


class Scalar:
    """rewardkit's decoder scalar head: render, tokenize (end token appended) and a fresh linear head."""

    def __init__(self, tok, pairs: list, max_length: int):
        from rewardkit.data.render import Renderer
        from rewardkit.data.tokenize import SequenceEncoder

        self.tok = tok
        renderer, encoder = Renderer(tok, "decoder"), SequenceEncoder(tok, "decoder", max_length)
        self.inputs = [tuple(encoder.encode_group([renderer.render(p.prompt, p.chosen),
                                                   renderer.render(p.prompt, p.rejected)])) for p in pairs]
        self.truncated = encoder.stats.summary()["prompt_truncated"]

    def forward(self, model, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        from rewardkit.data.collate import pad_batch

        batch = pad_batch([self.inputs[i][0] for i in idx] + [self.inputs[i][1] for i in idx], self.tok.pad_token_id)
        r = model(batch)
        return r[:len(idx)], r[len(idx):]

    def loss(self, model, idx: list[int]) -> torch.Tensor:
        return bradley_terry(*self.forward(model, idx))


def build_scalar(lora: bool):
    from rewardkit.config import LoraConfig, ModelConfig
    from rewardkit.models.reward_model import build_model

    cfg = ModelConfig(name="smollm2-135m", lora=LoraConfig(r=16, alpha=32, target_modules=["q_proj", "v_proj"])
                      if lora else None)
    model, tok, _ = build_model(cfg, seed=0)
    return model, tok


@torch.no_grad()
def evaluate(reader, model, batch_size: int) -> dict:
    model.eval()
    order = sorted(range(len(reader.inputs)), key=lambda i: len(reader.inputs[i][0]) + len(reader.inputs[i][1]))
    first, second = torch.empty(len(order)), torch.empty(len(order))
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        a, b = reader.forward(model, idx)
        first[idx], second[idx] = a, b
    if getattr(reader, "mode", "") == "pairwise":
        ro = order_averaged(first, second)
        correct = (ro.margin > 0).numpy()
        extra = {"position_bias_mean": float(ro.position_bias.mean()),
                 "position_consistency": position_consistency(first, second),
                 "accuracy_chosen_as_A": float((first > 0).float().mean()),
                 "accuracy_chosen_as_B": float((second < 0).float().mean()),
                 "ties": int((ro.margin == 0).sum())}
    else:
        correct = (first > second).numpy()
        extra = {"ties": int((first == second).sum())}
    ci = bootstrap_ci(lambda idx: float(correct[idx].mean()), len(correct), n_boot=2000)
    return {"pairs": len(correct), "accuracy": float(correct.mean()), "ci95": ci, **extra}


def zero_shot(args) -> dict:
    pairs = load_pairs(args.data, DATA[args.data]["eval_start"], DATA[args.data]["eval_stop"])[:args.eval_n]
    hf, tok = load_causal_lm(lora=False)
    out = {}
    for mode in args.readouts:
        t0 = time.perf_counter()
        judge = Judge(mode, tok, pairs, args.max_length, JudgeTemplateConfig())
        res = evaluate(judge, hf, args.batch_size)
        res.update(seconds=round(time.perf_counter() - t0, 1), truncated_inputs=judge.truncated)
        out[mode] = res
        print(mode, json.dumps(res), flush=True)
    return out


def train_one(readout: str, train_pairs: list, eval_pairs: list, args) -> dict:
    torch.manual_seed(args.seed)
    if readout == "scalar":
        model, tok = build_scalar(lora=True)
        reader_train, reader_eval = Scalar(tok, train_pairs, args.max_length), Scalar(tok, eval_pairs, args.max_length)
    else:
        model, tok = load_causal_lm(lora=True)
        cfg = JudgeTemplateConfig()
        reader_train = Judge(readout, tok, train_pairs, args.max_length, cfg)
        reader_eval = Judge(readout, tok, eval_pairs, args.max_length, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    rng = random.Random(args.seed)
    order: list[int] = []
    t0 = time.perf_counter()
    losses = []
    for step in range(args.steps):
        if len(order) < args.batch_size:
            fresh = list(range(len(train_pairs)))
            rng.shuffle(fresh)
            order += fresh
        idx, order = order[:args.batch_size], order[args.batch_size:]
        model.train()
        lr_scale = min(1.0, (step + 1) / max(1, args.steps // 10))  # 10% linear warm-up, then constant
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        loss = reader_train.loss(model, idx)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss))
    train_s = time.perf_counter() - t0
    res = evaluate(reader_eval, model, args.batch_size * 2)
    res.update(train_pairs=len(train_pairs), steps=args.steps, train_seconds=round(train_s, 1),
               first_loss=round(float(np.mean(losses[:5])), 4), last_loss=round(float(np.mean(losses[-5:])), 4))
    return res


def curve(args) -> dict:
    eval_pairs = load_pairs(args.data, DATA[args.data]["eval_start"], DATA[args.data]["eval_stop"])[:args.eval_n]
    out: dict = {}
    for n in args.sizes:
        train_pairs = load_pairs(args.data, 0, DATA[args.data]["eval_start"])[:n]
        for readout in args.readouts:
            res = train_one(readout, train_pairs, eval_pairs, args)
            out[f"{readout}@{n}"] = res
            print(readout, n, json.dumps(res), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"args": vars(args), "results": out}, indent=1))
    return out


# --- frozen-backbone features and head-only training (what a shared 2-core CPU can afford) -----------------

@torch.no_grad()
def last_hidden(hf, ids: list[list[int]], index: list[int], pad_id: int) -> torch.Tensor:
    """Final hidden state (after the last norm, what the LM head reads) at ``index`` of each row, ``[N, H]``."""
    width = max(map(len, ids))
    x = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(x)
    for i, row in enumerate(ids):
        x[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    hidden = hf.model(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state
    return hidden[torch.arange(len(ids)), torch.tensor(index)].float()


@torch.no_grad()
def pair_hidden(hf, a: tuple[list[int], int], b: tuple[list[int], int]) -> torch.Tensor:
    """:func:`last_hidden` of a pair's two rows, computing their common token prefix (the conversation) once and
    running both continuations on its key/value cache: the same hidden states, a fraction of the work."""
    (ia, ka), (ib, kb) = a, b
    p = 0
    while p < min(len(ia), len(ib), ka, kb) and ia[p] == ib[p]:
        p += 1
    if p < 16:  # little to share
        return last_hidden(hf, [ia, ib], [ka, kb], 0)
    pre = hf.model(input_ids=torch.tensor([ia[:p]]), use_cache=True)
    cache = pre.past_key_values
    cache.batch_repeat_interleave(2)
    sa, sb = ia[p:], ib[p:]
    width = max(len(sa), len(sb))
    x = torch.zeros((2, width), dtype=torch.long)
    mask = torch.zeros((2, p + width), dtype=torch.long)
    mask[:, :p] = 1
    for i, row in enumerate((sa, sb)):
        x[i, :len(row)] = torch.tensor(row)
        mask[i, p:p + len(row)] = 1
    pos = torch.arange(p, p + width).expand(2, -1)
    hidden = hf.model(input_ids=x, attention_mask=mask, position_ids=pos, past_key_values=cache,
                      use_cache=True).last_hidden_state
    return hidden[torch.arange(2), torch.tensor([ka - p, kb - p])].float()


def reader_rows(readout: str, tok, pairs: list, max_length: int) -> tuple[list[tuple], int]:
    """Per pair the two token rows and the index read in each: judge contexts (last token) or rewardkit's scalar
    encoding (the appended end token); and how many rows were truncated."""
    if readout == "scalar":
        sc = Scalar(tok, pairs, max_length)
        return [((c.input_ids, c.score_index), (r.input_ids, r.score_index)) for c, r in sc.inputs], sc.truncated
    judge = Judge(readout, tok, pairs, max_length, JudgeTemplateConfig())
    return [((a, len(a) - 1), (b, len(b) - 1)) for a, b in judge.inputs], judge.truncated


def features(hf, tok, readout: str, pairs: list, args, cache: Path) -> torch.Tensor:
    """``[N, 2, H]`` hidden states read by ``readout`` for each pair (cached on disk, resumable)."""
    rows, truncated = reader_rows(readout, tok, pairs, args.max_length)
    done = torch.load(cache) if cache.exists() else {"h": torch.empty(0, 2, hf.config.hidden_size), "truncated": 0}
    h = done["h"]
    t0 = time.perf_counter()
    for k in range(len(h), len(rows), args.batch_size):
        chunk = rows[k:k + args.batch_size]
        out = torch.stack([pair_hidden(hf, *pair) for pair in chunk])
        h = torch.cat([h, out])
        torch.save({"h": h, "truncated": truncated}, cache)
        print(f"  {cache.name}: {len(h)}/{len(rows)} pairs, {time.perf_counter() - t0:.0f} s", flush=True)
    return h[:len(pairs)]


def probe_accuracy(margin: torch.Tensor) -> dict:
    correct = (margin > 0).numpy()
    ci = bootstrap_ci(lambda idx: float(correct[idx].mean()), len(correct), n_boot=2000)
    return {"pairs": len(correct), "accuracy": float(correct.mean()), "ci95": ci}


def probe_margin(readout: str, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    a, b = h[:, 0] @ v, h[:, 1] @ v
    return order_averaged(a, b).margin if readout == "pairwise" else a - b


def train_probe(readout: str, v0: torch.Tensor, h: torch.Tensor, args) -> tuple[torch.Tensor, list[float]]:
    """Bradley-Terry on the read-out's margin, only the head vector trained (the same steps for every read-out)."""
    v = v0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([v], lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    losses = []
    for _ in range(args.steps):
        idx = torch.randint(0, len(h), (args.batch_size,), generator=gen)
        loss = bradley_terry(probe_margin(readout, v, h[idx]), torch.zeros(len(idx)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return v.detach(), losses


def head_init(hf, tok, readout: str, seed: int) -> torch.Tensor:
    """The judge's head is the LM head: ``w(pos) - w(neg)``; the scalar head a fresh layer initialised as
    transformers initialises a sequence-classification head (normal, std ``initializer_range``)."""
    if readout == "scalar":
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(hf.config.hidden_size, generator=gen) * hf.config.initializer_range
    pos, neg = answer_token_ids(JudgeTemplateConfig(), tok, readout)
    w = hf.get_output_embeddings().weight.detach().float()
    return w[pos] - w[neg]


def zero_shot_from_cache(args) -> dict:
    """Zero-shot accuracies from the cached eval features (also part-filled ones, when a run was stopped):
    each read-out on the pairs it finished, and all of them on the pairs every one finished."""
    hf, tok = load_causal_lm(lora=False)
    feats = {}
    for readout in args.readouts:
        path = Path(args.cache) / f"{args.data}-{readout}-L{args.max_length}-eval.pt"
        if path.exists():
            feats[readout] = torch.load(path)
    common = min(len(f["h"]) for f in feats.values())
    out: dict = {"common_pairs": common}
    for readout, f in feats.items():
        h, v = f["h"], head_init(hf, tok, readout, args.seed)
        for tag, hh in (("all", h), ("common", h[:common])):
            res = probe_accuracy(probe_margin(readout, v, hh))
            if readout == "pairwise":
                a, b = hh[:, 0] @ v, hh[:, 1] @ v
                res.update(position_bias_mean=float(order_averaged(a, b).position_bias.mean()),
                           position_consistency=position_consistency(a, b),
                           accuracy_chosen_as_A=float((a > 0).float().mean()),
                           accuracy_chosen_as_B=float((b < 0).float().mean()))
            out[f"{readout}/{tag}"] = res
            print(readout, tag, json.dumps(res), flush=True)
    return out


def probe_curve(args) -> dict:
    hf, tok = load_causal_lm(lora=False)
    hf.eval()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    spec = DATA[args.data]
    eval_pairs = load_pairs(args.data, spec["eval_start"], spec["eval_stop"])[:args.eval_n]
    train_pairs = load_pairs(args.data, 0, spec["eval_start"])[:max(args.sizes)] if args.sizes else []
    out: dict = {}
    for readout in args.readouts:
        tag = f"{args.data}-{readout}-L{args.max_length}"
        h_eval = features(hf, tok, readout, eval_pairs, args, cache / f"{tag}-eval.pt")
        v0 = head_init(hf, tok, readout, args.seed)
        out[f"{readout}@0"] = probe_accuracy(probe_margin(readout, v0, h_eval))
        print(readout, 0, json.dumps(out[f"{readout}@0"]), flush=True)
        if not train_pairs:
            continue
        h_train = features(hf, tok, readout, train_pairs, args, cache / f"{tag}-train.pt")
        for n in args.sizes:
            v, losses = train_probe(readout, v0, h_train[:n], args)
            res = probe_accuracy(probe_margin(readout, v, h_eval))
            res.update(train_pairs=min(n, len(h_train)), steps=args.steps,
                       first_loss=round(float(np.mean(losses[:10])), 4), last_loss=round(float(np.mean(losses[-10:])), 4))
            out[f"{readout}@{n}"] = res
            print(readout, n, json.dumps(res), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"args": vars(args), "results": out}, indent=1))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["zero-shot", "curve", "probe-curve", "zero-shot-from-cache"])
    p.add_argument("--data", choices=sorted(DATA), default="hh")
    p.add_argument("--readouts", nargs="+", choices=["pointwise", "pairwise", "scalar"], default=None)
    p.add_argument("--sizes", type=int, nargs="*", default=[64, 256, 1024])
    p.add_argument("--eval-n", type=int, default=400)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=64, help="optimiser steps per run, the same for every read-out")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache", default="runs/judge-features", help="probe-curve: where hidden states are cached")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.readouts is None:
        args.readouts = ["pointwise", "pairwise"] if args.what.startswith("zero-shot") else ["pointwise", "scalar"]
    if args.what.startswith("zero-shot") and "scalar" in args.readouts:
        p.error("zero-shot compares the judge read-outs (a scalar head starts at chance)")
    t0 = time.perf_counter()
    res = {"zero-shot": zero_shot, "curve": curve, "probe-curve": probe_curve,
           "zero-shot-from-cache": zero_shot_from_cache}[args.what](args)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "results": res,
                                              "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    print(f"done in {time.perf_counter() - t0:.0f} s; torch threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
