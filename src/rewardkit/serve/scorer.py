"""Score (prompt, response) texts with a reward model: one code path for eval, CLI scoring and serving.

Batches are formed by sorting sequences by length and filling each batch up to a token budget, so a batch is
padded only to its own longest member; results come back in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.collate import pad_batch
from ..data.formats import Text
from ..data.packing import padded_budget_batches
from ..data.render import Renderer
from ..data.tokenize import Encoded, SequenceEncoder
from ..models.reward_model import ModelMeta, RewardModel, load_reward_model


def length_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: each batch's rows x longest row <= max_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return padded_budget_batches(list(lengths), 1, max_tokens, order, max_batch)


@torch.no_grad()
def score_sequences(model: RewardModel, seqs: Sequence[Encoded], pad_id: int, device: torch.device | str,
                    max_tokens: int = 16384, max_batch: int = 64, progress=None) -> list[float]:
    """Rewards for encoded sequences in input order, batched by length under a token budget."""
    out = [0.0] * len(seqs)
    was_training = model.training
    model.eval()
    try:
        for idx in length_batches([len(s.input_ids) for s in seqs], max_tokens, max_batch):
            batch = pad_batch([seqs[i] for i in idx], pad_id, "right").to(device)
            for i, r in zip(idx, model(batch).tolist(), strict=True):
                out[i] = r
            if progress is not None:
                progress(len(idx))
    finally:
        model.train(was_training)
    return out


class Scorer:
    """A loaded reward model with its tokenizer and rendering settings.

    >>> scorer = rewardkit.load_model("runs/quickstart/model")      # doctest: +SKIP
    >>> scorer.score(["\\n\\nHuman: hi\\n\\nAssistant:"], [" Hello! How can I help?"])  # doctest: +SKIP
    [0.73]
    """

    def __init__(self, model: RewardModel, tokenizer, meta: ModelMeta, device: str | torch.device = "cpu",
                 max_tokens: int = 16384, max_batch: int = 64):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.renderer = Renderer(tokenizer, meta.kind, meta.template, meta.separator)
        self.encoder = SequenceEncoder(tokenizer, meta.kind, meta.max_length, meta.truncation)
        if meta.score_token_id is not None:
            self.encoder.score_token_id = meta.score_token_id
        # TRL logs each reward function under `__name__` (trl.trainer.utils.get_callable_name)
        self.__name__ = "rewardkit"
        self.normalize_rewards = False

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **kwargs) -> Scorer:
        model, tokenizer, meta = load_reward_model(resolve_model_dir(path))
        return cls(model, tokenizer, meta, device=device, **kwargs)

    def encode(self, prompt: Text, response: Text) -> Encoded:
        return self.encoder.encode(self.renderer.render(prompt, response))

    def score_encoded(self, seqs: Sequence[Encoded], progress=None) -> list[float]:
        """Rewards for already encoded sequences, in input order."""
        return score_sequences(self.model, seqs, self.tokenizer.pad_token_id, self.device, self.max_tokens,
                               self.max_batch, progress)

    def score(self, prompts: Sequence[Text], responses: Sequence[Text], normalize: bool = False) -> list[float]:
        """Rewards for each (prompt, response); ``normalize`` applies the stored mean/std."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        rewards = self.score_encoded([self.encode(p, r) for p, r in zip(prompts, responses, strict=True)])
        return self.normalize(rewards) if normalize else rewards

    def __call__(self, prompts: Sequence[Text] | None = None, completions: Sequence[Text] | None = None,
                 completion_ids=None, **kwargs) -> list[float]:
        """Score as a TRL GRPO reward function.

        TRL (``GRPOTrainer._calculate_rewards``, trl 1.16) calls ``reward_func(prompts=..., completions=...,
        completion_ids=..., **dataset_columns, trainer_state=..., log_extra=..., log_metric=...)`` and reads
        one float per completion. Prompts and completions are text, or message lists when the data set is
        conversational (a completion is then ``[{"role": "assistant", "content": ...}]``). Extra keyword
        arguments are accepted and ignored. Set ``scorer.normalize_rewards = True`` to return normalised
        rewards (the model must have statistics).
        """
        if prompts is None or completions is None:
            raise TypeError("a reward function is called with prompts=... and completions=...")
        return self.score(list(prompts), list(completions), normalize=self.normalize_rewards)

    def normalize(self, rewards: list[float]) -> list[float]:
        norm = self.meta.normalization
        if not norm:
            raise ValueError("this model has no normalisation statistics; fit them with `rewardkit eval "
                             "--fit-normalization`")
        return [(r - norm["mean"]) / norm["std"] for r in rewards]


def resolve_model_dir(path: str | Path) -> Path:
    """Accept a model directory or a training run directory (whose model is in RUN/model)."""
    p = Path(path)
    if (p / "model" / "rewardkit.json").exists() and not (p / "rewardkit.json").exists():
        return p / "model"
    return p
