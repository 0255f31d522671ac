"""LM-head judge read-outs against the scalar head on real data and real weights (SmolLM2-135M-Instruct).

    python benchmarks/judge_data_efficiency.py zero-shot [--data hh] [--eval-n 400] [--max-length 320]
    python benchmarks/judge_data_efficiency.py curve --sizes 64 256 1024 [--readouts pointwise scalar] [--data hh]
    python benchmarks/judge_data_efficiency.py probe-curve --readouts pointwise scalar-chat --sizes 64 256 1024 \
        --subsamples 5 --max-length 128 --steps 200 --lr 1e-3
    python benchmarks/judge_data_efficiency.py zero-shot-from-cache --readouts pointwise pairwise

``zero-shot``: accuracy on held-out pairs of the pointwise judge (``logit(Yes) - logit(No)`` after a judge
question) and the pairwise judge (both replies in one context, ``logit(A) - logit(B)`` averaged over both orders),
with 95% bootstrap intervals, the pairwise position bias and the accuracy of each single order.

``curve``: for each training-set size, LoRA (r 16, q/v projections) on the first N pairs with Bradley-Terry, the
same optimiser, learning rate, batch size and number of steps for every read-out; then held-out accuracy with
95% bootstrap intervals. ``scalar`` is rewardkit's decoder scalar head (a fresh linear layer on the appended
end token, rendered and tokenized by rewardkit), ``pointwise`` / ``pairwise`` the judges (no new parameters).

``probe-curve`` (what a shared 2-core CPU affords): the backbone frozen, its final hidden states at the read
positions cached on disk (resumable and extendable: ``--cache``; each pair's shared conversation prefix is computed
once on a key/value cache), then only the head vector trained by Bradley-Terry: for the judge the LM head's
``W[yes] - W[no]`` (it starts at the zero-shot judge), for a scalar head a fresh vector initialised as
transformers initialises a classification head. Two scalar heads: ``scalar`` on rewardkit's default decoder
encoding (hh-rlhf as plain text, end token appended) and ``scalar-chat`` on the pointwise judge's own rows at the
end-of-turn token closing the reply (the same chat-rendered conversation, minus the question: features for free).
Per size, ``--subsamples`` fits, each on its own random subsample of the first ``--pool`` training pairs (the same
subsamples for every read-out); the interval resamples both subsamples and held-out pairs, and ``diff`` rows give
the paired judge - scalar difference. Pairs whose judge template cannot fit ``--max-length`` (long multi-turn
conversations: the role headers are never cut) are left out of every read-out and counted. ``@0`` rows are the
untrained read-outs (the judge's equals the ``zero-shot`` figure). ``zero-shot-from-cache`` reports the cached eval
features so far.

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
    """The judge inputs of a list of pairs and how to score them (pointwise or order-averaged pairwise).

    Encoded by the library's own :class:`JudgeRenderer` / :class:`JudgeEncoder` (what training and scoring use):
    the two rows of a pair are one group, so when cut they lose the same conversation tokens and keep one context.
    """

    def __init__(self, mode: str, tok, pairs: list, max_length: int, cfg: JudgeTemplateConfig):
        from dataclasses import replace

        from rewardkit.data.judge_encode import JudgeEncoder, JudgeRenderer

        self.mode, self.tok = mode, tok
        self.pos, self.neg = answer_token_ids(cfg, tok, "pointwise" if mode == "pointwise" else "pairwise")
        renderer = JudgeRenderer(tok, replace(cfg, mode="pairwise" if mode == "pairwise" else "pointwise"))
        encoder = JudgeEncoder(tok, max_length)
        self.encoded = [encoder.encode_group(renderer.render_orders(p.prompt, p.chosen, p.rejected)
                                             if mode == "pairwise" else
                                             [renderer.render(p.prompt, p.chosen), renderer.render(p.prompt, p.rejected)])
                        for p in pairs]
        self.inputs = [(a.input_ids, b.input_ids) for a, b in self.encoded]
        counts = encoder.stats.counts
        self.truncated = counts["prompt_truncated"] + counts["response_truncated"]

    def reply_end(self, k: int, row: int) -> int:
        """Index of the end-of-turn token closing the judged reply (pointwise rows): where a scalar head on the
        same chat-rendered conversation reads."""
        enc, special = self.encoded[k][row], set(self.tok.all_special_ids)
        return next(i for i in range(enc.response_start, len(enc.input_ids)) if enc.input_ids[i] in special)

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
    hf, tok = load_causal_lm(lora=False)
    pairs, left = fitting(tok, load_pairs(args.data, DATA[args.data]["eval_start"], DATA[args.data]["eval_stop"]),
                          args.max_length)
    pairs = pairs[:args.eval_n]
    print(json.dumps({"left_out_too_long": left}), flush=True)
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
    from rewardkit.models.backbones import load_tokenizer, resolve_model

    tok = load_tokenizer(*resolve_model("smollm2-135m"))
    spec = DATA[args.data]
    eval_pairs = fitting(tok, load_pairs(args.data, spec["eval_start"], spec["eval_stop"]), args.max_length)[0]
    eval_pairs = eval_pairs[:args.eval_n]
    pool = fitting(tok, load_pairs(args.data, 0, spec["eval_start"]), args.max_length)[0]
    out: dict = {}
    for n in args.sizes:
        train_pairs = pool[:n]
        for readout in args.readouts:
            res = train_one(readout, train_pairs, eval_pairs, args)
            out[f"{readout}@{n}"] = res
            print(readout, n, json.dumps(res), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({"args": vars(args), "results": out}, indent=1))
    return out


# --- frozen-backbone features and head-only training (what a shared 2-core CPU can afford) -----------------

# read-out -> (feature source, slot). ``scalar-chat`` reads the pointwise judge's own rows at the end-of-turn
# token that closes the judged reply: a scalar head on exactly the chat-rendered conversation the judge sees,
# minus the question, so the two differ only in the question and the head's start (and one forward serves both).
# ``scalar`` is rewardkit's default decoder encoding of hh-rlhf text (plain Human:/Assistant:, end token appended).
SOURCES = {"pointwise": ("pointwise", 0), "scalar-chat": ("pointwise", 1), "pairwise": ("pairwise", 0),
           "scalar": ("scalar", 0)}
JUDGES = ("pointwise", "pairwise")


def _pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, ids))
    x = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(x)
    for i, row in enumerate(ids):
        x[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return x, mask


@torch.no_grad()
def last_hidden(hf, ids: list[list[int]], index: list[list[int]], pad_id: int) -> torch.Tensor:
    """Final hidden states (after the last norm, what the LM head reads) at ``index[i]`` of each row, ``[N, R, H]``."""
    x, mask = _pad(ids, pad_id)
    hidden = hf.model(input_ids=x, attention_mask=mask, use_cache=False).last_hidden_state
    return hidden[torch.arange(len(ids))[:, None], torch.tensor(index)].float()


@torch.no_grad()
def pair_hidden(hf, a: tuple[list[int], list[int]], b: tuple[list[int], list[int]]) -> torch.Tensor:
    """:func:`last_hidden` of a pair's two rows, ``[2, R, H]``, computing their common token prefix (the
    conversation) once and running both continuations on its key/value cache: the same hidden states, a fraction
    of the work. Every read index lies at or after the shared prefix."""
    (ia, ka), (ib, kb) = a, b
    p = 0
    while p < min(len(ia), len(ib), *ka, *kb) and ia[p] == ib[p]:
        p += 1
    if p < 16:  # little to share
        return last_hidden(hf, [ia, ib], [ka, kb], 0)
    pre = hf.model(input_ids=torch.tensor([ia[:p]]), use_cache=True)
    cache = pre.past_key_values
    cache.batch_repeat_interleave(2)
    x, sub = _pad([ia[p:], ib[p:]], 0)
    mask = torch.cat([torch.ones((2, p), dtype=torch.long), sub], dim=1)
    pos = torch.arange(p, p + x.shape[1]).expand(2, -1)
    hidden = hf.model(input_ids=x, attention_mask=mask, position_ids=pos, past_key_values=cache,
                      use_cache=True).last_hidden_state
    return hidden[torch.arange(2)[:, None], torch.tensor([[k - p for k in ka], [k - p for k in kb]])].float()


def reader_rows(source: str, tok, pairs: list, max_length: int) -> tuple[list[tuple], int]:
    """Per pair the two token rows and the indices read in each: judge contexts (last token; pointwise rows also
    the reply's end-of-turn token) or rewardkit's scalar encoding (the appended end token); and how many rows
    were truncated."""
    if source == "scalar":
        sc = Scalar(tok, pairs, max_length)
        return [((c.input_ids, [c.score_index]), (r.input_ids, [r.score_index])) for c, r in sc.inputs], sc.truncated
    judge = Judge(source, tok, pairs, max_length, JudgeTemplateConfig())
    if source == "pairwise":
        return [((x, [len(x) - 1]), (y, [len(y) - 1])) for x, y in judge.inputs], judge.truncated
    return [((x, [len(x) - 1, judge.reply_end(k, 0)]), (y, [len(y) - 1, judge.reply_end(k, 1)]))
            for k, (x, y) in enumerate(judge.inputs)], judge.truncated


def features(hf, tok, source: str, pairs: list, args, cache: Path) -> torch.Tensor:
    """``[N, 2, R, H]`` hidden states read from ``source``'s rows of each pair (cached on disk, resumable and
    extendable: the rows of the first pairs do not depend on the later ones)."""
    rows, truncated = reader_rows(source, tok, pairs, args.max_length)
    done = torch.load(cache) if cache.exists() else None
    h = done["h"] if done else torch.empty(0, 2, len(rows[0][0][1]), hf.config.hidden_size)
    t0 = time.perf_counter()
    for k in range(len(h), len(rows), args.batch_size):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.feature_precision == "bf16"):
            out = torch.stack([pair_hidden(hf, *pair) for pair in rows[k:k + args.batch_size]]).float()
        h = torch.cat([h, out])
        torch.save({"h": h, "truncated": truncated}, cache)
        print(f"  {cache.name}: {len(h)}/{len(rows)} pairs, {time.perf_counter() - t0:.0f} s", flush=True)
    return h[:len(pairs)]


def fitting(tok, pairs: list, max_length: int) -> tuple[list, int]:
    """The pairs whose pointwise judge text fits ``max_length`` once its contents are cut, and how many do not: a
    long multi-turn conversation's role headers are fixed text that the encoder never cuts (it raises instead), so
    such pairs are left out of every read-out alike (the same held-out and training pairs for all)."""
    from rewardkit.data.errors import DataError
    from rewardkit.data.judge_encode import JudgeEncoder, JudgeRenderer

    renderer, encoder = JudgeRenderer(tok, JudgeTemplateConfig()), JudgeEncoder(tok, max_length)
    kept = []
    for p in pairs:
        try:
            encoder.encode_group([renderer.render(p.prompt, p.chosen), renderer.render(p.prompt, p.rejected)])
            kept.append(p)
        except DataError:
            pass
    return kept, len(pairs) - len(kept)


def feature_path(args, source: str, split: str) -> Path:
    return Path(args.cache) / f"{args.data}-{source}-L{args.max_length}-{args.feature_precision}-{split}.pt"


def probe_accuracy(margin: torch.Tensor) -> dict:
    correct = (margin > 0).numpy()
    ci = bootstrap_ci(lambda idx: float(correct[idx].mean()), len(correct), n_boot=2000)
    return {"pairs": len(correct), "accuracy": float(correct.mean()), "ci95": ci}


def probe_margin(readout: str, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    a, b = h[:, 0] @ v, h[:, 1] @ v
    return order_averaged(a, b).margin if readout == "pairwise" else a - b


def train_probe(readout: str, v0: torch.Tensor, h: torch.Tensor, args, seed: int) -> tuple[torch.Tensor, list[float]]:
    """Bradley-Terry on the read-out's margin, only the head vector trained (the same steps for every read-out)."""
    v = v0.clone().requires_grad_(True)
    opt = torch.optim.AdamW([v], lr=args.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
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
    """The judge's head is the LM head: ``w(pos) - w(neg)``; a scalar head a fresh layer initialised as
    transformers initialises a sequence-classification head (normal, std ``initializer_range``)."""
    if readout not in JUDGES:
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(hf.config.hidden_size, generator=gen) * hf.config.initializer_range
    pos, neg = answer_token_ids(JudgeTemplateConfig(), tok, readout)
    w = hf.get_output_embeddings().weight.detach().float()
    return w[pos] - w[neg]


def two_stage_ci(correct: np.ndarray, other: np.ndarray | None = None, n_boot: int = 2000,
                 seed: int = 0) -> list[float]:
    """95% percentile interval of the mean accuracy over training subsamples (``correct``: ``[S, E]`` booleans,
    subsample x held-out pair), resampling both the subsamples and the held-out pairs; with ``other`` (the same
    subsamples and pairs, another read-out) the interval of the paired difference."""
    rng = np.random.default_rng(seed)
    s, e = correct.shape
    values = np.empty(n_boot)
    for i in range(n_boot):
        si, ei = rng.integers(0, s, s), rng.integers(0, e, e)
        values[i] = correct[si][:, ei].mean() - (0.0 if other is None else other[si][:, ei].mean())
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def subsample(pool: int, n: int, k: int, seed: int) -> np.ndarray:
    """The ``k``-th training subsample of ``n`` pairs from a pool (the same for every read-out: paired runs)."""
    return np.sort(np.random.default_rng([seed, n, k]).choice(pool, size=min(n, pool), replace=False))


def zero_shot_from_cache(args) -> dict:
    """Zero-shot accuracies from the cached eval features (also part-filled ones, when a run was stopped):
    each read-out on the pairs it finished, and all of them on the pairs every one finished."""
    hf, tok = load_causal_lm(lora=False)
    feats = {}
    for readout in args.readouts:
        path = feature_path(args, SOURCES[readout][0], "eval")
        if path.exists():
            feats[readout] = torch.load(path)["h"][:, :, SOURCES[readout][1]]
    common = min(len(f) for f in feats.values())
    out: dict = {"common_pairs": common}
    for readout, h in feats.items():
        v = head_init(hf, tok, readout, args.seed)
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


def fit_sizes(hf, tok, readout: str, h_eval: torch.Tensor, pool: torch.Tensor, args) -> tuple[dict, dict]:
    """Per training-set size, ``--subsamples`` head fits (own subsample, batch order and, for a scalar head,
    initialisation): their mean held-out accuracy with a two-stage interval, and the correctness matrices."""
    out, correct = {}, {}
    for n in args.sizes:
        rows, runs = [], []
        for k in range(args.subsamples):
            v0 = head_init(hf, tok, readout, args.seed + k)
            idx = torch.from_numpy(subsample(len(pool), n, k, args.seed))
            v, losses = train_probe(readout, v0, pool[idx], args, args.seed + k)
            rows.append((probe_margin(readout, v, h_eval) > 0).numpy())
            runs.append({"accuracy": float(rows[-1].mean()), "first_loss": round(float(np.mean(losses[:10])), 4),
                         "last_loss": round(float(np.mean(losses[-10:])), 4)})
        correct[n] = np.stack(rows)
        accs = [r["accuracy"] for r in runs]
        out[f"{readout}@{n}"] = {"train_pairs": min(n, len(pool)), "subsamples": len(runs), "pairs": len(h_eval),
                                 "accuracy": float(np.mean(accs)), "ci95": two_stage_ci(correct[n]),
                                 "min": min(accs), "max": max(accs), "steps": args.steps, "runs": runs}
        print(readout, n, json.dumps({k: v for k, v in out[f"{readout}@{n}"].items() if k != "runs"}), flush=True)
    return out, correct


def print_table(out: dict, readouts: list[str], sizes: list[int]) -> None:
    print("\n| read-out | untrained | " + " | ".join(f"{n} pairs" for n in sizes) + " |")
    print("|---|---|" + "---|" * len(sizes))
    for r in readouts:
        cells = [out[f"{r}@0"]] + [out[f"{r}@{n}"] for n in sizes]
        print(f"| {r} | " + " | ".join(f"{c['accuracy']:.3f} [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}]" for c in cells)
              + " |")
    for key in sorted(k for k in out if k.startswith("diff ")):
        print(key, json.dumps(out[key]))


def probe_curve(args) -> dict:
    hf, tok = load_causal_lm(lora=False)
    hf.eval()
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    spec = DATA[args.data]
    eval_pairs, eval_left = fitting(tok, load_pairs(args.data, spec["eval_start"], spec["eval_stop"]), args.max_length)
    eval_pairs = eval_pairs[:args.eval_n]
    pool_n = args.pool or (max(args.sizes) if args.sizes else 0)
    train_pairs, train_left = fitting(tok, load_pairs(args.data, 0, spec["eval_start"]), args.max_length)
    train_pairs = train_pairs[:pool_n]
    out: dict = {"left_out_too_long": {"eval": eval_left, "train": train_left}}
    print(json.dumps(out), flush=True)
    correct: dict = {}
    for readout in args.readouts:
        source, slot = SOURCES[readout]
        h_eval = features(hf, tok, source, eval_pairs, args, feature_path(args, source, "eval"))[:, :, slot]
        out[f"{readout}@0"] = probe_accuracy(probe_margin(readout, head_init(hf, tok, readout, args.seed), h_eval))
        print(readout, 0, json.dumps(out[f"{readout}@0"]), flush=True)
        if not train_pairs:
            continue
        pool = features(hf, tok, source, train_pairs, args, feature_path(args, source, "train"))[:, :, slot]
        res, correct[readout] = fit_sizes(hf, tok, readout, h_eval, pool, args)
        out.update(res)
        if args.out:
            Path(args.out).write_text(json.dumps({"args": vars(args), "results": out}, indent=1))
    for j in [r for r in correct if r in JUDGES]:
        for sc in [r for r in correct if r not in JUDGES]:
            for n in args.sizes:
                d = correct[j][n].mean() - correct[sc][n].mean()
                out[f"diff {j}-{sc}@{n}"] = {"accuracy_difference": float(d),
                                             "ci95": two_stage_ci(correct[j][n], correct[sc][n])}
    if train_pairs:
        print_table(out, list(correct), args.sizes)
    return out


def environment(args) -> dict:
    """What the figures were measured on: the CPU, torch and its threads, the precision and the exact command."""
    import platform
    import shlex

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    precision = args.feature_precision if args.what.startswith(("probe", "zero-shot-from")) else "fp32"
    return {"cpu": cpu, "cores": __import__("os").cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "precision": precision,
            "command": "python " + shlex.join(["benchmarks/judge_data_efficiency.py", *sys.argv[1:]])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["zero-shot", "curve", "probe-curve", "zero-shot-from-cache"])
    p.add_argument("--data", choices=sorted(DATA), default="hh")
    p.add_argument("--readouts", nargs="+", choices=sorted(SOURCES), default=None)
    p.add_argument("--sizes", type=int, nargs="*", default=[64, 256, 1024])
    p.add_argument("--eval-n", type=int, default=400)
    p.add_argument("--max-length", type=int, default=320)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=64, help="optimiser steps per run, the same for every read-out")
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--cache", default="runs/judge-features", help="probe-curve: where hidden states are cached")
    p.add_argument("--pool", type=int, default=None,
                   help="probe-curve: training pairs with features (default: the largest size); subsamples are drawn "
                        "from it")
    p.add_argument("--subsamples", type=int, default=1,
                   help="probe-curve: head fits per size, each on its own random subsample of the pool")
    p.add_argument("--feature-precision", choices=["fp32", "bf16"], default="fp32",
                   help="probe-curve: the frozen backbone's forward in fp32 or under CPU bf16 autocast")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.readouts is None:
        args.readouts = ["pointwise", "pairwise"] if args.what.startswith("zero-shot") else ["pointwise", "scalar"]
    if args.what.startswith("zero-shot") and set(args.readouts) - set(JUDGES):
        p.error("zero-shot compares the judge read-outs (a scalar head starts at chance)")
    if args.what == "curve" and "scalar-chat" in args.readouts:
        p.error("scalar-chat is a probe-curve read-out (it reads the judge's cached rows); curve trains 'scalar'")
    env = environment(args)
    print(json.dumps(env), flush=True)
    t0 = time.perf_counter()
    res = {"zero-shot": zero_shot, "curve": curve, "probe-curve": probe_curve,
           "zero-shot-from-cache": zero_shot_from_cache}[args.what](args)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), "environment": env, "results": res,
                                              "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    print(f"done in {time.perf_counter() - t0:.0f} s; torch threads {torch.get_num_threads()}", flush=True)


if __name__ == "__main__":
    main()
