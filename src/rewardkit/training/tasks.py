"""Tasks: what one training recipe does with its data format and loss.

A task maps (data format, loss) to three things the training loop needs and nothing else:

* how to batch examples: ``encode`` typed examples into items, ``length`` for length-grouped batching, and
  ``collate`` a list of items into one :class:`TaskBatch` (every sequence of the batch in one forward);
* how to compute the loss from the model's :class:`~rewardkit.models.heads.RewardOutput` (fp32);
* which held-out metrics to log (``evaluate``), and which of them is the headline (``primary``).

=========================  ===========  ==========================================  ==========================
loss                       data format  head                                        metrics
=========================  ===========  ==========================================  ==========================
bradley_terry, log_exp     pairs        scalar / classifier / multi / per_token     pairwise accuracy, loss
  (any PAIRWISE_LOSSES)                 ensemble: Bradley-Terry per head            AUC, ECE
token_level_pairwise       pairs        per_token (decoders)                        pairwise accuracy, loss
cross_entropy              binary       classifier (or scalar: a binary logit)      accuracy, AUC, loss
mse, rmse                  scalar       scalar                                      MSE, Pearson, Spearman
ranking                    ranked       scalar (any with one reward)                pair accuracy, Kendall tau
multi_attribute_mse        multi        multi                                       per-attribute MSE, Pearson
step_bce, step_ce          steps        step (training/step_task.py)                step AUC, earliest error
=========================  ===========  ==========================================  ==========================

The trainer knows no loss: it asks the task for batches (``collate`` / ``collate_packed``), the loss and the
metrics. A pairwise loss on the two scores of a pair is an entry in ``losses.PAIRWISE_LOSSES`` and in ``TASKS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from ..config import DataConfig, LossConfig, RunConfig, SplitConfig
from ..data.collate import pad_batch
from ..data.dataset import EncodedPair, encode_pairs
from ..data.errors import SkipReport
from ..data.examples import format_of, load_examples, plain_pairs
from ..data.formats import Labeled, MultiRated, Pair, Ranked, Rated
from ..data.packing import pack_groups, pack_pairs
from ..data.render import Renderer
from ..data.tokenize import Dropped, Encoded, SequenceEncoder
from ..eval.format_metrics import format_metrics
from ..eval.metrics import (
    binary_metrics,
    longer_wins_baseline,
    multi_attribute_metrics,
    pair_calibration,
    pairwise_auc,
    pairwise_metrics,
    ranked_metrics,
    scalar_metrics,
)
from ..losses import (
    PAIRWISE_LOSSES,
    bradley_terry,
    cross_entropy,
    ensemble_bradley_terry,
    get_loss,
    l2_scores,
    multi_attribute_mse,
    ranking,
    reward_centering,
    token_level_pairwise,
)
from ..models.heads import RewardOutput
from ..scoring import score_outputs, score_sequences  # score_outputs: its old home was here (eval, tests)
from ..types import PackedBatch, TokenBatch
from .distributed import eval_model, score_pairs_sharded
from .ensemble_step import ensemble_weights, is_ensemble


@dataclass(frozen=True)
class EncodedExample:
    """One encoded response with its target: a label (binary), a rating (scalar) or a vector of ratings."""

    seq: Encoded
    target: float | int | list[float]
    where: str
    mask: list[bool] | None = None
    """Multi-attribute: which entries of ``target`` were rated."""


@dataclass(frozen=True)
class EncodedRanked:
    seqs: list[Encoded]
    ranks: list[int]
    where: str


@dataclass
class TaskBatch:
    tokens: TokenBatch
    targets: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> TaskBatch:
        return TaskBatch(self.tokens.to(device), {k: v.to(device) for k, v in self.targets.items()})


class Task:
    """Base: the data format a loss trains on, and what the loop does with it."""

    format: str = "pairs"

    @property
    def primary(self) -> str:
        """The headline held-out metric (logged in the progress bar): the format's row in
        :data:`rewardkit.eval.format_metrics.FORMAT_METRICS`."""
        return format_metrics(self.format).primary

    @property
    def selection_metric(self) -> str:
        """What ``train.early_stopping`` selects on by default (the same table)."""
        return format_metrics(self.format).selection

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.loss_cfg: LossConfig = cfg.loss

    def load(self, split: SplitConfig, data: DataConfig, report: SkipReport) -> list:
        examples = load_examples(split, data, report)
        got = format_of(examples[0])
        if got != self.format:
            raise ValueError(f"{split.path}: loss.name {self.loss_cfg.name} trains on {self.format} data, but this "
                             f"split holds {got} examples (set data.format or pick a matching loss; docs/recipes.md)")
        return examples

    def encode(self, examples: list, renderer: Renderer, encoder: SequenceEncoder) -> list:
        raise NotImplementedError

    def length(self, item) -> int:
        return len(item.seq.input_ids)

    def collate(self, items: list, pad_id: int, side: str) -> TaskBatch:
        raise NotImplementedError

    packs: bool = False
    """Whether :meth:`collate_packed` exists (``train.packing`` for this task)."""

    def collate_packed(self, items: list, kind: str, pad_id: int, row_tokens: int | None,
                       attention_cost: float | None = None) -> TaskBatch:
        """Like :meth:`collate` with packed rows (:mod:`rewardkit.data.packing`): the same rewards, same order."""
        raise NotImplementedError

    budgets: bool = False
    """Whether ``train.max_tokens_per_batch`` / ``max_tokens_per_forward`` may cut this task's batches."""

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, model, items: list, pad_id: int, device, batch_size: int) -> dict:
        raise NotImplementedError

    def evaluate_in_run(self, accelerator, model, raw_model, items: list, pad_id: int, device,
                        batch_size: int) -> dict:
        """:meth:`evaluate` inside a training run (``model`` as prepared by Accelerate, ``raw_model`` unwrapped):
        here every process scores every item with the unwrapped module."""
        return self.evaluate(raw_model, items, pad_id, device, batch_size)

    def baseline(self, items: list) -> dict | None:
        """A data-only reference on the held-out items, reported next to the metrics; None: none."""
        return None

    def prepare_model(self, model, tokenizer) -> None:
        """Change the fresh model or tokenizer before training (the step task adds its step token); no-op."""

    def annotate_meta(self, meta):
        """Add what this task's data rendering needs at scoring time to the saved ``ModelMeta``; no-op."""
        return meta

    def regularize(self, loss: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """``loss.l2`` on every score of the batch."""
        return loss + l2_scores(rewards, self.loss_cfg.l2) if self.loss_cfg.l2 else loss

    @staticmethod
    def _encode_single(examples, renderer, encoder, target_of) -> list[EncodedExample]:
        out = []
        for ex in examples:
            try:
                seq = encoder.encode(renderer.render(ex.prompt, ex.response), ex.where)
            except Dropped:
                continue
            target, mask = target_of(ex)
            out.append(EncodedExample(seq, target, ex.where, mask))
        return out


class PairTask(Task):
    """Pairs -> a pairwise score loss (``losses.PAIRWISE_LOSSES``: Bradley-Terry, log-exp), the ensemble head's
    per-head Bradley-Terry, or the token-level pairwise loss.

    One forward runs chosen and rejected together::

        tokens   [2B rows]   rows 0..B-1 chosen, rows B..2B-1 rejected (padded, or packed with the prompt once)
        rewards  [2B]        read at each row's score token
        loss = bradley_terry(rewards[:B], rewards[B:], margin)     # fp32
    """

    format = "pairs"

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        self.score_loss = PAIRWISE_LOSSES.get(self.loss_cfg.name)
        """The loss on the two scores of each pair; None for the token-level loss (per-token values)."""
        self.ensemble = cfg.model.head == "ensemble"  # make_task refused an ensemble with another loss
        # Every pairwise loss packs (each pair one group: the prompt once, two branches; data/packing.py). Token
        # budgets cut micro-batches by pairs, which is exact for a loss that is a plain mean over pairs; the
        # token-level loss leaves pairs with no compared token out of its mean, so splitting a batch would
        # re-weight the others: it keeps whole micro-batches.
        self.packs = True
        self.budgets = self.score_loss is not None

    def load(self, split: SplitConfig, data: DataConfig, report: SkipReport) -> list[Pair]:
        if plain_pairs(split, data):  # read as pairs, not detected, as data/parallel.py streams them
            data = replace(data, format="pairs")
        return super().load(split, data, report)

    def encode(self, examples: list[Pair], renderer, encoder) -> list[EncodedPair]:
        return encode_pairs(examples, renderer, encoder)

    def length(self, item: EncodedPair) -> int:
        return max(len(item.chosen.input_ids), len(item.rejected.input_ids))

    def margins(self, items: list[EncodedPair]) -> list[float]:
        """Each pair's margin: its own ``margin`` field with ``loss.use_margin_field``, else ``loss.margin``."""
        c = self.loss_cfg
        return [p.margin if (p.margin is not None and c.use_margin_field) else c.margin for p in items]

    def collate(self, items: list[EncodedPair], pad_id: int, side: str) -> TaskBatch:
        tokens = pad_batch([p.chosen for p in items] + [p.rejected for p in items], pad_id, side)
        return TaskBatch(tokens, self._targets(items))

    def collate_packed(self, items: list[EncodedPair], kind, pad_id, row_tokens, attention_cost=None) -> TaskBatch:
        """Each pair as one group (the prompt once, two branches); rewards come out chosen then rejected."""
        tokens = pack_pairs([p.chosen for p in items], [p.rejected for p in items], kind, pad_id, row_tokens,
                            attention_cost)
        return TaskBatch(tokens, self._targets(items))

    def _targets(self, items: list[EncodedPair]) -> dict[str, torch.Tensor]:
        targets = {"margin": torch.tensor(self.margins(items), dtype=torch.float32),
                   "response_start": torch.tensor([p.chosen.response_start for p in items]
                                                  + [p.rejected.response_start for p in items])}
        if self.ensemble:  # each head's bootstrap count of each pair, from its source position (ensemble_step.py)
            targets["bootstrap"] = ensemble_weights([p.where for p in items], self.cfg.model.ensemble_size, self.cfg)
        return targets

    def pair_regularizers(self, r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
        """``loss.centering`` and ``loss.l2``; 0 when both are off."""
        extra = r_chosen.new_zeros(())
        if self.loss_cfg.centering:
            extra = extra + reward_centering(r_chosen, r_rejected, self.loss_cfg.centering)
        if self.loss_cfg.l2:
            extra = extra + l2_scores(torch.cat([r_chosen, r_rejected]), self.loss_cfg.l2)
        return extra

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        if self.score_loss is None:
            return self._token_level_loss(out, batch)
        margin = batch.targets["margin"]
        b = margin.shape[0]
        margin = margin if bool((margin != 0).any()) else None
        if self.ensemble:  # the K heads' rewards [2B, K], each pair weighted per head by its bootstrap count
            rewards = out.logits.float()
            loss = ensemble_bradley_terry(rewards[:b], rewards[b:], batch.targets["bootstrap"], margin)
        else:
            rewards = out.rewards.float()  # the loss in fp32: bf16 log-sigmoid loses small margins
            loss = self.score_loss(rewards[:b], rewards[b:], margin)
        if self.loss_cfg.centering or self.loss_cfg.l2:
            loss = loss + self.pair_regularizers(rewards[:b], rewards[b:])
        return loss

    def _token_level_loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        b = batch.targets["margin"].shape[0]
        start = batch.targets["response_start"]
        if out.token_values is None:
            raise ValueError("loss token_level_pairwise needs per-token values: set model.head per_token")
        ids, mask = sequence_tokens(batch.tokens)
        loss = token_level_pairwise(out.token_values[:b], out.token_values[b:], ids[:b], ids[b:],
                                    mask[:b], mask[b:], start[:b], start[b:])
        return loss + self.pair_regularizers(out.rewards[:b], out.rewards[b:])

    def evaluate(self, model, items: list[EncodedPair], pad_id, device, batch_size) -> dict:
        return evaluate_pairs(model, items, pad_id, device, batch_size)

    def evaluate_in_run(self, accelerator, model, raw_model, items, pad_id, device, batch_size) -> dict:
        """Sharded over the processes (each scores its part, every pair counts once), on the module
        :func:`~rewardkit.training.distributed.eval_model` picks."""
        return evaluate_pairs(eval_model(accelerator, model, raw_model), items, pad_id, device, batch_size,
                              accelerator)

    def baseline(self, items: list[EncodedPair]) -> dict | None:
        """The longer-response-wins accuracy of the held-out pairs (what a length-only model would reach)."""
        return longer_wins_baseline([p.chosen_chars for p in items], [p.rejected_chars for p in items])


def sequence_tokens(tokens: TokenBatch | PackedBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """Each scored sequence's token ids and mask, in the layout of the read-out's ``token_values``.

    Padded: the batch's own rows (left or right padded). Packed: each sequence's tokens gathered from its row in
    order (``token_col``), right-padded by ``token_mask`` -- a tree row stores a shared prompt once, so this is
    where a branch's own sequence is read back whole.
    """
    if isinstance(tokens, PackedBatch):
        return tokens.input_ids[tokens.score_row[:, None], tokens.token_col], tokens.token_mask
    return tokens.input_ids, tokens.attention_mask


def evaluate_pairs(model, pairs: list[EncodedPair], pad_id: int, device, batch_pairs: int,
                   accelerator=None) -> dict:
    """Pairwise metrics; with several processes each scores its shard and every pair counts once."""
    n = len(pairs)
    if accelerator is not None and accelerator.num_processes > 1:
        chosen, rejected = score_pairs_sharded(accelerator, model, pairs, pad_id, batch_pairs)
        rewards = chosen + rejected
    else:
        seqs = [p.chosen for p in pairs] + [p.rejected for p in pairs]
        rewards = score_sequences(model, seqs, pad_id, device, max_tokens=batch_pairs * 2 * 512,
                                  max_batch=batch_pairs * 2)
    m = pairwise_metrics(rewards[:n], rewards[n:])
    if n:  # both O(n log n) on rewards already computed: cheap next to the forward passes
        m["auc"] = pairwise_auc(rewards[:n], rewards[n:])
        m["ece"] = pair_calibration(rewards[:n], rewards[n:])["ece"]
    return m


class BinaryTask(Task):
    """Accept/reject labels -> cross-entropy on the classifier head (or a scalar head read as one logit)."""

    format = "binary"

    def encode(self, examples: list[Labeled], renderer, encoder) -> list[EncodedExample]:
        return self._encode_single(examples, renderer, encoder, lambda ex: (int(ex.label), None))

    def collate(self, items, pad_id, side) -> TaskBatch:
        return TaskBatch(pad_batch([x.seq for x in items], pad_id, side),
                         {"labels": torch.tensor([x.target for x in items], dtype=torch.long)})

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        logits = out.logits
        if logits.shape[1] == 1:  # a scalar head as a binary logit: softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]
            logits = torch.cat([torch.zeros_like(logits), logits], 1)
        if logits.shape[1] != 2:
            raise ValueError(f"loss cross_entropy needs 2 classes (model.head classifier), got {logits.shape[1]}")
        weights = self.loss_cfg.class_weights
        if weights is not None and len(weights) != 2:
            raise ValueError(f"loss.class_weights needs 2 weights [reject, accept], got {weights}")
        w = torch.tensor(weights) if weights is not None else None
        return self.regularize(cross_entropy(logits, batch.targets["labels"], w), out.rewards)

    def evaluate(self, model, items, pad_id, device, batch_size) -> dict:
        rewards, logits = score_outputs(model, [x.seq for x in items], pad_id, device, batch_size)
        labels = torch.tensor([x.target for x in items])
        if logits.shape[1] == 1:
            logits = torch.cat([torch.zeros_like(logits), logits], 1)
        probability = getattr(model, "spec", None) is not None and model.spec.reward_from == "probability"
        m = binary_metrics(rewards.numpy(), labels.numpy(), threshold=0.5 if probability else 0.0)
        m.pop("calibration", None)
        m["loss"] = float(F.cross_entropy(logits.float(), labels))
        return m


class ScalarTask(Task):
    """Scalar ratings -> MSE or RMSE on the reward."""

    format = "scalar"

    def encode(self, examples: list[Rated], renderer, encoder) -> list[EncodedExample]:
        return self._encode_single(examples, renderer, encoder, lambda ex: (float(ex.score), None))

    def collate(self, items, pad_id, side) -> TaskBatch:
        return TaskBatch(pad_batch([x.seq for x in items], pad_id, side),
                         {"scores": torch.tensor([x.target for x in items], dtype=torch.float32)})

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        return self.regularize(get_loss(self.loss_cfg.name)(out.rewards, batch.targets["scores"]), out.rewards)

    def evaluate(self, model, items, pad_id, device, batch_size) -> dict:
        rewards, _ = score_outputs(model, [x.seq for x in items], pad_id, device, batch_size)
        m = scalar_metrics(rewards.numpy(), [x.target for x in items])
        m["loss"] = m.get(self.loss_cfg.name)
        return m


class MultiTask(Task):
    """Ratings of several attributes -> masked multi-attribute MSE on the K outputs of the multi head."""

    format = "multi"

    def __init__(self, cfg: RunConfig):
        super().__init__(cfg)
        if cfg.model.head != "multi" or not cfg.model.attributes:
            raise ValueError("loss multi_attribute_mse needs model.head multi and model.attributes")
        self.attributes = list(cfg.model.attributes)

    def encode(self, examples: list[MultiRated], renderer, encoder) -> list[EncodedExample]:
        names = self.attributes

        def target_of(ex):
            unknown = sorted(set(ex.scores) - set(names))
            if unknown and not hasattr(self, "_warned"):
                self._warned = True
                import logging

                logging.getLogger(__name__).warning("%s: attributes %s are not in model.attributes; ignored",
                                                    ex.where, unknown)
            vals = [ex.scores.get(a) for a in names]
            return [math.nan if v is None else float(v) for v in vals], [v is not None for v in vals]

        return [x for x in self._encode_single(examples, renderer, encoder, target_of) if any(x.mask)]

    def collate(self, items, pad_id, side) -> TaskBatch:
        return TaskBatch(pad_batch([x.seq for x in items], pad_id, side),
                         {"scores": torch.tensor([x.target for x in items], dtype=torch.float32),
                          "mask": torch.tensor([x.mask for x in items], dtype=torch.bool)})

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        loss = multi_attribute_mse(out.logits, batch.targets["scores"], batch.targets["mask"])
        return self.regularize(loss, out.rewards)

    def evaluate(self, model, items, pad_id, device, batch_size) -> dict:
        _, logits = score_outputs(model, [x.seq for x in items], pad_id, device, batch_size)
        target = torch.tensor([x.target for x in items], dtype=torch.float32)
        mask = torch.tensor([x.mask for x in items], dtype=torch.bool)
        per = multi_attribute_metrics({a: logits[:, k].numpy() for k, a in enumerate(self.attributes)},
                                      {a: target[:, k].numpy() for k, a in enumerate(self.attributes)})
        return {"n": len(items), "loss": float(multi_attribute_mse(logits, target, mask)),
                "mse": per["mean"]["mse"], "pearson": per["mean"]["pearson"], "spearman": per["mean"]["spearman"],
                "attributes": per["attributes"]}


class RankedTask(Task):
    """K ranked responses per prompt -> the K-choose-2 ranking loss; all K go through one forward."""

    format = "ranked"

    def encode(self, examples: list[Ranked], renderer, encoder) -> list[EncodedRanked]:
        out = []
        for ex in examples:
            # one group: every response keeps the same prompt tokens; ``drop`` removes only the over-long ones
            encoded = encoder.encode_group([renderer.render(ex.prompt, r) for r in ex.responses], ex.where)
            kept = [(s, rank) for s, rank in zip(encoded, ex.ranks, strict=True) if s is not None]
            seqs, ranks = [s for s, _ in kept], [rank for _, rank in kept]
            # an all-tied list carries a signal only for the soft tie term (A/B ties with data.ties: train)
            if len(seqs) >= 2 and (len(set(ranks)) >= 2 or self.loss_cfg.ties == "soft"):
                out.append(EncodedRanked(seqs, ranks, ex.where))
        return out

    def length(self, item: EncodedRanked) -> int:
        return max(len(s.input_ids) for s in item.seqs)

    def collate(self, items: list[EncodedRanked], pad_id, side) -> TaskBatch:
        seqs = [s for it in items for s in it.seqs]
        return TaskBatch(pad_batch(seqs, pad_id, side), self._targets(items))

    packs = True

    def collate_packed(self, items: list[EncodedRanked], kind, pad_id, row_tokens, attention_cost=None) -> TaskBatch:
        """Each list as one group: the prompt once, its K responses as branches. Rewards come out group-major,
        the flat order :meth:`collate` uses, so the same ``slot`` targets read them."""
        return TaskBatch(pack_groups([it.seqs for it in items], kind, pad_id, row_tokens, attention_cost),
                         self._targets(items))

    @staticmethod
    def _targets(items: list[EncodedRanked]) -> dict[str, torch.Tensor]:
        k = max(len(it.seqs) for it in items)
        slot = torch.full((len(items), k), -1, dtype=torch.long)  # row of each response in the flat batch
        ranks = torch.zeros((len(items), k), dtype=torch.long)
        row = 0
        for g, it in enumerate(items):
            n = len(it.seqs)
            slot[g, :n] = torch.arange(row, row + n)
            ranks[g, :n] = torch.tensor(it.ranks)
            row += n
        return {"slot": slot, "ranks": ranks}

    def loss(self, out: RewardOutput, batch: TaskBatch) -> torch.Tensor:
        slot, valid = batch.targets["slot"], batch.targets["slot"] >= 0
        grid = out.rewards[slot.clamp(min=0)]  # [G, K]; padded slots are masked by ``valid``
        loss = ranking(grid, batch.targets["ranks"], valid, self.loss_cfg.ties)
        return self.regularize(loss, out.rewards)

    def evaluate(self, model, items: list[EncodedRanked], pad_id, device, batch_size) -> dict:
        flat = [s for it in items for s in it.seqs]
        rewards, _ = score_outputs(model, flat, pad_id, device, batch_size)
        lists, row = [], 0
        for it in items:
            lists.append(rewards[row:row + len(it.seqs)])
            row += len(it.seqs)
        m = ranked_metrics([r.numpy() for r in lists], [[-x for x in it.ranks] for it in items])
        wins = pairs = 0
        loss_terms = []
        for r, it in zip(lists, items, strict=True):
            ranks = torch.tensor(it.ranks)
            better = ranks[:, None] < ranks[None, :]
            d = r[:, None] - r[None, :]
            wins += int((d[better] > 0).sum())
            pairs += int(better.sum())
            if better.any():  # a tied pair has no winner to score
                loss_terms.append(float(bradley_terry(d[better], torch.zeros_like(d[better]))))
        m["ranked_pairs"] = pairs  # not "pairs": that key marks pairwise metrics in reports
        m["pair_accuracy"] = wins / pairs if pairs else None
        m["loss"] = sum(loss_terms) / len(loss_terms) if loss_terms else None
        return m


TASKS: dict[str, type[Task]] = {
    "bradley_terry": PairTask, "log_exp": PairTask, "token_level_pairwise": PairTask, "cross_entropy": BinaryTask,
    "mse": ScalarTask, "rmse": ScalarTask, "ranking": RankedTask, "multi_attribute_mse": MultiTask,
}


STEP_LOSSES = ("step_bce", "step_ce")
"""Trained by :class:`rewardkit.training.step_task.StepTask` (imported when used: it subclasses :class:`Task`)."""


def make_task(cfg: RunConfig, model=None, tokenizer=None) -> Task:
    """The task of a run, from ``loss.name`` (each loss trains on one data format); with the fresh ``model`` and
    ``tokenizer``, the task prepares them (:meth:`Task.prepare_model`, e.g. the step task's step token)."""
    if cfg.loss.name in STEP_LOSSES:
        from .step_task import StepTask

        task = StepTask(cfg)
        if model is not None:
            task.prepare_model(model, tokenizer)
        return task
    try:
        cls = TASKS[cfg.loss.name]
    except KeyError:
        raise ValueError(f"unknown loss {cfg.loss.name!r}; known: {', '.join(TASKS)}") from None
    if cfg.loss.name == "token_level_pairwise" and cfg.model.head != "per_token":
        raise ValueError("loss token_level_pairwise needs model.head per_token (a value at every token)")
    is_ensemble(cfg, cfg.loss.name in PAIRWISE_LOSSES)  # an ensemble with another loss: a config error
    return cls(cfg)
