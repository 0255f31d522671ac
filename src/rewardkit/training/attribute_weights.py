"""Learned attribute weighting: fit the K weights of a multi-attribute model on preference pairs.

The multi-attribute regression (``multi_attribute_mse``) trains the K outputs ``z`` but never the weights that
combine them into one reward ``r = sum_k softmax(w)_k z_k``: that loss does not see ``r``. As in ArmoRM (Wang et
al. 2024, arXiv 2406.12845, stage 2), the weights are fitted afterwards on preference pairs, with the backbone
and the attribute head frozen::

    z_c, z_r    = attribute outputs of chosen and rejected          [n, K]   (computed once, no gradient)
    loss(w, s)  = mean_i -logsigmoid(exp(s) * (z_c[i] - z_r[i]) . softmax(w))   (Bradley-Terry, arXiv 2203.02155)

ArmoRM conditions the weights on the prompt with a gating network; here they are one global vector (K numbers,
which cannot overfit a few hundred pairs the way a network could). Softmax keeps them positive and summing to 1:
a fitted model still reads as "a weighted mean of the attribute scores", on the scale the attributes were
regressed to. The scale ``exp(s)`` (ArmoRM's beta) is fitted with the weights and then dropped: the order of
rewards does not depend on it, but without it a sum-to-one weighting of small attribute differences keeps
Bradley-Terry in its near-linear regime, where it maximises the mean margin rather than the number of pairs
ranked right. Starting from uniform weights and scale 1 (``w = 0, s = 0``), full-batch Adam on K + 1 parameters
converges in a few hundred steps in well under a second.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..config import AttributeWeightsConfig, DataConfig, SplitConfig
from ..data.dataset import encode_pairs
from ..data.errors import SkipReport
from ..data.examples import load_examples
from ..data.formats import Pair
from ..losses import bradley_terry
from ..models.heads import HEAD_FILE
from ..models.reward_model import ModelMeta
from ..scoring import Scorer, resolve_model_dir
from .tasks import score_outputs

log = logging.getLogger(__name__)


@dataclass
class WeightFit:
    """The fitted weights and the pair accuracy / loss of the combined reward before (uniform) and after."""

    attributes: list[str]
    weights: list[float]
    """softmax(w), one per attribute, in the model's output order."""
    scale: float
    """The Bradley-Terry scale fitted with the weights (not part of the saved reward)."""
    train: dict
    """On the pairs the weights were fitted on: {"pairs", "uniform": {accuracy, loss}, "fitted": {...}}."""
    eval: dict | None = None
    """The same on held-out pairs, when given."""

    def to_dict(self) -> dict:
        return asdict(self)


def fit_weight_logits(z_chosen: torch.Tensor, z_rejected: torch.Tensor, steps: int = 300,
                      lr: float = 0.05) -> tuple[torch.Tensor, float]:
    """``(w [K], scale)`` minimising ``mean -logsigmoid(scale * (z_c - z_r) . softmax(w))`` from uniform weights and
    scale 1; the reward keeps ``softmax(w)`` only (see the module docstring for why the scale is fitted).

    Shapes: ``z_chosen``, ``z_rejected``: [n, K] attribute outputs (no gradient flows into them)."""
    if z_chosen.shape != z_rejected.shape or z_chosen.ndim != 2:
        raise ValueError(f"expected two [n, K] tensors, got {tuple(z_chosen.shape)} and {tuple(z_rejected.shape)}")
    diff = (z_chosen - z_rejected).detach().float()
    w = torch.zeros(diff.shape[1], requires_grad=True)
    log_scale = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, log_scale], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = -F.logsigmoid(log_scale.exp() * (diff @ w.softmax(0))).mean()
        loss.backward()
        opt.step()
    return w.detach(), float(log_scale.detach().exp())


def combined_pair_metrics(z_chosen: torch.Tensor, z_rejected: torch.Tensor, weights: torch.Tensor) -> dict:
    """Pair accuracy (a tie is not a win) and Bradley-Terry loss of the reward ``z . weights`` (scale 1: the reward
    as scored)."""
    r_c, r_r = z_chosen.float() @ weights, z_rejected.float() @ weights
    return {"accuracy": float((r_c > r_r).float().mean()), "loss": float(bradley_terry(r_c, r_r))}


def pair_attribute_outputs(scorer: Scorer, pairs: list[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """The K attribute outputs of each pair's chosen and rejected response: ([n, K], [n, K]); pairs the
    over-length policy drops are left out."""
    encoded = encode_pairs(pairs, scorer.renderer, scorer.encoder)
    if not encoded:
        raise ValueError("every pair was dropped by the over-length policy")
    seqs = [p.chosen for p in encoded] + [p.rejected for p in encoded]
    _, logits = score_outputs(scorer.model, seqs, scorer.tokenizer.pad_token_id, scorer.device,
                              max_batch=scorer.max_batch, max_tokens=scorer.max_tokens)
    n = len(encoded)
    return logits[:n], logits[n:]


def load_weight_pairs(split: SplitConfig, cfg: AttributeWeightsConfig) -> list[Pair]:
    """Preference pairs of ``split``: a pairs file, or scalar ratings turned into pairs by ``cfg.ratings``."""
    data = DataConfig(train=split, format=cfg.format, ratings=cfg.ratings)
    examples = load_examples(split, data, SkipReport())
    if not isinstance(examples[0], Pair):
        raise ValueError(f"{split.path}: attribute weights are fitted on preference pairs, but this split holds "
                         f"{type(examples[0]).__name__} examples (scalar ratings: set ratings.to_pairs)")
    return examples  # type: ignore[return-value]


def fit_attribute_weights(scorer: Scorer, cfg: AttributeWeightsConfig) -> WeightFit:
    """Fit ``scorer``'s learned attribute weights on ``cfg.train`` pairs (in place: the scorer then scores with
    them); report uniform vs fitted pair accuracy there and on ``cfg.eval``. :func:`save_attribute_weights`
    writes them to the model directory."""
    spec = scorer.model.spec
    if spec.head != "multi" or spec.weighting != "learned":
        raise ValueError(f"fitting attribute weights needs a multi-attribute model with weighting learned; this "
                         f"one has head {spec.head!r}, weighting {spec.weighting!r}")
    k = spec.num_labels
    z_c, z_r = pair_attribute_outputs(scorer, load_weight_pairs(cfg.train, cfg))
    logits, scale = fit_weight_logits(z_c, z_r, cfg.steps, cfg.lr)
    uniform, fitted = torch.full((k,), 1.0 / k), logits.softmax(0)

    def both(a, b) -> dict:
        return {"pairs": len(a), "uniform": combined_pair_metrics(a, b, uniform),
                "fitted": combined_pair_metrics(a, b, fitted)}

    held_out = None
    if cfg.eval is not None:
        held_out = both(*pair_attribute_outputs(scorer, load_weight_pairs(cfg.eval, cfg)))
    with torch.no_grad():
        scorer.model.extras.attribute_logits.copy_(logits.to(scorer.model.extras.attribute_logits))
    fit = WeightFit(attributes=list(spec.attributes or []), weights=[float(x) for x in fitted], scale=scale,
                    train=both(z_c, z_r), eval=held_out)
    log.info("attribute weights %s; pair accuracy on the fitting pairs %.4f (uniform %.4f)",
             dict(zip(fit.attributes, [round(w, 4) for w in fit.weights], strict=True)),
             fit.train["fitted"]["accuracy"], fit.train["uniform"]["accuracy"])
    return fit


def save_attribute_weights(scorer: Scorer, model_path: str | Path, fit: WeightFit) -> Path:
    """Write the scorer's attribute weights to ``rewardkit_head.safetensors`` and the fit's figures to
    ``rewardkit.json`` (under ``training.attribute_weights``)."""
    directory = resolve_model_dir(model_path)
    scorer.model.extras.save(directory)
    meta = ModelMeta.load(directory)
    meta.training = {**meta.training, "attribute_weights": fit.to_dict()}
    meta.save(directory)
    log.info("attribute weights saved to %s", directory / HEAD_FILE)
    return directory


def run_weight_stage(cfg: AttributeWeightsConfig, result) -> WeightFit | None:
    """The ``attribute_weights`` config section after training: fit on the trained model, save into
    ``OUTPUT/model``, and add the figures to the run's metrics and ``summary.json`` (main process only)."""
    import json

    from .distributed import is_main_launch

    if not is_main_launch():
        return None
    fit = fit_attribute_weights(result.scorer, cfg)
    save_attribute_weights(result.scorer, result.output_dir / "model", fit)
    result.metrics["attribute_weights"] = fit.to_dict()
    summary = result.output_dir / "summary.json"
    if summary.exists():
        summary.write_text(json.dumps(result.metrics, indent=2) + "\n")
    return fit
