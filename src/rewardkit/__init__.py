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


def evaluate(model, data: str, *, start: int = 0, stop: int | None = None, by: str | None = None,
             report: str | None = None, n_boot: int = 1000, device: str = "cpu"):
    """Evaluate a saved model (directory, run directory or :class:`Scorer`) on a data file, as ``rewardkit eval``.

    Returns a ``PairEvaluation`` (pairs: rewards, texts and ``.metrics``) or an ``ExampleEvaluation`` (binary,
    scalar, ranked); ``report`` writes the HTML report and figures there. See ``rewardkit.eval.evaluate``.
    """
    from .config import SplitConfig
    from .eval.evaluate import PairEvaluation, evaluate_file, training_log_for
    from .eval.report import write_examples_report, write_report
    from .serve.scorer import Scorer

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
        from .serve.scorer import Scorer

        return Scorer
    raise AttributeError(name)


__all__ = ["RunConfig", "Scorer", "evaluate", "load_config", "load_model", "train", "__version__"]
