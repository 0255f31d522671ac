"""Scoring throughput: `rewardkit score` against the usual plain transformers loop, same model, same texts.

The plain loop is what most scripts do: ``AutoModelForSequenceClassification`` from the saved directory, the
tokenizer on each fixed-size batch in data order with ``padding=True`` (pad to the batch's longest), fp32.
rewardkit sorts every sequence by length and fills batches up to a token budget, so it pads far less; an
encoder with [CLS] pooling computes its last layer for [CLS] only, and a decoder computes a prompt once for
all its responses (chosen and rejected here). ``rewardkit-plain`` is rewardkit with both of those turned
off (length-sorted padded batches only), to show what each part brings. Everything runs in this process,
the tools alternating over ``--rounds`` (the order reversed every other round), with the same torch thread
count; wall and process CPU seconds are both printed, the CPU seconds being far less sensitive to other
jobs on a shared machine.

    python benchmarks/score_vs_transformers.py                      # runs/quickstart/model if present
    python benchmarks/score_vs_transformers.py --records 400 --batch-size 32
    python benchmarks/score_vs_transformers.py --model smollm2-135m --records 60    # a decoder (real weights)

Without ``runs/quickstart/model`` (or with ``--model NAME`` of a built-in) the built-in backbone is saved with
a fresh scalar head (scores are then meaningless, throughput is not). Data: the bundled hh-rlhf harmless test
split (real dialogues).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def model_dir(tmp: Path, name: str | None = None, max_length: int = 256) -> Path:
    quick = REPO / "runs" / "quickstart" / "model"
    if name is None and (quick / "rewardkit.json").exists():
        return quick
    if name is not None and Path(name).is_dir():
        return Path(name)
    from rewardkit.config import ModelConfig
    from rewardkit.data.tokenize import SequenceEncoder
    from rewardkit.models.reward_model import ModelMeta, build_model

    name = name or "minilm-l6"
    model, tok, kind = build_model(ModelConfig(name=name))
    if kind == "encoder":
        meta = ModelMeta(kind=kind, pooling="cls", score_token="[CLS]", max_length=max_length, base_model=name)
    else:
        score_id = SequenceEncoder(tok, kind, max_length).score_token_id
        meta = ModelMeta(kind=kind, pooling="last", score_token=tok.convert_ids_to_tokens(score_id),
                         score_token_id=score_id, max_length=max_length, base_model=name)
    model.save_pretrained(tmp / name, tok, meta)
    return tmp / name


def load_records(n: int) -> list[dict]:
    """The first ``n`` valid pairs of the bundled split, each as one record."""
    from rewardkit.config import FieldsConfig
    from rewardkit.data.formats import parse_pairs
    from rewardkit.data.readers import read_records

    recs = list(itertools.islice(read_records("builtin:hh-rlhf-harmless"), 4 * n))
    pairs = list(itertools.islice(parse_pairs(recs, FieldsConfig(), on_invalid="skip"), n))
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]


def plain_transformers(path: Path, records: list[dict], batch_size: int, max_length: int,
                       kind: str, score_token: str = "") -> tuple[list, float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    prompts = [r["prompt"] for r in records] * 2
    responses = [r["chosen"] for r in records] + [r["rejected"] for r in records]
    out = []
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            # prompt + response the usual way: a text pair for encoders, joined text for decoders
            if kind == "decoder":
                # the response ends with the model's score token, as rewardkit renders it
                enc = tok([p + r + score_token for p, r in zip(prompts[i:i + batch_size],
                                                               responses[i:i + batch_size], strict=True)],
                          padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            else:
                enc = tok(prompts[i:i + batch_size], responses[i:i + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
            out += model(**enc).logits[:, 0].tolist()
    return out, time.perf_counter() - start


def rewardkit_score(path: Path, records: list[dict], tmp: Path, max_tokens: int,
                    plain: bool = False) -> tuple[list, float]:
    import contextlib

    import rewardkit.models.reward_model as reward_model
    from rewardkit.serve.batch import score_file
    from rewardkit.serve.scorer import Scorer

    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    scorer = Scorer.from_pretrained(path, max_tokens=max_tokens, max_batch=256)
    shortcut = reward_model.cls_only
    if plain:  # length-sorted padded batches only: no prompt sharing, full last layer
        scorer.share_prompts = False
        reward_model.cls_only = lambda tm: contextlib.nullcontext(False)
    try:
        start = time.perf_counter()
        score_file(scorer, str(src), str(tmp / "out.jsonl"), progress=False, overwrite=True)  # rounds: same file
        seconds = time.perf_counter() - start
    finally:
        reward_model.cls_only = shortcut
    rows = [json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines()]
    return [r["reward_chosen"] for r in rows] + [r["reward_rejected"] for r in rows], seconds


def timed(fn, *args, **kwargs):
    """(result, wall seconds, process CPU seconds)."""
    cpu = time.process_time()
    out, wall = fn(*args, **kwargs)
    return out, wall, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300, help="pairs (2 texts each)")
    ap.add_argument("--batch-size", type=int, default=32, help="the plain loop's fixed batch size")
    ap.add_argument("--max-tokens", type=int, default=4096, help="rewardkit's token budget per batch (its CPU default)")
    ap.add_argument("--model", default=None, help="a rewardkit model directory or a built-in backbone name "
                    "(default: runs/quickstart/model, else minilm-l6)")
    ap.add_argument("--max-length", type=int, default=256, help="for a built-in backbone")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tools", default="transformers,rewardkit,rewardkit-plain")
    args = ap.parse_args()
    import os

    import transformers

    transformers.utils.logging.set_verbosity_error()
    tools = args.tools.split(",")
    times: dict[str, list[tuple[float, float]]] = {t: [] for t in tools}
    scores: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        path = model_dir(tmp, args.model, args.max_length)
        meta = json.loads((path / "rewardkit.json").read_text())
        records = load_records(args.records)
        n = 2 * len(records)
        for r in range(args.rounds):
            for tool in (tools if r % 2 == 0 else tools[::-1]):
                if tool == "transformers":
                    out, wall, cpu = timed(plain_transformers, path, records, args.batch_size, meta["max_length"],
                                           meta["kind"], meta.get("score_token", "") if meta["kind"] == "decoder"
                                           else "")
                else:
                    out, wall, cpu = timed(rewardkit_score, path, records, tmp, args.max_tokens,
                                           plain=tool == "rewardkit-plain")
                times[tool].append((wall, cpu))
                scores[tool] = out
                print(f"round {r + 1} {tool}: {wall:.2f} s wall, {cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else meta.get("base_model") or path.name
    print(f"\nmodel {name} ({meta['kind']}), {n} texts (hh-rlhf harmless test), max_length {meta['max_length']}, "
          f"torch threads {torch.get_num_threads()}, {args.rounds} rounds (median)")
    base = "transformers" if "transformers" in tools else tools[0]
    bw = statistics.median(w for w, _ in times[base])
    bc = statistics.median(c for _, c in times[base])
    print(f"| tool | wall s | CPU s | texts/s (wall) | vs {base} (wall) | vs {base} (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    for tool in tools:
        w = statistics.median(x for x, _ in times[tool])
        c = statistics.median(x for _, x in times[tool])
        print(f"| {tool} | {w:.2f} | {c:.2f} | {n / w:.1f} | {bw / w:.2f}x | {bc / c:.2f}x |")
    for tool in tools:
        if tool != base:
            diffs = [abs(a - b) for a, b in zip(scores[base], scores[tool], strict=True)]
            print(f"|reward {tool} - {base}|: median {statistics.median(diffs):.2e}, max {max(diffs):.2e}")
    if "rewardkit" in scores and "rewardkit-plain" in scores:
        d = max(abs(a - b) for a, b in zip(scores["rewardkit"], scores["rewardkit-plain"], strict=True))
        print(f"max |rewardkit - rewardkit-plain| = {d:.2e} (the shortcuts must not change scores)")
    print("(differences against the plain loop come from truncating over-long texts differently: it cuts "
          "longest_first at the right, rewardkit the prompt's left)")


if __name__ == "__main__":
    main()
