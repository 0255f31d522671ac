"""Data-parallel `rewardkit score`: N processes each score a contiguous shard of the input records.

``rewardkit score MODEL IN -o OUT --num-processes N`` counts the input's records, writes a plan to
``OUT.shards/plan.json`` and starts N worker processes on this machine (``python -m rewardkit.serve.sharded_score``,
each with its share of the CPU threads, or its own GPU). Under ``accelerate launch`` (several processes or nodes:
``WORLD_SIZE`` > 1) every launched process is one worker, shard = ``RANK``, and rank 0 merges after a barrier;
the output directory must then be on a file system that every node sees.

Each worker scores records ``[start, stop)`` with the same :func:`~rewardkit.serve.batch.score_file` as one
process and writes its rows to ``shard-K-of-N.jsonl`` through a temporary file and a rename, so a shard file
exists only when it is complete; a killed worker leaves nothing but a ``.tmp`` file. The merge reads the shards in
order and writes ``OUT`` in its format. ``--resume`` reuses the complete shards of the same plan (same input file,
size and modification time, model, options, N) and scores only the missing ones.

One process scores a file in blocks of ``block_records`` records (:data:`~rewardkit.serve.batch.SCORE_BLOCK`),
each block's sequences sorted into batches on their own; shards are whole blocks, so every sequence meets the same
batch neighbours whatever N is, and N processes write the same bytes as one process with the same threads per
process (``OMP_NUM_THREADS``; tests/distributed/test_sharded_score.py). Without that, scores would still agree to fp32 noise (the design's
batching invariance, 1e-4), not bit for bit.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from ..data.hf_datasets import is_hub_path
from ..data.readers import read_records, resolve_path
from .batch import SCORE_BLOCK, ScoreFileResult, output_format, write_records

log = logging.getLogger(__name__)

PLAN = "plan.json"


class ShardError(ValueError):
    """A shard failed or is missing; the CLI prints it without a traceback."""


@dataclass(kw_only=True)
class ShardPlan:
    """Everything a worker needs; written once per job, compared on ``--resume``."""

    model: str
    input: str
    output: str
    num_shards: int
    records: int
    input_size: int
    input_mtime_ns: int
    normalize: bool = False
    on_invalid: Literal["error", "skip"] = "error"
    device: str = "cpu"
    max_tokens: int | None = None
    max_batch: int = 64
    share_prompts: bool = True
    block_records: int = SCORE_BLOCK
    """Records scored together; shards start at multiples of it, so the output does not depend on N."""
    data: dict | None = None
    """The ``--data.*`` overrides as a tree (``{"fields": {"prompt": "input"}, "format": "ab"}``): every worker
    reads its records as one process does (:func:`~rewardkit.cli_data_overrides.data_config`)."""
    bounds: list[list[int]] = field(default_factory=list)
    """[start, stop) record indices of each shard: contiguous, in input order, whole blocks (sizes in blocks
    differing by at most one)."""

    def same_job(self, other: ShardPlan) -> bool:
        return asdict(self) == asdict(other)


def shard_dir(output: str | Path) -> Path:
    return Path(str(output) + ".shards")


def shard_bounds(records: int, num_shards: int, block: int = 1) -> list[list[int]]:
    """Contiguous [start, stop) ranges covering ``range(records)`` in whole blocks of ``block`` records (the last
    block may be short); the first ``blocks % n`` shards get one block more."""
    blocks = -(-records // block)
    base, extra = divmod(blocks, num_shards)
    bounds, start = [], 0
    for k in range(num_shards):
        stop = min(records, start + (base + (1 if k < extra else 0)) * block)
        bounds.append([start, stop])
        start = stop
    return bounds


def shard_path(directory: Path, k: int, n: int) -> Path:
    return directory / f"shard-{k:05d}-of-{n:05d}.jsonl"


def make_plan(model: str, input_path: str, output: str, num_shards: int, **options) -> ShardPlan:
    if num_shards < 1:
        raise ValueError(f"--num-processes must be at least 1, got {num_shards}")
    block = options.setdefault("block_records", SCORE_BLOCK)
    if block < 1:
        raise ValueError(f"--block-records must be at least 1, got {block}")
    output_format(output)  # an unknown output extension fails before any work is done
    if is_hub_path(input_path):  # the plan records the input's size and time to check a --resume
        raise ValueError(f"{input_path}: --num-processes scores a local file or directory; save the dataset first "
                         "(datasets.load_dataset(...).save_to_disk(DIR)) and score DIR")
    src = resolve_path(input_path)
    records = sum(1 for _ in read_records(input_path, options.get("on_invalid", "error")))
    st = src.stat()
    return ShardPlan(model=str(Path(model).resolve()), input=input_path if input_path.startswith("builtin:")
                     else str(src.resolve()), output=str(Path(output).resolve()), num_shards=num_shards,
                     records=records, input_size=st.st_size, input_mtime_ns=st.st_mtime_ns,
                     bounds=shard_bounds(records, num_shards, block), **options)


def prepare(plan: ShardPlan, resume: bool) -> list[int]:
    """Write the plan (fresh start) or check it (``resume``); the shards still to score."""
    d = shard_dir(plan.output)
    plan_file = d / PLAN
    if resume and plan_file.exists():
        old = ShardPlan(**json.loads(plan_file.read_text(encoding="utf-8")))
        if not old.same_job(plan):
            changed = [k for k, v in asdict(plan).items() if asdict(old).get(k) != v]
            raise ValueError(f"{plan_file}: --resume needs the same job, but {', '.join(changed)} changed since "
                             "the shards were written; rerun without --resume to start again")
    else:
        if d.exists():
            shutil.rmtree(d)  # a previous job's shards (or a different plan) must not leak into this one
        d.mkdir(parents=True)
        _atomic_write(plan_file, json.dumps(asdict(plan), indent=1) + "\n")
    return [k for k in range(plan.num_shards) if not shard_path(d, k, plan.num_shards).exists()]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_shard(plan: ShardPlan, k: int, device: str | None = None, progress: bool = False) -> ScoreFileResult:
    """Score shard ``k`` of ``plan`` and publish it atomically (stats first, then the rows, by rename)."""
    from .batch import score_file
    from .scorer import Scorer

    d = shard_dir(plan.output)
    final = shard_path(d, k, plan.num_shards)
    tmp = final.with_name(final.stem + ".tmp.jsonl")  # .jsonl last: score_file tells the format by the name
    scorer = Scorer.from_pretrained(plan.model, device=device or plan.device, max_tokens=plan.max_tokens,
                                    max_batch=plan.max_batch)
    scorer.share_prompts = plan.share_prompts
    start, stop = plan.bounds[k]
    result = score_file(scorer, plan.input, str(tmp), normalize=plan.normalize, on_invalid=plan.on_invalid,
                        progress=progress, records=(start, stop), block_records=plan.block_records,
                        overwrite=True, data=plan_data(plan))  # its own temporary file: a killed worker may have left one
    _atomic_write(final.with_suffix(".json"), json.dumps(asdict(result)) + "\n")
    os.replace(tmp, final)
    return result


def plan_data(plan: ShardPlan):
    """The plan's ``--data.*`` overrides as the :class:`~rewardkit.config.DataConfig` one process scores with."""
    from ..config import DataConfig, from_dict

    return from_dict(DataConfig, plan.data, prefix="data.") if plan.data is not None else None


def data_tree(overrides: list[str]) -> dict | None:
    """``--data.fields.prompt input`` -> ``{"fields": {"prompt": "input"}}`` (checked by building it), or None;
    kept as a tree in the plan so that ``--resume`` compares what was set, however it was spelled."""
    from ..cli_data_overrides import data_config
    from ..config import apply_overrides

    if not overrides:
        return None
    data_config(overrides)  # a bad key or value fails here, naming it, before any worker starts
    return apply_overrides({"data": {}}, overrides)["data"]


def merge(plan: ShardPlan) -> ScoreFileResult:
    """Concatenate the shards in order into ``plan.output`` (its own format), then remove the shard directory."""
    d = shard_dir(plan.output)
    rows: list[dict] = []
    total = ScoreFileResult(records=0, sequences=0)
    for k in range(plan.num_shards):
        path = shard_path(d, k, plan.num_shards)
        if not path.exists():
            raise ShardError(f"{path}: shard {k} of {plan.num_shards} is missing; rerun with --resume")
        with open(path, encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f)
        stats = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        total.records += stats["records"]
        total.sequences += stats["sequences"]
        total.dropped += stats["dropped"]
        total.seconds = max(total.seconds, stats["seconds"])
        total.skipped = _merge_skips(total.skipped, stats["skipped"])
    if len(rows) != plan.records:
        raise ShardError(f"{d}: the shards hold {len(rows)} records but the input has {plan.records}")
    out = Path(plan.output)
    tmp = out.with_name(f".{out.name}.merging{''.join(out.suffixes)}")
    write_records(rows, tmp, output_format(out))
    os.replace(tmp, out)
    shutil.rmtree(d)
    return total


def _merge_skips(a: dict, b: dict) -> dict:
    """Two :meth:`SkipReport.summary` dicts as one: counts added, the first examples kept in shard order."""
    if not a:
        return dict(b)
    reasons = dict(a.get("by_reason", {}))
    for reason, n in b.get("by_reason", {}).items():
        reasons[reason] = reasons.get(reason, 0) + n
    first = (a.get("first", []) + b.get("first", []))[:max(len(a.get("first", [])), len(b.get("first", [])))]
    return {"skipped": a.get("skipped", 0) + b.get("skipped", 0), "by_reason": reasons, "first": first}


def _worker_env(k: int, n: int) -> dict:
    """Each local worker gets its share of the CPU cores (n processes x all cores would oversubscribe), or
    ``OMP_NUM_THREADS`` when set. A CPU matrix product's last bits depend on how many threads split it, so the
    output is byte-equal to one process run with the same number of threads."""
    env = dict(os.environ)
    threads = int(env.get("OMP_NUM_THREADS") or 0) or max(1, (os.cpu_count() or 1) // n)
    env["OMP_NUM_THREADS"] = env["REWARDKIT_SHARD_THREADS"] = str(threads)
    return env


def _worker_device(device: str, k: int) -> str:
    """``cuda`` with several local workers: worker k takes GPU k (mod the count); explicit devices are kept."""
    if device != "cuda":
        return device
    import torch

    return f"cuda:{k % max(1, torch.cuda.device_count())}"


def score_sharded(model: str, input_path: str, output: str, num_processes: int, resume: bool = False,
                  **options) -> ScoreFileResult:
    """``rewardkit score --num-processes N`` (see the module docstring); returns the merged counts."""
    start = time.perf_counter()
    plan = make_plan(model, input_path, output, num_processes, **options)
    todo = prepare(plan, resume)
    if len(todo) < num_processes:
        log.info("resuming: %d of %d shards complete, scoring %s", num_processes - len(todo), num_processes, todo)
    plan_file = shard_dir(plan.output) / PLAN
    procs = [(k, subprocess.Popen([sys.executable, "-m", __name__, str(plan_file), str(k),
                                   _worker_device(plan.device, k)], env=_worker_env(k, num_processes)))
             for k in todo]
    failed = [k for k, p in procs if p.wait() != 0]
    if failed:
        raise ShardError(f"shard(s) {failed} of {num_processes} failed (see the messages above); the complete "
                           f"shards are kept in {shard_dir(plan.output)}: rerun with --resume to score the rest")
    result = merge(plan)
    result.seconds = time.perf_counter() - start
    return result


def score_launched(model: str, input_path: str, output: str, resume: bool = False,
                   **options) -> ScoreFileResult | None:
    """Under ``accelerate launch``: this process scores shard RANK of WORLD_SIZE; rank 0 merges (None elsewhere)."""
    from accelerate import PartialState

    state = PartialState()
    start = time.perf_counter()
    if options.get("device") == "cuda":
        options["device"] = str(state.device)
    plan = make_plan(model, input_path, output, state.num_processes, **options)
    todo = prepare(plan, resume) if state.is_main_process else None
    state.wait_for_everyone()  # the plan is written before anyone reads or checks shards
    if todo is None:
        todo = [k for k in range(plan.num_shards) if not shard_path(shard_dir(output), k, plan.num_shards).exists()]
    if state.process_index in todo:
        run_shard(plan, state.process_index)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    result = merge(plan)
    result.seconds = time.perf_counter() - start
    return result


def launched_world() -> int:
    """WORLD_SIZE set by a launcher (accelerate launch, torchrun); 1 when run by hand."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def score_cli(args, overrides: list[str] = ()) -> ScoreFileResult | None:
    """`rewardkit score` with ``--num-processes`` / ``--resume`` or under a launcher; ``overrides``: its
    ``--data.*`` options."""
    from ..io_safety import check_output

    # before any work, as in one process: never the input, an existing output only with --overwrite
    check_output(args.output, (args.input,), args.overwrite)
    options = dict(normalize=args.normalize, on_invalid=args.on_invalid, device=args.device,
                   max_tokens=args.max_tokens, max_batch=args.max_batch, share_prompts=args.share_prompts,
                   block_records=args.block_records, data=data_tree(list(overrides)))
    if launched_world() > 1:
        if args.num_processes:
            raise ValueError("--num-processes inside `accelerate launch`: the launcher already started the "
                             "processes (each scores one shard); drop --num-processes")
        return score_launched(args.model, args.input, args.output, resume=args.resume, **options)
    if not args.num_processes:
        raise ValueError("--resume continues a sharded job: give the same --num-processes N as the first run")
    return score_sharded(args.model, args.input, args.output, args.num_processes, resume=args.resume, **options)


def _worker_main(argv: list[str]) -> int:
    plan_file, k, device = Path(argv[0]), int(argv[1]), argv[2]
    threads = os.environ.get("REWARDKIT_SHARD_THREADS")
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    logging.basicConfig(level=logging.WARNING, format=f"shard {k}: %(levelname)s %(name)s: %(message)s")
    plan = ShardPlan(**json.loads(plan_file.read_text(encoding="utf-8")))
    try:
        r = run_shard(plan, k, device)
    except (ValueError, FileNotFoundError) as e:  # data errors name file:line; no traceback for bad input
        print(f"rewardkit: error: shard {k}: {e}", file=sys.stderr)
        return 2
    print(f"shard {k}/{plan.num_shards}: {r.sequences} sequences from {r.records} records in {r.seconds:.1f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
