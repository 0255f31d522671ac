"""Early stopping: select the model on the evaluation split, in the training run itself.

Every evaluation (every ``train.eval_every`` steps, and the final one) is compared with the best so far on one
metric; the best evaluation's weights are kept (a CPU copy of the state dict), and at the end of the run they
are restored, so what is saved as ``RUN/model`` is the best evaluation's model. With ``patience`` P, training
stops after P evaluations in a row without an improvement. The zero-shot evaluation (step 0) is a baseline, not a
candidate: the saved model has always trained.

The evaluation split then *selects* the model, so it is a development split: report final figures on a third,
held-out split that neither training nor selection read (benchmarks/recipes_real_data.py ``--select-steps``
uses the last 20% of the training records).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import ConfigError, EarlyStoppingConfig, RunConfig
from ..eval.format_metrics import LOWER_IS_BETTER, lower_is_better  # noqa: F401  (LOWER_IS_BETTER: old home)

log = logging.getLogger(__name__)

BEST_FILE = "early_stopping_best.safetensors"


def check_config(cfg: RunConfig) -> None:
    """Refuse early stopping without what it needs (before any model is loaded)."""
    es = cfg.train.early_stopping
    if es is None:
        return
    if not cfg.train.eval_every:
        raise ConfigError("train.early_stopping needs train.eval_every (evaluate every N steps to select on)")
    if cfg.data.eval is None:
        raise ConfigError("train.early_stopping needs data.eval: a development split to select on (not the final "
                          "test split, which must stay unseen by the selection)")
    if es.patience is not None and es.patience < 1:
        raise ConfigError(f"train.early_stopping.patience must be at least 1 evaluation (or null), got {es.patience}")
    if es.min_delta < 0:
        raise ConfigError(f"train.early_stopping.min_delta must be >= 0, got {es.min_delta}")


def selection_metric(cfg: EarlyStoppingConfig, task) -> tuple[str, str]:
    """(metric, mode): ``auto`` is the task's selection metric (pair accuracy, AUC, Pearson ...), the mode
    follows from the metric's name (losses and errors are minimised)."""
    metric = cfg.metric if cfg.metric != "auto" else getattr(task, "selection_metric", None) or task.primary
    mode = cfg.mode if cfg.mode != "auto" else ("min" if lower_is_better(metric) else "max")
    return metric, mode


@dataclass
class EarlyStopping:
    metric: str
    mode: str
    patience: int | None
    min_delta: float = 0.0
    best: float | None = None
    best_step: int | None = None
    best_metrics: dict | None = None
    since_best: int = 0
    """Evaluations since the best one."""
    evaluations: int = 0
    stopped_at: int | None = None
    weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def create(cls, cfg: EarlyStoppingConfig | None, task) -> EarlyStopping | None:
        if cfg is None:
            return None
        metric, mode = selection_metric(cfg, task)
        return cls(metric, mode, cfg.patience, cfg.min_delta)

    def check_metric(self, metrics: dict) -> None:
        """Fail naming the metrics there are when the selection metric is not one of them."""
        value = metrics.get(self.metric)
        if self.metric not in metrics or not (value is None or isinstance(value, (int, float))):
            known = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool))
            raise ConfigError(f"train.early_stopping.metric {self.metric!r} is not an evaluation metric of this task "
                              f"(it has: {', '.join(known)})")

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best + self.min_delta if self.mode == "max" else value < self.best - self.min_delta

    def update(self, step: int, metrics: dict, model: torch.nn.Module) -> bool:
        """Record one evaluation (keeping the weights if it is the best so far); True when training should stop."""
        self.check_metric(metrics)
        value = metrics[self.metric]
        self.evaluations += 1
        if value is not None and not math.isnan(value) and self._better(float(value)):
            self.best, self.best_step, self.best_metrics, self.since_best = float(value), step, dict(metrics), 0
            # a CPU copy: the best weights survive the steps that follow (on an accelerator it costs host memory)
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.since_best += 1
        if self.patience is not None and self.since_best >= self.patience:
            self.stopped_at = step
            return True
        return False

    def restore(self, model: torch.nn.Module) -> dict | None:
        """Load the best evaluation's weights into ``model``; returns that evaluation's metrics."""
        if self.weights is not None:
            model.load_state_dict(self.weights)
        return self.best_metrics

    def finish(self, step: int, last: dict, model: torch.nn.Module, evaluated: bool) -> tuple[dict, dict]:
        """End of training at ``step`` with its evaluation ``last`` (already recorded when ``evaluated``, i.e.
        training stopped early): restore the best weights; returns (the best evaluation's metrics, the record
        for summary.json)."""
        if not evaluated:
            self.update(step, last, model)
        best = self.restore(model) or last  # no evaluation had a finite metric: the last model stays
        log.info("early stopping: best %s %s at step %s (of %d%s); its weights are the saved model", self.metric,
                 self.best, self.best_step, step, ", stopped early" if self.stopped_at is not None else "")
        return best, {**self.summary(step), "last_eval": last}

    def summary(self, last_step: int) -> dict:
        return {"metric": self.metric, "mode": self.mode, "patience": self.patience, "min_delta": self.min_delta,
                "best_step": self.best_step, "best": self.best, "evaluations": self.evaluations,
                "stopped_early": self.stopped_at is not None, "last_step": last_step}

    # -- resumable: the state in trainer_state.json, the best weights beside the checkpoint's -----------------
    def state(self) -> dict:
        return {"best": self.best, "best_step": self.best_step, "best_metrics": self.best_metrics,
                "since_best": self.since_best, "evaluations": self.evaluations}

    def write(self, directory: Path) -> None:
        from safetensors.torch import save_file

        if self.weights is not None:
            save_file({k: v.contiguous() for k, v in self.weights.items()}, str(Path(directory, BEST_FILE)))

    def load(self, state: dict | None, directory: Path) -> None:
        from safetensors.torch import load_file

        if not state:
            return
        for key in ("best", "best_step", "best_metrics", "since_best", "evaluations"):
            setattr(self, key, state.get(key))
        path = Path(directory, BEST_FILE)
        if self.best_step is not None:
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing; the checkpoint's early-stopping state has a best step "
                                        f"({self.best_step}) but not its weights")
            self.weights = load_file(str(path))
