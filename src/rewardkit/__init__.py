"""rewardkit: train, evaluate and serve reward models for RLHF.

>>> import rewardkit
>>> result = rewardkit.train("configs/quickstart.yaml")          # doctest: +SKIP
>>> result.metrics["eval"]["accuracy"]                             # doctest: +SKIP
>>> scorer = rewardkit.load_model("runs/quickstart")               # doctest: +SKIP
>>> scorer.score(prompts, responses)                               # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._version import __version__
from .config import RunConfig, load_config

if TYPE_CHECKING:  # the return types; importing them here would load torch and transformers with the package
    from pathlib import Path

    from .eval.evaluate import ExampleEvaluation, PairEvaluation
    from .scoring import Scorer
    from .training.attribute_weights import WeightFit
    from .training.trainer import TrainResult


def train(config: RunConfig | str | dict, resume: bool = False) -> TrainResult:
    """Train a reward model; ``config`` is a :class:`RunConfig`, a YAML path or a dict. See ``rewardkit.training.trainer``
    (and ``rewardkit.training.run`` for the stages after it)."""
    from .training.run import run_training

    return run_training(config, resume=resume)


def fit_attribute_weights(model, pairs: str, *, start: int = 0, stop: int | None = None, adapter: str | None = None,
                          format: str = "auto", to_pairs: str = "off", eval_start: int | None = None,
                          eval_stop: int | None = None, steps: int = 300, lr: float = 0.05, save: bool = True,
                          device: str = "cpu") -> WeightFit:
    """Fit a multi-attribute model's learned weighting on preference pairs, attribute outputs frozen (as
    ``rewardkit fit-weights`` and the ``attribute_weights`` config section). ``pairs`` is a pairs file or, with
    ``to_pairs``, scalar ratings; ``eval_start``/``eval_stop`` pick held-out records of the same file. Returns a
    ``WeightFit``; ``save`` writes the weights into the model directory. See ``rewardkit.training.attribute_weights``.
    """
    from .config import AttributeWeightsConfig, RatingsConfig, SplitConfig
    from .scoring import Scorer
    from .training.attribute_weights import fit_attribute_weights as _fit
    from .training.attribute_weights import save_attribute_weights

    held = (SplitConfig(path=pairs, start=eval_start or 0, stop=eval_stop, adapter=adapter)
            if eval_start is not None or eval_stop is not None else None)
    cfg = AttributeWeightsConfig(train=SplitConfig(path=pairs, start=start, stop=stop, adapter=adapter), eval=held,
                                 format=format, ratings=RatingsConfig(to_pairs=to_pairs), steps=steps, lr=lr)
    scorer = model if isinstance(model, Scorer) else Scorer.from_pretrained(model, device=device)
    fit = _fit(scorer, cfg)
    if save:
        if isinstance(model, Scorer):
            raise ValueError("save=True needs the model's directory (pass the path, not a Scorer)")
        save_attribute_weights(scorer, model, fit)
    return fit


def load_model(path: str | Path, device: str = "cpu") -> Scorer:
    """Load a saved reward model (a model directory or a training run directory) as a :class:`Scorer`."""
    from .scoring import Scorer

    return Scorer.from_pretrained(path, device=device)


def evaluate(model, data: str, *, start: int = 0, stop: int | None = None, by: str | None = None,
             report: str | None = None, n_boot: int = 1000, device: str = "cpu") -> PairEvaluation | ExampleEvaluation:
    """Evaluate a saved model (directory, run directory or :class:`Scorer`) on a data file, as ``rewardkit eval``.

    Returns a ``PairEvaluation`` (pairs: rewards, texts and ``.metrics``) or an ``ExampleEvaluation`` (binary,
    scalar, ranked); ``report`` writes the HTML report and figures there. See ``rewardkit.eval.evaluate``.
    """
    from .config import SplitConfig
    from .eval.evaluate import PairEvaluation, evaluate_file, training_log_for
    from .eval.report import write_examples_report, write_report
    from .scoring import Scorer

    scorer = model if isinstance(model, Scorer) else Scorer.from_pretrained(model, device=device)
    ev = evaluate_file(scorer, SplitConfig(path=data, start=start, stop=stop), by=by, n_boot=n_boot)
    if report is not None:
        if isinstance(ev, PairEvaluation):
            log_path = None if isinstance(model, Scorer) else training_log_for(model)
            write_report(ev, report, training_log=log_path)
        else:
            write_examples_report(ev, report)
    return ev


def __getattr__(name):
    if name == "Scorer":
        from .scoring import Scorer

        return Scorer
    raise AttributeError(name)


__all__ = ["RunConfig", "Scorer", "evaluate", "fit_attribute_weights", "load_config", "load_model", "train",
           "__version__"]
