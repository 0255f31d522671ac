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

from ..config import DataConfig
from ..data.cache import ScoreEncodings
from ..data.errors import DataError, SkipReport, skip_or_raise
from ..data.formats import Text, _text_or_messages
from ..data.readers import Record, read_records
from ..data.tokenize import Dropped, Encoded
from ..io_safety import atomic_write, check_output
from .items import Single, parse_item
from .scorer import Scorer

log = logging.getLogger(__name__)

SCORE_BLOCK = 8192
"""Records scored together (their sequences sorted by length into batches): bounds the work held at once, and
since a block's batches depend on the block alone, a sharded run split at block boundaries gives the same bytes as
one process (:mod:`rewardkit.serve.sharded_score`)."""

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
               data: DataConfig | None = None, overwrite: bool = False,
               records: tuple[int, int | None] = (0, None), block_records: int = SCORE_BLOCK,
               aggregate: str | None = None) -> ScoreFileResult:
    """Score every record of ``input_path`` and write them, with rewards added, to ``output_path``.

    ``data`` (``--data.*`` overrides) maps field names (``data.fields``); with ``data.format: ab`` both responses
    of an A/B judgment are scored (``reward_a``, ``reward_b``; the winner is not needed). The output is written to
    a temporary file and renamed into place; an existing output is refused unless ``overwrite``, and the input
    itself always is (see :mod:`rewardkit.io_safety`). ``records``: only records ``[start, stop)`` of the input
    (a shard of data-parallel scoring, :mod:`rewardkit.serve.sharded_score`). An ensemble also gets each
    reward's ``_mean``, ``_std`` and K head rewards (:func:`ensemble_columns`); ``reward`` is ``aggregate``
    (None: the model's stored aggregate)."""
    import time
    from itertools import islice

    from tqdm.auto import tqdm

    if on_invalid not in ("error", "skip"):
        raise ValueError(f"on_invalid must be 'error' or 'skip', got {on_invalid!r}")
    if block_records < 1:
        raise ValueError(f"block_records (--block-records) must be at least 1, got {block_records}")
    fmt = output_format(output_path)
    check_output(output_path, (input_path,), overwrite)  # before any work: a refused output wastes none
    if scorer.meta.head == "step":  # a process reward model: {prompt, steps} records get step_rewards and reward
        from .step_scorer import score_steps_file

        return score_steps_file(scorer, input_path, output_path, fmt, on_invalid, progress)
    if normalize and not scorer.meta.normalization:
        scorer.normalize([])  # raises the explanatory error before any work is done
    start = time.perf_counter()
    report = SkipReport()
    rows: list[dict] = []
    slots: list[tuple[int, str]] = []  # (row, reward field) for each sequence
    seqs: list[Encoded] = []
    dropped = 0
    # data/cache.py; --data.cache false / --data.cache_dir DIR choose whether and where
    cached = ScoreEncodings(input_path, on_invalid, scorer.renderer, scorer.encoder, data, records)
    cuts: list[int] = []  # sequence index where each block after the first starts
    for rec in islice(read_records(input_path, on_invalid, report), *records):
        if rows and len(rows) % block_records == 0:
            cuts.append(len(seqs))
        row = dict(rec.data)
        rows.append(row)
        try:
            parts = _score_parts(rec, data)
        except DataError as err:
            skip_or_raise(err, on_invalid, report)
            row.update(_null_rewards(rec.data, data))
            continue
        try:
            encoded = cached.encode(rec.where, parts)  # each part encoded as scorer.encoder.encode(render(p, r))
        except Dropped:
            dropped += 1
            row.update(_null_rewards(rec.data, data))
            continue
        for name, enc in encoded:
            row[name] = None
            slots.append((len(rows) - 1, name))
            seqs.append(enc)
    cached.save()
    details = scorer.uncertainty_encoded(seqs, aggregate) if scorer.is_ensemble else None
    with tqdm(total=len(seqs), unit="seq", desc="scoring", disable=not progress or details is not None) as bar:
        rewards = [d["reward"] for d in details] if details is not None else \
            [r for a, b in zip([0, *cuts], [*cuts, len(seqs)], strict=True)
             for r in scorer.score_encoded(seqs[a:b], progress=bar.update)]
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


def _score_parts(rec: Record, data: DataConfig | None) -> list[tuple[str, Text, Text]]:
    """(output field, prompt, response) for each sequence of one record."""
    if data is not None and data.format == "ab":
        f = data.fields
        prompt = _text_or_messages(rec, "prompt", f.prompt)
        return [(name, prompt, _text_or_messages(rec, name, col))
                for name, col in (("reward_a", f.response_a), ("reward_b", f.response_b))]
    if data is not None:  # other field names: read under the default ones (the output keeps the record as it is)
        f = data.fields
        names = {"prompt": f.prompt, "response": f.response, "chosen": f.chosen, "rejected": f.rejected}
        renamed = dict(rec.data) | {k: rec.data[v] for k, v in names.items() if v != k and v in rec.data}
        rec = Record(renamed, rec.source, rec.line)
    item = parse_item(rec)
    return ([("reward", item.prompt, item.response)] if isinstance(item, Single) else
            [("reward_chosen", item.prompt, item.chosen), ("reward_rejected", item.prompt, item.rejected)])


def _null_rewards(data: dict, cfg: DataConfig | None = None) -> dict:
    if cfg is not None and cfg.format == "ab":
        return {"reward_a": None, "reward_b": None}
    return {"reward_chosen": None, "reward_rejected": None} if "chosen" in data or "rejected" in data else \
        {"reward": None}


def _open_text_out(path: Path, gz: bool):
    if gz:
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return open(path, "w", encoding="utf-8", newline="")


def write_records(rows: list[dict], path: str | Path, fmt: OutputFormat) -> None:
    """Write ``rows`` as jsonl/json/csv/parquet; in CSV, list and dict values are written as JSON text.

    Atomically: a temporary file is renamed to ``path`` once complete, so a killed write never leaves a
    truncated file under the output's name.
    """
    path = Path(path)
    with atomic_write(path) as tmp:
        _write_rows(rows, tmp, fmt, gz=path.suffix == ".gz")


def _write_rows(rows: list[dict], path: Path, fmt: OutputFormat, gz: bool) -> None:
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
        return
    with _open_text_out(path, gz) as f:
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
