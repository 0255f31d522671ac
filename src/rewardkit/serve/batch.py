"""`rewardkit score`: add rewards to every record of a file, written back in the input's format.

Single responses (`{prompt, response}` or `{messages}`) get ``reward``; pairs get ``reward_chosen`` and
``reward_rejected``. All sequences of the file are scored together, sorted by length into batches under a
token budget (see :func:`rewardkit.serve.scorer.length_batches`), so no batch is padded to a global maximum;
the output keeps the input order. Records skipped as invalid (``on_invalid="skip"``) or dropped by the
over-length policy ``drop`` are written unchanged with null rewards, so rows stay aligned with the input.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..data.errors import DataError, SkipReport
from ..data.readers import read_records
from ..data.tokenize import Dropped, Encoded
from .items import Single, parse_item
from .scorer import Scorer

log = logging.getLogger(__name__)

OutputFormat = Literal["jsonl", "json", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "json", "csv", "parquet")


@dataclass
class ScoreFileResult:
    records: int
    sequences: int
    skipped: dict = field(default_factory=dict)
    dropped: int = 0
    truncation: dict = field(default_factory=dict)
    seconds: float = 0.0


def output_format(path: str | Path) -> OutputFormat:
    suffixes = [s.lower() for s in Path(path).suffixes if s.lower() != ".gz"]
    fmt = suffixes[-1].lstrip(".") if suffixes else ""
    if fmt not in FORMATS:
        raise ValueError(f"{path}: cannot tell the output format from the name; end it in "
                         f"{', '.join('.' + f for f in FORMATS)} (optionally .gz for jsonl/json/csv)")
    return fmt  # type: ignore[return-value]


def score_file(scorer: Scorer, input_path: str, output_path: str, normalize: bool = False,
               on_invalid: Literal["error", "skip"] = "error", progress: bool = True,
               aggregate: str | None = None) -> ScoreFileResult:
    """Score every record of ``input_path`` and write them, with rewards added, to ``output_path``. An ensemble
    also gets each reward's ``_mean``, ``_std`` and K head rewards (:func:`ensemble_columns`); ``reward`` is
    ``aggregate`` (None: the model's stored aggregate)."""
    import time

    from tqdm.auto import tqdm

    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    fmt = output_format(output_path)
    if normalize and not scorer.meta.normalization:
        scorer.normalize([])  # raises the explanatory error before any work is done
    start = time.perf_counter()
    report = SkipReport()
    rows: list[dict] = []
    slots: list[tuple[int, str]] = []  # (row, reward field) for each sequence
    seqs: list[Encoded] = []
    dropped = 0
    for rec in read_records(input_path, on_invalid, report):
        row = dict(rec.data)
        rows.append(row)
        try:
            item = parse_item(rec)
        except DataError as err:
            if on_invalid != "skip":
                raise
            report.add(err)
            row.update(_null_rewards(rec.data))
            continue
        parts = ([("reward", item.prompt, item.response)] if isinstance(item, Single) else
                 [("reward_chosen", item.prompt, item.chosen), ("reward_rejected", item.prompt, item.rejected)])
        try:
            encoded = [(name, scorer.encoder.encode(scorer.renderer.render(p, r), rec.where)) for name, p, r in parts]
        except Dropped:
            dropped += 1
            row.update(_null_rewards(rec.data))
            continue
        for name, enc in encoded:
            row[name] = None
            slots.append((len(rows) - 1, name))
            seqs.append(enc)
    details = scorer.uncertainty_encoded(seqs, aggregate) if scorer.is_ensemble else None
    with tqdm(total=len(seqs), unit="seq", desc="scoring", disable=not progress or details is not None) as bar:
        rewards = [d["reward"] for d in details] if details is not None else \
            scorer.score_encoded(seqs, progress=bar.update)
    if normalize:
        rewards = scorer.normalize(rewards)
    for j, ((i, name), r) in enumerate(zip(slots, rewards, strict=True)):
        rows[i][name] = r
        if details is not None:
            rows[i].update(ensemble_columns(name, details[j]))
    write_records(rows, output_path, fmt)
    result = ScoreFileResult(records=len(rows), sequences=len(seqs), skipped=report.summary(), dropped=dropped,
                             truncation=scorer.encoder.stats.summary(), seconds=time.perf_counter() - start)
    log.info("scored %d sequences from %d records in %.1f s", result.sequences, result.records, result.seconds)
    return result


def ensemble_columns(name: str, detail: dict) -> dict:
    """``reward`` -> reward_mean, reward_std, rewards_k; ``reward_chosen`` -> reward_chosen_mean,
    reward_chosen_std, rewards_k_chosen (the un-normalised ensemble statistics)."""
    suffix = name[len("reward"):]
    return {f"{name}_mean": detail["reward_mean"], f"{name}_std": detail["reward_std"],
            f"rewards_k{suffix}": detail["rewards_k"]}


def _null_rewards(data: dict) -> dict:
    return {"reward_chosen": None, "reward_rejected": None} if "chosen" in data or "rejected" in data else \
        {"reward": None}


def _open_text_out(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def write_records(rows: list[dict], path: str | Path, fmt: OutputFormat) -> None:
    """Write ``rows`` as jsonl/json/csv/parquet; in CSV, list and dict values are written as JSON text."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    with _open_text_out(path) as f:
        if fmt == "jsonl":
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "json":
            json.dump(rows, f, ensure_ascii=False, indent=1)
            f.write("\n")
        else:
            columns: dict[str, None] = {}
            for row in rows:
                columns.update(dict.fromkeys(row))
            writer = csv.DictWriter(f, fieldnames=list(columns))
            writer.writeheader()
            for row in rows:
                writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v
                                 for k, v in row.items()})
