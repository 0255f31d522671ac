"""The scoring engine: (prompt, response) texts or encoded sequences -> rewards, one code path for training's
evaluation, ``rewardkit eval``, ``rewardkit score`` and the server (``serve/`` holds only the HTTP and file
front-ends around it). Every scoring loop runs under :func:`evaluation_mode`.

Batches are formed by sorting sequences by length and filling each batch up to a token budget, so a batch is
padded only to its own longest member; results come back in input order. With a decoder, responses to the same
prompt share one computation of the prompt (packed rows, :mod:`rewardkit.data.packing`); an encoder with
[CLS] pooling computes its last layer for [CLS] only (:mod:`rewardkit.models.cls_readout`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from .data.collate import pad_batch
from .data.formats import Text
from .data.packing import PackedBatch, group_tokens, pack_groups, padded_budget_batches, token_budget_batches
from .data.render import Renderer
from .data.tokenize import Encoded, SequenceEncoder
from .models.heads import RewardOutput
from .models.reward_model import ModelMeta, RewardModel, load_reward_model
from .types import TokenBatch


@contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no gradients for the block; the model's training flag is restored after it,
    also when the block raises."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def default_max_tokens(device: torch.device | str) -> int:
    """Token budget per scoring batch when none is given: 4096 on CPU, where a smaller budget means finer length
    groups and less padding (measured in benchmarks/README.md: 4096 scored faster than 8192 and 16384 on the
    2-core development CPU), 16384 on accelerators (not measured here; they need bigger batches to be busy)."""
    return 4096 if torch.device(device).type == "cpu" else 16384


def length_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches of similar length: each batch's rows x longest row <= max_tokens."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    return padded_budget_batches(list(lengths), 1, max_tokens, order, max_batch)


def prompt_groups(seqs: Sequence[Encoded]) -> tuple[list[list[int]], list[int]]:
    """Sequences whose prompt tokens are identical, in first-seen order: (groups of two or more, the rest).

    Several responses to one prompt are the normal case in RLHF scoring: a GRPO step scores G completions
    per prompt, best-of-n scores n, a pair file scores chosen and rejected.
    """
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for i, s in enumerate(seqs):
        by_prompt.setdefault(tuple(s.input_ids[:s.response_start]), []).append(i)
    groups = [g for g in by_prompt.values() if len(g) > 1]
    return groups, sorted(i for g in by_prompt.values() if len(g) == 1 for i in g)


def shared_prompt_batches(model: RewardModel, seqs: Sequence[Encoded], groups: list[list[int]], pad_id: int,
                          max_tokens: int, max_batch: int) -> Iterator[tuple[list[int], PackedBatch]]:
    """(indices in score order, packed batch) for groups of responses to the same prompt (decoders).

    Each group is laid out as one tree (:mod:`rewardkit.data.packing`): the prompt computed once, each
    response a branch that sees the prompt and itself, where that costs less than separate rows. Groups are
    sorted by packed size and cut at ``max_tokens`` computed tokens or ``max_batch`` sequences.
    """
    from .models.packed import attention_cost

    cost = attention_cost(model)
    members = [[seqs[i] for i in g] for g in groups]
    sizes = [group_tokens(m, "decoder", cost) for m in members]
    order = sorted(range(len(groups)), key=lambda g: -sizes[g])
    for batch in token_budget_batches(sizes, max_tokens, order, [len(g) for g in groups], max_batch):
        packed = pack_groups([members[g] for g in batch], "decoder", pad_id, attention_cost=cost)
        yield [i for g in batch for i in groups[g]], packed  # pack_groups scores group-major


def scoring_batches(model: RewardModel, seqs: Sequence[Encoded], pad_id: int, max_tokens: int, max_batch: int,
                    share_prompts: bool = True) -> Iterator[tuple[list[int], TokenBatch | PackedBatch]]:
    """(indices into ``seqs``, model batch) pairs covering every sequence once; the batch's rewards come out in
    the order of its indices. Shared by :func:`score_sequences` and the server's dynamic batching.

    Decoders: responses to the same prompt (``share_prompts``) go into packed rows that compute the prompt once
    (rewards equal the padded computation's: tests/reliability/test_score_invariance.py). Everything else is
    sorted by length and padded per batch to the batch's longest sequence.
    """
    groups, rest = prompt_groups(seqs) if share_prompts and model.kind == "decoder" else ([], range(len(seqs)))
    rest = list(rest)
    yield from shared_prompt_batches(model, seqs, groups, pad_id, max_tokens, max_batch)
    for idx in length_batches([len(seqs[i].input_ids) for i in rest], max_tokens, max_batch):
        yield [rest[j] for j in idx], pad_batch([seqs[rest[j]] for j in idx], pad_id, "right")


@torch.no_grad()
def score_sequences(model: RewardModel, seqs: Sequence[Encoded], pad_id: int, device: torch.device | str,
                    max_tokens: int | None = None, max_batch: int = 64, progress=None,
                    share_prompts: bool = True) -> list[float]:
    """Rewards for encoded sequences in input order (batches: :func:`scoring_batches`; ``max_tokens`` None:
    :func:`default_max_tokens`)."""
    max_tokens = max_tokens or default_max_tokens(device)
    out = [0.0] * len(seqs)
    with evaluation_mode(model):
        for idx, batch in scoring_batches(model, seqs, pad_id, max_tokens, max_batch, share_prompts):
            for i, r in zip(idx, model(batch.to(device)).tolist(), strict=True):
                out[i] = r
            if progress is not None:
                progress(len(idx))
    return out


@torch.no_grad()
def score_logits(model: RewardModel, seqs: Sequence[Encoded], pad_id: int, device: torch.device | str,
                 max_tokens: int | None = None, max_batch: int = 64, share_prompts: bool = True) -> torch.Tensor:
    """The head's outputs [n, C] (fp32, CPU) in input order, batched exactly as :func:`score_sequences` (an
    ensemble's K rewards: the aggregates and the uncertainty are computed from them, models/ensemble.py)."""
    max_tokens = max_tokens or default_max_tokens(device)
    out: list[torch.Tensor | None] = [None] * len(seqs)
    with evaluation_mode(model):
        for idx, batch in scoring_batches(model, seqs, pad_id, max_tokens, max_batch, share_prompts):
            logits = model(batch.to(device), full=True).logits.float().cpu()
            for j, i in enumerate(idx):
                out[i] = logits[j]
    width = model.spec.num_labels
    return torch.stack(out) if out else torch.zeros(0, width)


def score_outputs(model: RewardModel, seqs: Sequence[Encoded], pad_id: int, device, max_batch: int = 32,
                  max_tokens: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """(rewards [n], head logits [n, C]) for encoded sequences in input order, batched by length (the
    held-out evaluation of every loss, which needs the logits as well as the rewards)."""
    rewards: list[torch.Tensor | None] = [None] * len(seqs)
    logits: list[torch.Tensor | None] = [None] * len(seqs)
    with evaluation_mode(model):
        for idx in length_batches([len(s.input_ids) for s in seqs], max_tokens, max_batch):
            out: RewardOutput = model(pad_batch([seqs[i] for i in idx], pad_id, "right").to(device), full=True)
            for j, i in enumerate(idx):
                rewards[i], logits[i] = out.rewards[j].cpu(), out.logits[j].cpu()
    return torch.stack(rewards), torch.stack(logits)


class Scorer:
    """A loaded reward model with its tokenizer and rendering settings.

    >>> scorer = rewardkit.load_model("runs/quickstart/model")      # doctest: +SKIP
    >>> scorer.score(["\\n\\nHuman: hi\\n\\nAssistant:"], [" Hello! How can I help?"])  # doctest: +SKIP
    [0.73]
    """

    def __init__(self, model: RewardModel, tokenizer, meta: ModelMeta, device: str | torch.device = "cpu",
                 max_tokens: int | None = None, max_batch: int = 64):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.meta = meta
        self.device = torch.device(device)
        self.max_tokens = max_tokens or default_max_tokens(self.device)
        self.max_batch = max_batch
        judge = (meta.judge or model.judge_settings) if model.spec.head_kind.lm_head else None
        self.renderer, self.encoder = text_encoders(tokenizer, meta, judge)
        # TRL logs each reward function under `__name__` (trl.trainer.utils.get_callable_name)
        self.__name__ = "rewardkit"
        self.normalize_rewards = False
        self.share_prompts = True
        """Decoders: compute a prompt once for all its responses (same rewards; see :func:`score_sequences`)."""
        self.aggregate: str | None = None
        """Ensemble head: which aggregate ``score`` and the TRL call return (None: the one stored with the model)."""
        self.beta: float | None = None
        """Ensemble head, ``mean_minus_std``: its beta (None: the stored ``ensemble_beta``)."""

    @property
    def is_ensemble(self) -> bool:
        return self.model.spec.head == "ensemble"

    @property
    def is_pairwise_judge(self) -> bool:
        """A pairwise LM-head judge: it compares two responses (:meth:`compare`), it has no single reward."""
        return bool(getattr(self.renderer, "pairwise", False))

    def compare(self, prompts: Sequence[Text], a: Sequence[Text], b: Sequence[Text], both_orders: bool = True):
        """A pairwise judge's :class:`~rewardkit.judge_scoring.PairJudgement` of ``a`` over ``b`` per prompt:
        the order-averaged margin and the position bias (``both_orders``; see :mod:`rewardkit.judge_scoring`)."""
        from .judge_scoring import compare

        return compare(self, prompts, a, b, both_orders)

    def score_against(self, prompts: Sequence[Text], responses: Sequence[Text], references: Sequence[Text],
                      both_orders: bool = True) -> list[float | None]:
        """A pairwise judge's reward for each response: its order-averaged margin over ``references``."""
        from .judge_scoring import score_against

        return score_against(self, prompts, responses, references, both_orders)

    def uncertainty_encoded(self, seqs: Sequence[Encoded], aggregate: str | None = None,
                            beta: float | None = None) -> list[dict]:
        """Ensemble head: per sequence ``reward`` (the aggregate: ``aggregate`` / ``beta`` or the stored ones),
        ``reward_mean``, ``reward_std`` and ``rewards_k`` (the K head rewards)."""
        from .models.ensemble import uncertainty_columns

        if not self.is_ensemble:
            raise ValueError(f"reward uncertainty needs an ensemble model (model.head ensemble); this one is "
                             f"{self.model.spec.head!r}")
        spec = self.model.spec
        z = score_logits(self.model, seqs, self.tokenizer.pad_token_id, self.device, self.max_tokens,
                         self.max_batch, self.share_prompts)
        beta = beta if beta is not None else self.beta
        return uncertainty_columns(z, aggregate or self.aggregate or spec.ensemble_aggregate,
                                   spec.ensemble_beta if beta is None else beta)

    def score_uncertainty(self, prompts: Sequence[Text], responses: Sequence[Text], aggregate: str | None = None,
                          beta: float | None = None) -> list[dict]:
        """:meth:`uncertainty_encoded` for (prompt, response) texts."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.uncertainty_encoded([self.encode(p, r) for p, r in zip(prompts, responses, strict=True)],
                                        aggregate, beta)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **kwargs) -> Scorer:
        model, tokenizer, meta = load_reward_model(resolve_model_dir(path))
        return cls(model, tokenizer, meta, device=device, **kwargs)

    def encode(self, prompt: Text, response: Text) -> Encoded:
        return self.encoder.encode(self.renderer.render(prompt, response))

    def score_encoded(self, seqs: Sequence[Encoded], progress=None) -> list[float]:
        """Rewards for already encoded sequences, in input order (an ensemble: :attr:`aggregate` when set)."""
        if (self.aggregate is not None or self.beta is not None) and self.is_ensemble:
            return [row["reward"] for row in self.uncertainty_encoded(seqs)]
        return score_sequences(self.model, seqs, self.tokenizer.pad_token_id, self.device, self.max_tokens,
                               self.max_batch, progress, self.share_prompts)

    def score(self, prompts: Sequence[Text], responses: Sequence[Text], normalize: bool = False) -> list[float]:
        """Rewards for each (prompt, response); ``normalize`` applies the stored mean/std."""
        if len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
        if self.is_pairwise_judge:
            from .data.judge_encode import PAIRWISE_ONLY

            raise ValueError(PAIRWISE_ONLY + "; or score_against(prompts, responses, references)")
        if self.meta.head == "step":  # a process reward model: the response's steps, its aggregate reward
            from .step_scoring import split_steps

            rewards = [s.reward for s in self.score_steps(prompts, [split_steps(self, r) for r in responses])]
            return self.normalize(rewards) if normalize else rewards
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
        if self.is_pairwise_judge:  # a pairwise judge rewards each completion by its margin over a reference
            if kwargs.get("reference") is None:
                raise ValueError("a pairwise judge as a reward function compares each completion with a reference: "
                                 "give the data set a 'reference' column (TRL passes it to the reward function)")
            return self.score_against(list(prompts), list(completions), list(kwargs["reference"]))
        if self.is_ensemble:  # the uncertainty goes to TRL's completions table and metrics when it asks
            return self._ensemble_call(list(prompts), list(completions), kwargs)
        return self.score(list(prompts), list(completions), normalize=self.normalize_rewards)

    @property
    def step_encoder(self):
        """Step-level rendering of a process reward model (``model.head: step``), built on first use."""
        if getattr(self, "_step_encoder", None) is None:
            from .step_scoring import make_step_encoder

            self._step_encoder = make_step_encoder(self)
        return self._step_encoder

    def score_steps(self, prompts: Sequence[Text], solutions: Sequence[Sequence[str]], aggregate: str | None = None):
        """Per-step rewards of a process reward model: one :class:`~rewardkit.step_scoring.StepScore`
        (``step_rewards``: P(step right) per step, ``reward``: their ``aggregate``, the model's
        ``step_aggregate`` by default) per (prompt, list of step texts).

        >>> scorer.score_steps(["Start at 2. Add 3."], [["2 + 3 = 5"]])[0].step_rewards  # doctest: +SKIP
        [0.97]
        """
        from .step_scoring import score_steps

        return score_steps(self, prompts, solutions, aggregate)

    def _ensemble_call(self, prompts: list, completions: list, kwargs: dict) -> list[float]:
        rows = self.score_uncertainty(prompts, completions)
        rewards = [r["reward"] for r in rows]
        std = [r["reward_std"] for r in rows]
        if callable(kwargs.get("log_extra")):
            kwargs["log_extra"]("reward_std", std)
            kwargs["log_extra"]("reward_mean", [r["reward_mean"] for r in rows])
        if callable(kwargs.get("log_metric")) and rows:
            kwargs["log_metric"]("reward_std", sum(std) / len(std))
        return self.normalize(rewards) if self.normalize_rewards else rewards

    def normalize(self, rewards: list[float]) -> list[float]:
        return normalized(rewards, self.meta)


def text_encoders(tokenizer, meta: ModelMeta, judge: dict | None = None) -> tuple[Renderer, SequenceEncoder]:
    """(renderer, encoder) turning (prompt, response) into the tokens this model scores; ``judge``: an LM-head
    judge's settings. One construction for the :class:`Scorer` and the vLLM front end (serve/front_end.py), so
    both send the same token ids."""
    if judge is not None:  # the judge template read at its last token (models/judge.py)
        from .models.judge import judge_encoders

        renderer, encoder = judge_encoders(tokenizer, judge, meta.max_length, meta.truncation)
    else:
        renderer = Renderer(tokenizer, meta.kind, meta.template, meta.separator)
        encoder = SequenceEncoder(tokenizer, meta.kind, meta.max_length, meta.truncation)
    if meta.score_token_id is not None:
        encoder.score_token_id = meta.score_token_id
    # a foreign transformers model scores its text as it is (rewardkit.models.foreign)
    encoder.append_score_token = meta.training.get("read_as") != "transformers"
    return renderer, encoder


def normalized(rewards: list[float], meta: ModelMeta) -> list[float]:
    """The stored normalisation statistics applied to ``rewards``."""
    norm = meta.normalization
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
