"""The training loop: explicit, on Accelerate (DDP, FSDP and DeepSpeed come from there).

One forward per micro-batch runs chosen and rejected together::

    tokens.input_ids  [2B, L]   rows 0..B-1 chosen, rows B..2B-1 rejected
    rewards           [2B]      read at each row's score token
    loss = bradley_terry(rewards[:B], rewards[B:], margin)     # fp32
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import RunConfig, dump_config, load_config
from ..data.collate import pair_batch
from ..data.dataset import EncodedPair
from ..data.errors import SkipReport
from ..data.mixture import load_run_data, train_lengths
from ..data.packing import budget_batches, packed_pair_batch, shuffled_batches
from ..data.render import Renderer
from ..data.tokenize import SequenceEncoder
from ..eval.metrics import longer_wins_baseline, pair_calibration, pairwise_auc, pairwise_metrics
from ..losses import get_pairwise_loss
from ..models.judge import judge_encoders
from ..models.packed import pack_settings
from ..models.reward_model import RewardModel, build_meta, build_model
from ..scoring import Scorer, score_sequences
from .checkpoint import MARKER, list_checkpoints, load_checkpoint, save_checkpoint
from .distributed import (
    LocalBatch,
    check_backend,
    eval_model,
    full_state_dict,
    global_mean_loss,
    grad_norm_tensor,
    local_batch,
    make_accelerator,
    score_pairs_sharded,
    shards_parameters,
)
from .early_stopping import EarlyStopping, check_config
from .ensemble_step import ensemble_pair_loss, is_ensemble
from .manifest import resume_checkpoint
from .nonfinite import NonFiniteGuard
from .optim import build_optimizer, build_scheduler
from .resolve import bf16_is_fast, resolve_for  # noqa: F401  (bf16_is_fast: public name kept here)
from .run_dir import check_output_dir, claim_output_dir
from .tasks import PairTask, make_task

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


def evaluate_pairs(model: RewardModel, pairs: list[EncodedPair], pad_id: int, device, batch_pairs: int,
                   accelerator=None) -> dict:
    """Pairwise metrics; with several processes each scores its shard and every pair counts once."""
    n = len(pairs)
    if accelerator is not None and accelerator.num_processes > 1:
        chosen, rejected = score_pairs_sharded(accelerator, model, pairs, pad_id, batch_pairs)
        rewards = chosen + rejected
    else:
        seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        rewards = score_sequences(model, seqs, pad_id, device, max_tokens=batch_pairs * 2 * 512,
                                  max_batch=batch_pairs * 2)
    m = pairwise_metrics(rewards[:n], rewards[n:])
    if n:  # both O(n log n) on rewards already computed: cheap next to the forward passes
        m["auc"] = pairwise_auc(rewards[:n], rewards[n:])
        m["ece"] = pair_calibration(rewards[:n], rewards[n:])["ece"]
    return m


def pair_loss(out, batch, margins: list[float], chunk: list[EncodedPair], loss_fn, task: PairTask, cfg: RunConfig,
              ensemble: bool) -> torch.Tensor:
    """The trainer's pairwise step loss on ``out`` (rewards [2B], or the full output for an ensemble), fp32."""
    b = batch.num_pairs
    margin = batch.margin if any(m != 0 for m in margins) else None
    if ensemble:  # the K heads' rewards [2B, K], each pair weighted per head by its bootstrap count
        rewards, loss = ensemble_pair_loss(out, [p.where for p in chunk], b, margin, cfg)
    else:
        rewards = out.float()  # the loss in fp32: bf16 log-sigmoid loses small margins
        loss = loss_fn(rewards[:b], rewards[b:], margin)
    if cfg.loss.centering or cfg.loss.l2:
        loss = loss + task.pair_regularizers(rewards[:b], rewards[b:])
    return loss


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
    """Train a pairwise reward model as ``config`` says; returns the model and its held-out metrics.

    An ``output_dir`` holding a finished run (or checkpoints) is refused unless ``resume`` or ``overwrite``.
    """
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    cfg = _as_config(config)
    tc = cfg.train
    check_config(cfg)  # early stopping needs eval_every and an eval split: fail before loading anything
    accelerator = make_accelerator()  # also multi-process on CPU (gloo); see training/distributed.py
    device, main = accelerator.device, accelerator.is_main_process
    out = Path(cfg.output_dir)
    check_output_dir(out, resume, overwrite, bool(list_checkpoints(out / "checkpoints")))  # training/run_dir.py
    set_seed(tc.seed)
    t_start = time.time()

    model, tokenizer, kind = build_model(cfg.model, seed=tc.seed)
    padding_side = "right" if kind == "encoder" else tc.padding_side  # BERT-style pooling reads column 0
    renderer, encoder = text_encoders(model, tokenizer, kind, cfg.data)
    report = SkipReport()
    if cfg.data.train is None:
        raise ValueError("data.train is required for training")
    task = make_task(cfg, model, tokenizer)  # format + loss -> batching, loss, metrics (training/tasks.py)
    pairwise = isinstance(task, PairTask) and task.in_trainer
    ensemble = is_ensemble(cfg, pairwise)  # K heads, each its own bootstrap resample (training/ensemble_step.py)
    with accelerator.main_process_first():  # the main process writes the tokenized cache, the others read it
        run_data = load_run_data(cfg, task, renderer, encoder, report, progress=main)  # data/mixture.py, cache.py
    train_pairs, eval_pairs = run_data.train, run_data.eval
    train_trunc = _sum_truncation([s["truncation"] for s in run_data.summary["sources"]])
    data_summary = {"train_pairs": len(train_pairs), "eval_pairs": len(eval_pairs), "invalid": report.summary(),
                    "train_truncation": train_trunc,  # no eval split: null, not the train counts again
                    "eval_truncation": (run_data.summary["eval_sets"].get(run_data.driver, {}).get(
                        "truncation", _sum_truncation([])) if run_data.summary["eval_sets"] else None),
                    **run_data.summary}
    if main:
        log.info("data: %d train pairs, %d eval pairs; invalid skipped: %d %s", len(train_pairs), len(eval_pairs),
                 report.total, dict(report.skipped))
        log.info("over-length (train, policy %s): %s", cfg.data.truncation, train_trunc)
    if not train_pairs:
        raise ValueError("no training pairs left after validation and the over-length policy")
    if main:  # only now: a run that fails validation leaves an earlier run's config.yaml as it was
        claim_output_dir(out, dump_config(cfg), overwrite)

    world, rank = accelerator.num_processes, accelerator.process_index
    lengths = train_lengths(task, train_pairs)  # the stored length column: no example is decoded
    resolved = resolve_for(cfg, model, device, pairwise=pairwise, packs=task.packs, world=world)  # every `auto`
    tc, use_bf16 = resolved.train_config(tc), resolved.precision == "bf16"
    if (tc.packing and not (pairwise or task.packs)) or \
            ((tc.max_tokens_per_batch or tc.max_tokens_per_forward) and not pairwise) or \
            ((tc.packing or tc.max_tokens_per_batch or tc.max_tokens_per_forward) and world > 1):
        raise ValueError("train.packing supports pairwise and ranking losses, train.max_tokens_per_batch and "
                         "train.max_tokens_per_forward pairwise ones; packing and token budgets run on one process")
    check_backend(accelerator, tc, resume)  # what FSDP / DeepSpeed do not support yet: a clear error
    if tc.early_stopping is not None and shards_parameters(accelerator):
        raise ValueError("train.early_stopping is not supported yet with FSDP or DeepSpeed ZeRO-3 (it keeps a full "
                         "copy of the best weights)")
    pack_rows, pack_cost = tc.pack_row_tokens, None  # (row capacity, share-or-split cost) for the kernel
    if tc.packing:  # the kernel was chosen by resolve_for (training/resolve.py)
        pack_rows, pack_cost = pack_settings(model, tc.pack_row_tokens)
    fixed_batches = (budget_batches(train_pairs, tc.max_tokens_per_batch, tc.packing, kind, pack_cost)
                     if tc.max_tokens_per_batch else None)
    per_epoch = len(fixed_batches) if fixed_batches else math.ceil(len(train_pairs) / (tc.batch_size * world))
    total_steps = tc.max_steps or max(1, math.ceil(tc.epochs * per_epoch / tc.grad_accum))
    optimizer = build_optimizer(model, tc)
    scheduler = build_scheduler(optimizer, tc, total_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model: RewardModel = accelerator.unwrap_model(model)
    loss_fn = get_pairwise_loss(cfg.loss.name) if pairwise else None

    def collate(chunk) -> tuple:
        """(batch on the device, margins or None) for a list of training examples."""
        if not pairwise:  # ranked lists pack with the prompt once and the K responses as branches
            batch = (task.collate_packed(chunk, kind, pad_id, pack_rows, pack_cost) if tc.packing
                     else task.collate(chunk, pad_id, padding_side))
            return batch.to(device), None
        margins = [p.margin if (p.margin is not None and cfg.loss.use_margin_field) else cfg.loss.margin
                   for p in chunk]
        chosen, rejected = [p.chosen for p in chunk], [p.rejected for p in chunk]
        batch = (packed_pair_batch(chosen, rejected, margins, kind, pad_id, pack_rows, pack_cost) if tc.packing
                 else pair_batch(chosen, rejected, margins, pad_id, padding_side))  # packed: prompt once
        return batch.to(device), margins

    def evaluate_one(items) -> dict:
        if isinstance(task, PairTask):
            return evaluate_pairs(eval_model(accelerator, model, raw_model), items, pad_id, device,
                                  tc.eval_batch_size, accelerator)
        return task.evaluate(raw_model, items, pad_id, device, tc.eval_batch_size)

    def evaluate() -> dict:  # the driving eval set's metrics; several sets also under "sets" (logged apart)
        return run_data.evaluate(evaluate_one)
    pad_id = tokenizer.pad_token_id
    logger = _Logger(out, main, tc.tensorboard, append=resume)

    state = {"step": 0, "micro_batch": 0, "history": []}
    ckpt_root = out / "checkpoints"
    stopper = EarlyStopping.create(tc.early_stopping, task)  # None when off (training/early_stopping.py)
    if resume:
        found = list_checkpoints(ckpt_root)
        if not found:
            raise FileNotFoundError(f"--resume: no complete checkpoint under {ckpt_root}")
        # verified against its manifest; a damaged one is skipped with a warning for the one before (manifest.py)
        path, state = resume_checkpoint(found, MARKER, lambda p: load_checkpoint(p, raw_model, optimizer, scheduler))
        if stopper is not None:
            stopper.load(state.get("early_stopping"), path)
        log.info("resumed from %s at step %d", path, state["step"])

    baseline = (longer_wins_baseline([p.chosen_chars for p in eval_pairs], [p.rejected_chars for p in eval_pairs])
                if isinstance(task, PairTask) else None)
    zero_shot = state.get("zero_shot")
    if eval_pairs and tc.eval_zero_shot and zero_shot is None:
        zero_shot = evaluate()
        state["zero_shot"] = zero_shot
        logger.write(0, "eval_zero_shot", zero_shot)
        if stopper is not None:
            stopper.check_metric(zero_shot)  # an unknown selection metric fails before training

    bar = tqdm(total=total_steps, initial=state["step"], desc="train", disable=not main, dynamic_ncols=True)
    model.train()
    seen_pairs, t0, loss_acc = 0, time.time(), []
    batches_cache: dict[int, list[LocalBatch]] = {}
    guard = NonFiniteGuard.from_state(tc.on_nonfinite, state.get("nonfinite"))
    step_sources: list[str] = []
    last_eval = None  # the metrics of the evaluation that stopped training early, if one did
    while state["step"] < total_steps:
        epoch, index = divmod(state["micro_batch"], per_epoch)
        if epoch not in batches_cache:
            batches_cache = {epoch: [LocalBatch(b, 1.0) for b in shuffled_batches(fixed_batches, tc.seed, epoch)]
                             if fixed_batches else epoch_local_batches(lengths, tc.batch_size, tc.seed, epoch, rank,
                                                                       world, tc.group_by_length)}
        local = batches_cache[epoch][index]  # weight: this process's share of the global batch (0 for a repeat)
        idx = local.indices
        sync = (state["micro_batch"] + 1) % tc.grad_accum == 0
        pieces = (budget_batches([train_pairs[i] for i in idx], tc.max_tokens_per_forward, tc.packing, kind, pack_cost)
                  if tc.max_tokens_per_forward else [list(range(len(idx)))])
        for piece in pieces:  # one piece unless train.max_tokens_per_forward cuts the micro-batch
            chunk = [train_pairs[idx[j]] for j in piece]
            share = len(piece) / len(idx)  # the piece's part of the micro-batch's mean loss
            batch, margins = collate(chunk)
            with accelerator.no_sync(model) if not sync and world > 1 else contextlib.nullcontext():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    rewards = model(batch.tokens, full=not pairwise or ensemble)
                if pairwise:
                    b = batch.num_pairs
                    loss = pair_loss(rewards, batch, margins, chunk, loss_fn, task, cfg, ensemble)
                else:
                    b = len(chunk)
                    loss = task.loss(rewards, batch)  # rewards: the full RewardOutput here; fp32 inside
                sources = [p.where for p in chunk]
                loss_ok = guard.ok(loss, "loss", state["step"] + 1, state["micro_batch"], sources, accelerator)
                if loss_ok:
                    accelerator.backward(loss * (share * local.weight / tc.grad_accum))
                    step_sources += sources
            if loss_ok and local.weight:
                loss_acc.append((loss.item() * len(piece), len(piece)))
            seen_pairs += b * world
        state["micro_batch"] += 1
        if not sync:
            continue
        if tc.max_grad_norm:
            norm = accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            if norm is not None and not guard.ok(grad_norm_tensor(norm), "gradient norm", state["step"] + 1, state["micro_batch"] - 1,
                            step_sources, accelerator):
                optimizer.zero_grad(set_to_none=True)  # no update from this step's batches
        step_sources = []
        state["nonfinite"] = guard.state()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        step = state["step"]
        rate = seen_pairs / max(time.time() - t0, 1e-9)
        # mean over every process's pairs (a collective: every process runs it); None: every batch was skipped
        mean_loss = global_mean_loss(accelerator, [x for x, _ in loss_acc], [n for _, n in loss_acc])
        mean_loss = None if math.isnan(mean_loss) else mean_loss
        bar.set_postfix(loss=f"{mean_loss:.4f}" if mean_loss is not None else "skipped", pairs_s=f"{rate:.1f}")
        bar.update(1)
        if step % tc.log_every == 0 or step == total_steps:
            logger.write(step, "train", {"loss": mean_loss, "lr": scheduler.get_last_lr()[0], "pairs_per_s": rate})
            loss_acc = []
        if eval_pairs and tc.eval_every and step % tc.eval_every == 0 and step != total_steps:
            m = evaluate()
            logger.write(step, "eval", m)
            if main:
                bar.write(f"step {step}: eval {task.primary} {m.get(task.primary)} loss {m.get('loss')}")
            if stopper is not None:
                stop = stopper.update(step, m, raw_model)
                state["early_stopping"] = stopper.state()
                if stop:
                    last_eval = m
                    break
        if tc.save_every and step % tc.save_every == 0 and step != total_steps:
            accelerator.wait_for_everyone()
            if main:
                save_checkpoint(ckpt_root, step, raw_model, optimizer, scheduler, state, tc.keep_last,
                                stopper.write if stopper is not None else None)
    bar.close()
    train_seconds = time.time() - t0

    final = last_eval if last_eval is not None else (evaluate() if eval_pairs else {})
    if final and last_eval is None:
        logger.write(state["step"], "eval", final)
    early = None
    if stopper is not None and final:  # restore the best evaluation's weights: they are what is saved
        final, early = stopper.finish(state["step"], final, raw_model, evaluated=last_eval is not None)
        logger.write(stopper.best_step, "eval_selected", final)
    meta = task.annotate_meta(build_meta(  # annotate: a task's own rendering, e.g. the step task's step token
        raw_model, tokenizer, cfg.data, cfg.model.name, score_token_id=encoder.score_token_id, training={
            "steps": state["step"], "loss": cfg.loss.name, "eval": final, **({"best_step": early["best_step"]} if early else {})}))
    summary = {"eval": final, "zero_shot": zero_shot, "longer_wins": baseline if eval_pairs else None,
               "data": data_summary, "steps": state["step"], "train_seconds": round(train_seconds, 1),
               "total_seconds": round(time.time() - t_start, 1), "precision": resolved.precision,
               "resolved": resolved.to_dict(), "nonfinite": guard.state()}
    if early is not None:  # "eval" is then the selected (best) evaluation's, the saved model's
        summary["early_stopping"] = early
    accelerator.wait_for_everyone()
    sharded = shards_parameters(accelerator)
    full = full_state_dict(accelerator, model) if sharded else None  # FSDP / ZeRO-3: gathered, collective
    if main:
        saved = raw_model
        if sharded:  # no process holds the weights: load the gathered ones into a plain copy to save them
            saved = build_model(cfg.model, seed=tc.seed)[0]
            saved.load_state_dict(full)
        saved.save_pretrained(out / "model", tokenizer, meta)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.close()
    accelerator.wait_for_everyone()
    scorer = (Scorer.from_pretrained(out / "model", device=device) if sharded else
              Scorer(raw_model, tokenizer, meta, device=device))
    return TrainResult(scorer=scorer, metrics=summary, output_dir=out)


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

