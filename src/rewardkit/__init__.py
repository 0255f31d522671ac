"""rewardkit: train, evaluate and serve reward models for RLHF.

>>> import rewardkit
>>> result = rewardkit.train("configs/quickstart.yaml")          # doctest: +SKIP
>>> result.metrics["eval"]["accuracy"]                             # doctest: +SKIP
>>> scorer = rewardkit.load_model("runs/quickstart")               # doctest: +SKIP
>>> scorer.score(prompts, responses)                               # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from .config import RunConfig, load_config  # noqa: E402


def train(config, resume: bool = False):
    """Train a reward model; ``config`` is a :class:`RunConfig`, a YAML path or a dict. See ``rewardkit.training.trainer``."""
    from .training.trainer import train as _train

    return _train(config, resume=resume)


def load_model(path, device: str = "cpu"):
    """Load a saved reward model (a model directory or a training run directory) as a :class:`Scorer`."""
    from .serve.scorer import Scorer

    return Scorer.from_pretrained(path, device=device)


def __getattr__(name):
    if name == "Scorer":
        from .serve.scorer import Scorer

        return Scorer
    raise AttributeError(name)


__all__ = ["RunConfig", "Scorer", "load_config", "load_model", "train", "__version__"]
