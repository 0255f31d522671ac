"""Moved: the scoring engine is :mod:`rewardkit.scoring` (used by training, eval, score and the server alike);
these names stay importable from here."""

from ..scoring import (  # noqa: F401
    Scorer,
    default_max_tokens,
    evaluation_mode,
    length_batches,
    prompt_groups,
    resolve_model_dir,
    score_outputs,
    score_sequences,
    scoring_batches,
    shared_prompt_batches,
)
