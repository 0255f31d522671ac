"""Scoring throughput: `rewardkit score` against the usual plain transformers loop, same model, same texts.

The plain loop is what most scripts do: ``AutoModelForSequenceClassification`` from the saved directory, the
tokenizer on each fixed-size batch in data order with ``padding=True`` (pad to the batch's longest), fp32.
rewardkit sorts every sequence by length and fills batches up to a token budget, so it pads far less.
Both run in this process, one after the other, with the same torch thread count.

    python benchmarks/score_vs_transformers.py                      # runs/quickstart/model if present
    python benchmarks/score_vs_transformers.py --records 400 --batch-size 32

Without ``runs/quickstart/model`` the built-in ``minilm-l6`` is saved with a fresh scalar head (scores are then
meaningless, throughput is not). Data: the bundled hh-rlhf harmless test split (real dialogues).
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


def model_dir(tmp: Path) -> Path:
    quick = REPO / "runs" / "quickstart" / "model"
    if (quick / "rewardkit.json").exists():
        return quick
    from rewardkit.config import ModelConfig
    from rewardkit.models.reward_model import ModelMeta, build_model

    model, tok, kind = build_model(ModelConfig(name="minilm-l6"))
    meta = ModelMeta(kind=kind, pooling="cls", score_token="[CLS]", max_length=256, base_model="minilm-l6")
    model.save_pretrained(tmp / "minilm", tok, meta)
    return tmp / "minilm"


def load_records(n: int) -> list[dict]:
    """The first ``n`` valid pairs of the bundled split, each as one record."""
    from rewardkit.config import FieldsConfig
    from rewardkit.data.formats import parse_pairs
    from rewardkit.data.readers import read_records

    recs = list(itertools.islice(read_records("builtin:hh-rlhf-harmless"), 4 * n))
    pairs = list(itertools.islice(parse_pairs(recs, FieldsConfig(), on_invalid="skip"), n))
    return [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected} for p in pairs]


def plain_transformers(path: Path, records: list[dict], batch_size: int, max_length: int,
                       kind: str) -> tuple[list, float]:
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
                enc = tok([p + r for p, r in zip(prompts[i:i + batch_size], responses[i:i + batch_size],
                                                 strict=True)],
                          padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            else:
                enc = tok(prompts[i:i + batch_size], responses[i:i + batch_size], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt")
            out += model(**enc).logits[:, 0].tolist()
    return out, time.perf_counter() - start


def rewardkit_score(path: Path, records: list[dict], tmp: Path, max_tokens: int) -> tuple[list, float]:
    from rewardkit.serve.batch import score_file
    from rewardkit.serve.scorer import Scorer

    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    scorer = Scorer.from_pretrained(path, max_tokens=max_tokens, max_batch=256)
    start = time.perf_counter()
    score_file(scorer, str(src), str(tmp / "out.jsonl"), progress=False)  # read, render, tokenize, score, write
    seconds = time.perf_counter() - start
    rows = [json.loads(x) for x in (tmp / "out.jsonl").read_text().splitlines()]
    return [r["reward_chosen"] for r in rows] + [r["reward_rejected"] for r in rows], seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=300, help="pairs (2 texts each)")
    ap.add_argument("--batch-size", type=int, default=32, help="the plain loop's fixed batch size")
    ap.add_argument("--max-tokens", type=int, default=8192, help="rewardkit's token budget per batch")
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        path = model_dir(tmp)
        meta = json.loads((path / "rewardkit.json").read_text())
        records = load_records(args.records)
        n = 2 * len(records)
        base, base_s = plain_transformers(path, records, args.batch_size, meta["max_length"],
                                            meta["kind"])
        ours, ours_s = rewardkit_score(path, records, tmp, args.max_tokens)
    diffs = [abs(a - b) for a, b in zip(base, ours, strict=True)]
    print(f"model {path.relative_to(REPO) if path.is_relative_to(REPO) else path.name}, {n} texts "
          f"(hh-rlhf harmless test), torch threads {torch.get_num_threads()}")
    print(f"{'':34s}{'seconds':>9s}{'texts/s':>10s}")
    print(f"{'transformers loop (bs ' + str(args.batch_size) + ', pad to batch max)':34s}{base_s:9.2f}{n / base_s:10.1f}")
    print(f"{'rewardkit score (length-sorted)':34s}{ours_s:9.2f}{n / ours_s:10.1f}")
    print(f"speed-up {base_s / ours_s:.2f}x; |reward difference| median {statistics.median(diffs):.2e}, "
          f"max {max(diffs):.2e} (differences come only from truncating over-long texts differently)")


if __name__ == "__main__":
    main()
