"""The training loop: explicit, on Accelerate (DDP, FSDP and DeepSpeed come from there).

The loop knows no loss and no data format: the run's :class:`~rewardkit.training.tasks.Task` batches the
examples (padded or packed rows), computes the loss from the model's output and evaluates. :func:`train` is
setup (model, task, data), the batch plan (every `auto` resolved; packing and token budgets decided once),
the loop (micro-batches, optimizer steps, evaluation, checkpoints) and finish (final evaluation, save).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig, TrainConfig, dump_config, load_config
from ..data.errors import SkipReport
from ..data.mixture import RunData, load_run_data, train_lengths
from ..data.packing import budget_batches, shuffled_batches
from ..data.render import Renderer
from ..data.tokenize import SequenceEncoder
from ..models.judge import judge_encoders
from ..models.packed import pack_settings
from ..models.reward_model import RewardModel, build_meta, build_model
from ..scoring import Scorer
from .checkpoint import MARKER, list_checkpoints, load_checkpoint, save_checkpoint
from .distributed import (
    LocalBatch,
    check_backend,
    full_state_dict,
    global_mean_loss,
    grad_norm_tensor,
    local_batch,
    make_accelerator,
    shards_parameters,
)
from .early_stopping import EarlyStopping, check_config
from .manifest import resume_checkpoint
from .nonfinite import NonFiniteGuard
from .optim import build_optimizer, build_scheduler
from .resolve import Resolved, bf16_is_fast, resolve_for  # noqa: F401  (bf16_is_fast: public name kept here)
from .run_dir import check_output_dir, claim_output_dir
from .tasks import (
    Task,
    TaskBatch,
    evaluate_pairs,  # noqa: F401  (public here before PairTask held it)
    make_task,
)

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    scorer: Scorer
    """The trained model, ready to score (``result.scorer.score(prompts, responses)``)."""
    metrics: dict
    """Final held-out metrics, baselines, data counts and timings (also in ``OUTPUT/summary.json``)."""
    output_dir: Path


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                  group_by_length: bool = True, mega: int = 32) -> list[list[int]]:
    """This process's micro-batches for one epoch, the same on every rerun with the same seed."""
    return [b.indices for b in epoch_local_batches(lengths, batch_size, seed, epoch, rank, world, group_by_length,
                                                   mega)]


def epoch_local_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1,
                        group_by_length: bool = True, mega: int = 32) -> list[LocalBatch]:
    """This process's micro-batches for one epoch, with their loss weights (``distributed.local_batch``).

    A seeded permutation is cut into global batches of ``batch_size * world`` pairs, each process taking its
    own slice. With ``group_by_length`` the permutation is first cut into mega-batches of ``mega`` global
    batches, each sorted by length, and the resulting batches are shuffled: batches hold pairs of similar
    length, so little compute goes to padding, while the order stays random across the epoch.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    drawn = torch.randperm(len(lengths), generator=g).numpy()
    step = batch_size * world
    if group_by_length and len(drawn):
        # each mega-batch longest first, ties in permutation order (a stable sort), on the length column as
        # one array: a million examples in well under a second (a Python sort per mega-batch took tens of s)
        lens = np.asarray(lengths, dtype=np.int64)[drawn]
        top = int(lens.max()) + 1
        drawn = drawn[np.argsort((np.arange(len(drawn)) // (step * mega)) * top + (top - 1 - lens), kind="stable")]
    perm = drawn.tolist()
    chunks = [perm[s:s + step] for s in range(0, len(perm), step)]
    if group_by_length:
        order = torch.randperm(len(chunks), generator=g).tolist()
        chunks = [chunks[i] for i in order]
    return [local_batch(c, rank, world, batch_size) for c in chunks]


def text_encoders(model: RewardModel, tokenizer, kind: str, data) -> tuple:
    """(renderer, encoder) for the model's head: the judge template read at its last token (models/judge.py) for
    an LM-head judge, else the data config's rendering with the score token appended."""
    if model.spec.head_kind.lm_head:
        return judge_encoders(tokenizer, model.judge_settings, data.max_length, data.truncation)
    return (Renderer(tokenizer, kind, data.template, data.separator),
            SequenceEncoder(tokenizer, kind, data.max_length, data.truncation))


class _Logger:
    """metrics.jsonl + TensorBoard, main process only."""

    def __init__(self, out: Path, enabled: bool, tensorboard: bool, append: bool):
        self.enabled = enabled
        self.file = open(out / "metrics.jsonl", "a" if append else "w", encoding="utf-8") if enabled else None
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tensorboard"))
            except ImportError:
                log.warning("tensorboard is not installed; metrics go to metrics.jsonl only")

    def write(self, step: int, split: str, values: dict) -> None:
        if not self.enabled:
            return
        if "sets" in values:  # several eval sets: one line per set ("eval/NAME"), the driving set's as before
            for name, m in values["sets"].items():
                self.write(step, f"{split}/{name}", m)
            values = {k: v for k, v in values.items() if k != "sets"}
        self.file.write(json.dumps({"step": step, "split": split, **values}) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        if self.file:
            self.file.close()
        if self.tb:
            self.tb.close()


def train(config: RunConfig | str | Path | dict, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train a reward model as ``config`` says; returns the model and its held-out metrics.

    An ``output_dir`` holding a finished run (or checkpoints) is refused unless ``resume`` or ``overwrite``.
    Four parts: :func:`_setup` (model, task, data), :func:`_plan` (every batch of the run), the loop of
    :func:`_micro_batch` and :func:`_optimizer_step`, and :func:`_finish` (final evaluation, save).
    """
    run = _setup(_as_config(config), resume, overwrite)
    plan = _plan(run)
    loop = _start(run, plan)
    while loop.state["step"] < plan.total_steps:
        _micro_batch(run, plan, loop)
        if loop.state["micro_batch"] % plan.tc.grad_accum == 0 and _optimizer_step(run, plan, loop):
            break  # early stopping
    return _save(run, plan, loop, _finish(run, plan, loop))


@dataclass
class _Run:
    """What :func:`_setup` builds once: the configuration, the processes, the model, the task and its data."""

    cfg: RunConfig
    accelerator: object
    out: Path
    model: RewardModel
    tokenizer: object
    kind: str
    padding_side: str
    encoder: SequenceEncoder
    task: Task
    run_data: RunData
    data_summary: dict
    t_start: float
    resume: bool

    @property
    def device(self):
        return self.accelerator.device

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def _setup(cfg: RunConfig, resume: bool, overwrite: bool) -> _Run:
    from accelerate.utils import set_seed

    check_config(cfg)  # early stopping needs eval_every and an eval split: fail before loading anything
    accelerator = make_accelerator()  # also multi-process on CPU (gloo); see training/distributed.py
    out = Path(cfg.output_dir)
    check_output_dir(out, resume, overwrite, bool(list_checkpoints(out / "checkpoints")))  # training/run_dir.py
    set_seed(cfg.train.seed)
    t_start = time.time()
    model, tokenizer, kind = build_model(cfg.model, seed=cfg.train.seed)
    padding_side = "right" if kind == "encoder" else cfg.train.padding_side  # BERT-style pooling reads column 0
    renderer, encoder = text_encoders(model, tokenizer, kind, cfg.data)
    report = SkipReport()
    if cfg.data.train is None:
        raise ValueError("data.train is required for training")
    task = make_task(cfg, model, tokenizer)  # format + loss -> batching, loss, metrics (training/tasks.py)
    main = accelerator.is_main_process
    with accelerator.main_process_first():  # the main process writes the tokenized cache, the others read it
        run_data = load_run_data(cfg, task, renderer, encoder, report, progress=main)  # data/mixture.py, cache.py
    train_items, eval_items = run_data.train, run_data.eval
    train_trunc = _sum_truncation([s["truncation"] for s in run_data.summary["sources"]])
    data_summary = {"train_pairs": len(train_items), "eval_pairs": len(eval_items), "invalid": report.summary(),
                    "train_truncation": train_trunc,  # no eval split: null, not the train counts again
                    "eval_truncation": (run_data.summary["eval_sets"].get(run_data.driver, {}).get(
                        "truncation", _sum_truncation([])) if run_data.summary["eval_sets"] else None),
                    **run_data.summary}
    if main:
        log.info("data: %d train pairs, %d eval pairs; invalid skipped: %d %s", len(train_items), len(eval_items),
                 report.total, dict(report.skipped))
        log.info("over-length (train, policy %s): %s", cfg.data.truncation, train_trunc)
    if not train_items:
        raise ValueError("no training pairs left after validation and the over-length policy")
    if main:  # only now: a run that fails validation leaves an earlier run's config.yaml as it was
        claim_output_dir(out, dump_config(cfg), overwrite)
    return _Run(cfg, accelerator, out, model, tokenizer, kind, padding_side, encoder, task, run_data, data_summary,
                t_start, resume)


@dataclass
class _Plan:
    """Every batch of the run, decided once: packed or padded rows, token budgets, steps per epoch."""

    resolved: Resolved
    tc: TrainConfig
    """``train`` with every ``auto`` resolved (what the loop reads)."""
    lengths: Sequence[int]
    fixed_batches: list[list[int]] | None
    """``train.max_tokens_per_batch``: the same token-budget batches every epoch, in a new order."""
    per_epoch: int
    total_steps: int
    pack_rows: int | None
    pack_cost: float | None
    kind: str
    """``decoder`` or ``encoder``: how packed rows are built."""

    def epoch(self, run: _Run, epoch: int) -> list[LocalBatch]:
        """This process's micro-batches of ``epoch`` with their loss weights."""
        tc, acc = self.tc, run.accelerator
        if self.fixed_batches:
            return [LocalBatch(b, 1.0) for b in shuffled_batches(self.fixed_batches, tc.seed, epoch)]
        return epoch_local_batches(self.lengths, tc.batch_size, tc.seed, epoch, acc.process_index,
                                   acc.num_processes, tc.group_by_length)

    def pieces(self, train_items, idx: list[int]) -> list[list[int]]:
        """The micro-batch ``idx`` cut into forwards of at most ``train.max_tokens_per_forward`` tokens (else
        one), as positions in ``idx``."""
        if not self.tc.max_tokens_per_forward:
            return [list(range(len(idx)))]
        return budget_batches([train_items[i] for i in idx], self.tc.max_tokens_per_forward, self.tc.packing,
                              self.kind, self.pack_cost)

    def collate(self, run: _Run, items: list) -> TaskBatch:
        """The task's batch of ``items`` on the device: packed rows (the prompt once) or padded rows."""
        task, pad_id = run.task, run.tokenizer.pad_token_id
        batch = (task.collate_packed(items, run.kind, pad_id, self.pack_rows, self.pack_cost) if self.tc.packing
                 else task.collate(items, pad_id, run.padding_side))
        return batch.to(run.device)


def _plan(run: _Run) -> _Plan:
    task, acc, model = run.task, run.accelerator, run.model
    world = acc.num_processes
    lengths = train_lengths(task, run.run_data.train)  # the stored length column: no example is decoded
    resolved = resolve_for(run.cfg, model, run.device, pairwise=task.budgets, packs=task.packs, world=world)
    tc = resolved.train_config(run.cfg.train)  # every `auto` decided (training/resolve.py)
    if (tc.packing and not task.packs) or ((tc.max_tokens_per_batch or tc.max_tokens_per_forward) and not task.budgets) \
            or ((tc.packing or tc.max_tokens_per_batch or tc.max_tokens_per_forward) and world > 1):
        raise ValueError("train.packing supports pairwise and ranking losses, train.max_tokens_per_batch and "
                         "train.max_tokens_per_forward pairwise ones; packing and token budgets run on one process")
    check_backend(acc, tc, run.resume)  # what FSDP / DeepSpeed do not support yet: a clear error
    if tc.early_stopping is not None and shards_parameters(acc):
        raise ValueError("train.early_stopping is not supported yet with FSDP or DeepSpeed ZeRO-3 (it keeps a full "
                         "copy of the best weights)")
    pack_rows, pack_cost = tc.pack_row_tokens, None  # (row capacity, share-or-split cost) for the kernel
    if tc.packing:  # the kernel was chosen by resolve_for
        pack_rows, pack_cost = pack_settings(model, tc.pack_row_tokens)
    train_items = run.run_data.train
    fixed = (budget_batches(train_items, tc.max_tokens_per_batch, tc.packing, run.kind, pack_cost)
             if tc.max_tokens_per_batch else None)
    per_epoch = len(fixed) if fixed else math.ceil(len(train_items) / (tc.batch_size * world))
    total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * per_epoch / tc.grad_accum))
    return _Plan(resolved, tc, lengths, fixed, per_epoch, total_steps, pack_rows, pack_cost, run.kind)


@dataclass
class _Loop:
    """The loop's state: ``state`` is what a checkpoint saves, the rest lives in this process only."""

    model: object
    """As prepared by Accelerate (DDP / FSDP / DeepSpeed wrapper, or the model itself)."""
    raw_model: RewardModel
    optimizer: object
    scheduler: object
    logger: _Logger
    stopper: EarlyStopping | None
    state: dict
    guard: NonFiniteGuard
    zero_shot: dict | None = None
    bar: object = None
    t0: float = 0.0
    seen_pairs: int = 0
    loss_acc: list = field(default_factory=list)
    """(loss x examples, examples) per piece since the last logged step."""
    batches: dict = field(default_factory=dict)
    """{epoch: this process's micro-batches}, the current epoch only."""
    step_sources: list = field(default_factory=list)
    """Where the examples of the step being accumulated come from (named when a loss or gradient is not finite)."""
    last_eval: dict | None = None
    """The metrics of the evaluation that stopped training early, if one did."""

    def evaluate(self, run: _Run, plan: _Plan) -> dict:
        """The driving eval set's metrics; several sets also under "sets" (logged apart)."""
        pad_id, batch = run.tokenizer.pad_token_id, plan.tc.eval_batch_size
        return run.run_data.evaluate(lambda items: run.task.evaluate_in_run(
            run.accelerator, self.model, self.raw_model, items, pad_id, run.device, batch))


def _start(run: _Run, plan: _Plan) -> _Loop:
    """Optimizer, scheduler and Accelerate's wrapping; the checkpoint's state on resume; the zero-shot eval."""
    from tqdm.auto import tqdm

    tc, acc = plan.tc, run.accelerator
    optimizer = build_optimizer(run.model, tc)
    scheduler = build_scheduler(optimizer, tc, plan.total_steps)
    model, optimizer = acc.prepare(run.model, optimizer)
    raw_model: RewardModel = acc.unwrap_model(model)
    logger = _Logger(run.out, run.main, tc.tensorboard, append=run.resume)
    state = {"step": 0, "micro_batch": 0, "history": []}
    stopper = EarlyStopping.create(tc.early_stopping, run.task)  # None when off (training/early_stopping.py)
    if run.resume:
        ckpt_root = run.out / "checkpoints"
        found = list_checkpoints(ckpt_root)
        if not found:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {ckpt_root}")
        # verified against its manifest; a damaged one is skipped with a warning for the one before (manifest.py)
        path, state = resume_checkpoint(found, MARKER, lambda p: load_checkpoint(p, raw_model, optimizer, scheduler))
        if stopper is not None:
            stopper.load(state.get("early_stopping"), path)
        log.info("resumed from %s at step %d", path, state["step"])
    loop = _Loop(model, raw_model, optimizer, scheduler, logger, stopper, state,
                 NonFiniteGuard.from_state(tc.on_nonfinite, state.get("nonfinite")), state.get("zero_shot"))
    if run.run_data.eval and tc.eval_zero_shot and loop.zero_shot is None:
        loop.zero_shot = state["zero_shot"] = loop.evaluate(run, plan)
        logger.write(0, "eval_zero_shot", loop.zero_shot)
        if stopper is not None:
            stopper.check_metric(loop.zero_shot)  # an unknown selection metric fails before training
    loop.bar = tqdm(total=plan.total_steps, initial=state["step"], desc="train", disable=not run.main,
                    dynamic_ncols=True)
    model.train()
    loop.t0 = time.time()
    return loop


def _micro_batch(run: _Run, plan: _Plan, loop: _Loop) -> None:
    """Forward and backward of the next micro-batch (in pieces under ``train.max_tokens_per_forward``)."""
    tc, acc, state, train_items = plan.tc, run.accelerator, loop.state, run.run_data.train
    world = acc.num_processes
    epoch, index = divmod(state["micro_batch"], plan.per_epoch)
    if epoch not in loop.batches:
        loop.batches = {epoch: plan.epoch(run, epoch)}
    local = loop.batches[epoch][index]  # weight: this process's share of the global batch (0 for a repeat)
    idx = local.indices
    sync = (state["micro_batch"] + 1) % tc.grad_accum == 0
    for piece in plan.pieces(train_items, idx):
        chunk = [train_items[idx[j]] for j in piece]
        share = len(piece) / len(idx)  # the piece's part of the micro-batch's mean loss
        batch = plan.collate(run, chunk)
        with acc.no_sync(loop.model) if not sync and world > 1 else contextlib.nullcontext():
            with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=plan.resolved.precision == "bf16"):
                out = loop.model(batch.tokens, full=True)
            loss = run.task.loss(out, batch)  # fp32 inside (training/tasks.py)
            sources = [p.where for p in chunk]
            loss_ok = loop.guard.ok(loss, "loss", state["step"] + 1, state["micro_batch"], sources, acc)
            if loss_ok:
                acc.backward(loss * (share * local.weight / tc.grad_accum))
                loop.step_sources += sources
        if loss_ok and local.weight:
            loop.loss_acc.append((loss.item() * len(piece), len(piece)))
        loop.seen_pairs += len(chunk) * world
    state["micro_batch"] += 1


def _optimizer_step(run: _Run, plan: _Plan, loop: _Loop) -> bool:
    """The update after ``train.grad_accum`` micro-batches, then logging, evaluation and checkpoints as due.
    True: early stopping ends training here."""
    tc, acc, state, guard, optimizer = plan.tc, run.accelerator, loop.state, loop.guard, loop.optimizer
    if tc.max_grad_norm:
        norm = acc.clip_grad_norm_(loop.model.parameters(), tc.max_grad_norm)
        if norm is not None and not guard.ok(grad_norm_tensor(norm), "gradient norm", state["step"] + 1,
                                             state["micro_batch"] - 1, loop.step_sources, acc):
            optimizer.zero_grad(set_to_none=True)  # no update from this step's batches
    loop.step_sources = []
    state["nonfinite"] = guard.state()
    optimizer.step()
    loop.scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    state["step"] += 1
    step, last = state["step"], state["step"] == plan.total_steps
    rate = loop.seen_pairs / max(time.time() - loop.t0, 1e-9)
    # mean over every process's pairs (a collective: every process runs it); None: every batch was skipped
    mean_loss = global_mean_loss(acc, [x for x, _ in loop.loss_acc], [n for _, n in loop.loss_acc])
    mean_loss = None if math.isnan(mean_loss) else mean_loss
    loop.bar.set_postfix(loss=f"{mean_loss:.4f}" if mean_loss is not None else "skipped", pairs_s=f"{rate:.1f}")
    loop.bar.update(1)
    if step % tc.log_every == 0 or last:
        loop.logger.write(step, "train", {"loss": mean_loss, "lr": loop.scheduler.get_last_lr()[0],
                                          "pairs_per_s": rate})
        loop.loss_acc = []
    if run.run_data.eval and tc.eval_every and step % tc.eval_every == 0 and not last:
        m = loop.evaluate(run, plan)
        loop.logger.write(step, "eval", m)
        if run.main:
            loop.bar.write(f"step {step}: eval {run.task.primary} {m.get(run.task.primary)} loss {m.get('loss')}")
        if loop.stopper is not None:
            stop = loop.stopper.update(step, m, loop.raw_model)
            state["early_stopping"] = loop.stopper.state()
            if stop:
                loop.last_eval = m
                return True
    if tc.save_every and step % tc.save_every == 0 and not last:
        acc.wait_for_everyone()
        if run.main:
            save_checkpoint(run.out / "checkpoints", step, loop.raw_model, optimizer, loop.scheduler, state,
                            tc.keep_last, loop.stopper.write if loop.stopper is not None else None)
    return False


def _finish(run: _Run, plan: _Plan, loop: _Loop) -> dict:
    """The final evaluation (the best one's weights restored under early stopping) and the run's summary."""
    loop.bar.close()
    train_seconds = time.time() - loop.t0
    state, stopper, last_eval, eval_items = loop.state, loop.stopper, loop.last_eval, run.run_data.eval
    final = last_eval if last_eval is not None else (loop.evaluate(run, plan) if eval_items else {})
    if final and last_eval is None:
        loop.logger.write(state["step"], "eval", final)
    early = None
    if stopper is not None and final:  # restore the best evaluation's weights: they are what is saved
        final, early = stopper.finish(state["step"], final, loop.raw_model, evaluated=last_eval is not None)
        loop.logger.write(stopper.best_step, "eval_selected", final)
    summary = {"eval": final, "zero_shot": loop.zero_shot,
               "longer_wins": run.task.baseline(eval_items) if eval_items else None,
               "data": run.data_summary, "steps": state["step"], "train_seconds": round(train_seconds, 1),
               "total_seconds": round(time.time() - run.t_start, 1), "precision": plan.resolved.precision,
               "resolved": plan.resolved.to_dict(), "nonfinite": loop.guard.state()}
    if early is not None:  # "eval" is then the selected (best) evaluation's, the saved model's
        summary["early_stopping"] = early
    return summary


def _save(run: _Run, plan: _Plan, loop: _Loop, summary: dict) -> TrainResult:
    """The model (gathered first when sharded) and summary.json; the trained model as a ready scorer."""
    cfg, acc, raw_model, early = run.cfg, run.accelerator, loop.raw_model, summary.get("early_stopping")
    meta = run.task.annotate_meta(build_meta(  # annotate: a task's own rendering, e.g. the step task's step token
        raw_model, run.tokenizer, cfg.data, cfg.model.name, score_token_id=run.encoder.score_token_id, training={
            "steps": loop.state["step"], "loss": cfg.loss.name, "eval": summary["eval"],
            **({"best_step": early["best_step"]} if early else {})}))
    acc.wait_for_everyone()
    sharded = shards_parameters(acc)
    full = full_state_dict(acc, loop.model) if sharded else None  # FSDP / ZeRO-3: gathered, collective
    if run.main:
        saved = raw_model
        if sharded:  # no process holds the weights: load the gathered ones into a plain copy to save them
            saved = build_model(cfg.model, seed=plan.tc.seed)[0]
            saved.load_state_dict(full)
        saved.save_pretrained(run.out / "model", run.tokenizer, meta)
        (run.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    loop.logger.close()
    acc.wait_for_everyone()
    scorer = (Scorer.from_pretrained(run.out / "model", device=run.device) if sharded else
              Scorer(raw_model, run.tokenizer, meta, device=run.device))
    return TrainResult(scorer=scorer, metrics=summary, output_dir=run.out)


def _sum_truncation(parts: list[dict]) -> dict:
    keys = ["sequences", "prompt_truncated", "response_truncated", "dropped"]
    keys += sorted({k for p in parts for k in p} - set(keys))  # a task's own counts too (steps, solutions ...)
    return {k: sum(p.get(k, 0) for p in parts) for k in keys}


def _as_config(config) -> RunConfig:
    if isinstance(config, RunConfig):
        from ..config_ranges import check_ranges

        check_ranges(config)  # a RunConfig built in Python skipped load_config's range checks
        return config
    if isinstance(config, dict):
        return load_config(None, None, base=config)
    return load_config(config)

