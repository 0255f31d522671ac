"""A whole training run as the CLI and ``rewardkit.train`` start it: the trainer, then the stages that work on
the saved model (the ``attribute_weights`` section: fit the learned weighting of a multi-attribute head)."""

from __future__ import annotations

from .trainer import TrainResult, _as_config, train


def run_training(config, resume: bool = False) -> TrainResult:
    """``config``: a :class:`~rewardkit.config.RunConfig`, a YAML path or a dict."""
    cfg = _as_config(config)
    result = train(cfg, resume=resume)
    if cfg.attribute_weights is not None:  # stage 2 of weighting: learned, on the saved model (main process)
        from .attribute_weights import run_weight_stage

        run_weight_stage(cfg.attribute_weights, result)
    return result
