"""The process reward model task: step-level data -> a score at the end of every step (``head: step``).

=====================  ===========  =====================================  ========================================
loss                   data format  head                                   metrics
=====================  ===========  =====================================  ========================================
step_bce, step_ce      steps        step (decoders; 1 logit or 2 classes)  step accuracy/AUC/F1, earliest-error
                                                                           (ProcessBench), best-of-N, loss
=====================  ===========  =====================================  ========================================

Batches are padded rows (one solution per row, the step ends recorded per row); ``train.packing`` is refused
for this task (the packed read-out reads one score token per branch).
"""

from __future__ import annotations

import dataclasses

import torch

from ..config import DataConfig, RunConfig, SplitConfig
from ..data.errors import SkipReport
from ..data.step_tokenize import EncodedSteps, StepDropped, StepEncoder, add_step_token
from ..data.steps import Stepwise, load_steps
from ..eval.step_metrics import flat_step_metrics, step_metrics
from ..losses import step_bce, step_ce
from ..models.heads import RewardOutput
from ..models.step_readout import gather_steps
from ..step_scoring import score_step_sequences, step_batch
from .tasks import Task, TaskBatch


class StepTask(Task):
    """Step labels -> masked step BCE (1 logit) or CE (2 classes) at each step's end token."""

    format = "steps"
    cacheable = False  # data/cache.py has no columns for step items: tokenized in memory each run

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        want = 1 if cfg.loss.name == "step_bce" else 2
        if cfg.model.head != "step" or cfg.model.step_outputs != want:
            raise ValueError(f"loss {cfg.loss.name} needs model.head step with model.step_outputs {want} "
                             f"(got head {cfg.model.head}, step_outputs {cfg.model.step_outputs})")
        weights = cfg.loss.class_weights
        if weights is not None and len(weights) != 2:
            raise ValueError(f"loss.class_weights needs 2 weights [wrong, right], got {weights}")
        self.class_weights = torch.tensor(weights) if weights is not None else None
        self.steps_cfg = cfg.data.steps
        self.step_token_id: int | None = None

    def prepare_model(self, model, tokenizer) -> None:
        """Add ``data.steps.step_token`` to the tokenizer and an embedding row for it to the model."""
        self.step_token_id = add_step_token(tokenizer, self.steps_cfg, model.transformer)

    def load(self, split: SplitConfig, data: DataConfig, report: SkipReport) -> list[Stepwise]:
        return load_steps(split, data, report)

    def encode(self, examples: list[Stepwise], renderer, encoder) -> list[EncodedSteps]:
        steps = StepEncoder(encoder.tokenizer, renderer, self.steps_cfg, encoder.max_length)
        steps.stats.counts = encoder.stats.counts  # one truncation report for the run
        out = []
        for ex in examples:
            try:
                item = steps.encode(ex)
            except StepDropped:
                continue
            if any(y is not None for y in item.labels) or ex.correct is not None:
                out.append(item)
        return out

    def length(self, item: EncodedSteps) -> int:
        return len(item.input_ids)

    def collate(self, items: list[EncodedSteps], pad_id: int, side: str) -> TaskBatch:
        tokens, index = step_batch(items, pad_id, side)
        labels = torch.full(index.shape, -1, dtype=torch.long)
        for i, x in enumerate(items):
            labels[i, :len(x.labels)] = torch.tensor([-1 if y is None else y for y in x.labels])
        return TaskBatch(tokens, {"step_index": index, "step_labels": labels})

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        if out.token_logits is None:
            raise ValueError("the step losses need model.head step")
        z = gather_steps(out.token_logits, batch.targets["step_index"])  # [N, S, C]
        labels = batch.targets["step_labels"]
        if z.shape[-1] == 1:
            return step_bce(z[..., 0], labels, self.loss_cfg.step_target, self.class_weights)
        return step_ce(z, labels, self.loss_cfg.step_target, self.class_weights)

    def evaluate(self, model, items: list[EncodedSteps], pad_id: int, device, batch_size: int) -> dict:
        probs = score_step_sequences(model, items, pad_id, device, max_batch=batch_size)
        labels = [x.labels for x in items]
        m = flat_step_metrics(step_metrics(probs, labels, [x.correct for x in items], [x.group for x in items],
                                           [x.answer for x in items]))
        p = torch.tensor([v for ps in probs for v in ps], dtype=torch.float64).clamp(1e-7, 1 - 1e-7)
        y = torch.tensor([-1 if t is None else t for ls in labels for t in ls])
        keep = y >= 0
        m["loss"] = float(-(y[keep] * p[keep].log() + (1 - y[keep]) * (1 - p[keep]).log()).mean()) if keep.any() else None
        return m

    def annotate_meta(self, meta):
        """The step rendering and read-out travel with the weights (``rewardkit.json``)."""
        s = self.steps_cfg
        return dataclasses.replace(meta, steps={"separator": s.separator, "step_token": s.step_token,
                                                "step_token_id": self.step_token_id, "truncation": s.truncation})
