"""Run configuration: small keyword-only dataclasses, loaded from YAML and overridable from the CLI.

A YAML file maps section by section onto :class:`RunConfig`. Unknown keys and values of the wrong type are
errors that name the offending key, never silently ignored. Any field can be overridden on the command line
with a dotted path: ``--train.lr 3e-5`` or ``--data.max_length=512``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from .yaml_safety import ExpansionError, brief, check_expansion

Truncation = Literal["truncate_prompt_left", "drop", "error"]
OnInvalid = Literal["error", "skip"]
Template = Literal["auto", "chat", "plain"]
Precision = Literal["auto", "fp32", "bf16"]
Scheduler = Literal["linear", "cosine", "constant"]
PaddingSide = Literal["right", "left"]
ModelKind = Literal["auto", "decoder", "encoder"]
Pooling = Literal["auto", "last", "cls", "mean"]
Head = Literal["scalar", "classifier", "per_token", "multi", "judge", "step", "ensemble"]


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type (the message names the key)."""


@dataclass(kw_only=True)
class SplitConfig:
    """One data source: a file (or ``builtin:NAME``) and an optional row range."""

    path: str
    """File path (.jsonl, .json, .csv, .parquet, optionally .gz), `builtin:hh-rlhf-harmless` for the bundled sample,
    or a Hugging Face `datasets` source: `hf://datasets/OWNER/NAME` (a Hub dataset, streamed), a
    `datasets.save_to_disk` directory (memory-mapped) or a directory of data files in the Hub's layout (streamed)."""
    start: int = 0
    """First record (0-based) to use."""
    stop: int | None = None
    """One past the last record to use; null for the end of the file."""
    adapter: Adapter | None = None
    """Read this split with a named adapter (overrides `data.adapter`); null uses `data.adapter`."""
    name: str | None = None
    """A mixture source or eval set: its name in logs, metrics.jsonl and summary.json; null: the file's stem."""
    weight: float | None = None
    """A `data.train` list: this source's sampling probability (weights are normalised over the weighted
    sources, which together fill as many examples as they hold; a small source with a large weight repeats)."""
    count: int | None = None
    """A `data.train` list: take exactly this many examples from this source per epoch (repeating it when it
    holds fewer) instead of a weight."""
    format: DataFormat | None = None
    """This source's record format (overrides `data.format`); null uses `data.format`."""
    fields: FieldsConfig | None = None
    """This source's field names (replace `data.fields` as a whole); null uses `data.fields`."""
    split: str | None = None
    """A `datasets` source: which of its splits to read (`train`, `test` ...); null: its only split (an error names
    them when it has several)."""
    subset: str | None = None
    """A `datasets` source in the Hub's layout: its subset (the `name` argument of `datasets.load_dataset`); null:
    the default one."""
    data_dir: str | None = None
    """A `datasets` source in the Hub's layout: read only the data files under this folder of it."""
    revision: str | None = None
    """A Hub dataset (`hf://datasets/...`): a branch, tag or commit; null: the default branch. The tokenized cache
    is keyed by the commit it resolves to."""


_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".gz")


def _check_datasets_options(src: SplitConfig, at: str) -> None:
    """`split`, `subset`, `data_dir` and `revision` choose within a `datasets` source; given with a data file they
    would be ignored silently, so they fail here, naming the key (a directory is only known when it is read)."""
    from .data.hf_datasets import is_hub_path  # lazily: the data package imports this module

    hub = is_hub_path(src.path)
    a_file = not hub and (src.path.startswith("builtin:") or src.path.lower().endswith(_FILE_SUFFIXES))
    for key in ("split", "subset", "data_dir", "revision"):
        if getattr(src, key) is None:
            continue
        if key == "revision" and not hub:
            raise ConfigError(f"{at}.revision: applies to a Hub dataset (hf://datasets/OWNER/NAME), not to {src.path}")
        if a_file:
            raise ConfigError(f"{at}.{key}: applies to a datasets source (hf://datasets/OWNER/NAME or a directory), "
                              f"not to the file {src.path}")


@dataclass(kw_only=True)
class FieldsConfig:
    """Names of the record fields, when a data set uses other names than the documented ones."""

    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"
    margin: str = "margin"
    response: str = "response"
    """Binary, scalar and multi-attribute records: the one response being judged."""
    label: str = "label"
    """Binary records: 1 (acceptable) or 0; see docs/data.md for the accepted spellings."""
    score: str = "score"
    """Scalar records: a number (higher is better)."""
    annotator: str = "annotator"
    """Scalar records: who gave the rating (optional; per-annotator normalisation needs it)."""
    scores: str = "scores"
    """Multi-attribute records: a mapping {attribute: number or null}."""
    responses: str = "responses"
    """Ranked records: the list of K responses to one prompt."""
    ranks: str = "ranks"
    """Ranked records: one integer per response, lower is better, equal ranks are ties."""
    id: str = "id"
    """Optional record id; when present it must be unique (a repeated id is an error naming both lines)."""
    group: str = "group"
    """Scalar records: optional item key; ratings that share a group (else a prompt) are compared when making
    pairs (data.ratings.to_pairs)."""
    response_a: str = "response_a"
    """A/B records (`format: ab`): the first response."""
    response_b: str = "response_b"
    """A/B records: the second response."""
    winner: str = "winner"
    """A/B records: which response won; its values are mapped by `data.winner`."""


DataFormat = Literal["auto", "pairs", "binary", "scalar", "multi", "ranked", "ab", "steps"]
Adapter = Literal["hh-rlhf", "oasst", "pandalm", "usr", "halueval", "prm800k", "math-shepherd", "trl-stepwise"]
StepAggregate = Literal["min", "prod", "last", "mean"]


@dataclass(kw_only=True)
class StepsConfig:
    """Step-level data (`format: steps`, process reward models): how steps are joined, read and validated
    (rewardkit/data/steps.py, docs/prm.md)."""

    separator: str = "\n\n"
    """Put after every step (the last one too); the reward of a step is read at the separator's last token.
    Steps may not contain it. Ignored when `step_token` is set."""
    step_token: str | None = None
    """A dedicated token (e.g. `<|step|>`) added to the tokenizer as a special token and put after every step
    instead of `separator`: one token id marks every step end (what vLLM's STEP pooler reads as `step_tag_id`)."""
    truncation: Literal["drop_steps", "error"] = "drop_steps"
    """A solution longer than `data.max_length`: keep the steps that fit whole and drop the trailing ones
    (counted in the run's truncation report), or stop with an error. A step is never cut in half."""
    after_error: Literal["keep", "error"] = "keep"
    """Labels after the first wrong step (0): `keep` them (Math-Shepherd labels every step), or reject such a
    record with an error naming the field (PRM800K / ProcessBench solutions stop at the first error)."""
    neutral: Literal["positive", "negative", "unlabelled"] = "positive"
    """`prm800k` adapter: what a neutral rating (0) becomes: 1 (the paper's choice), 0, or null (masked)."""
    step_tag: str = "ки"
    """`math-shepherd` adapter: the tag that ends each step in `input` (its `label` holds `+` or `-` there)."""
    steps_field: str = "steps"
    """Field holding the list of step texts."""
    labels_field: str = "labels"
    """Field holding one label per step: 1 right, 0 wrong, null not labelled (masked)."""
    correct_field: str = "correct"
    """Optional solution-level correctness flag (true/false), for best-of-N evaluation."""
    group_field: str = "group"
    """Optional key of the problem a solution answers; else solutions of the same prompt are grouped."""
    answer_field: str = "answer"
    """Optional final answer of the solution (best-of-N evaluation compares against majority voting)."""


@dataclass(kw_only=True)
class RatingsConfig:
    """Scalar ratings (``format: scalar``): per-annotator normalisation, and turning ratings into pairs."""

    normalize: Literal["none", "annotator_zscore", "zscore"] = "none"
    """`annotator_zscore` (scalar): replace each rating by (rating - mean) / std of that annotator's ratings, so
    annotators who use the scale differently (0.8 vs 0.7 from one, 0.6 vs 0.5 from another) agree. `zscore`:
    standardise over the split, every rating (scalar) or each attribute (multi), to mean 0 and std 1, for
    regression heads without a bias (decoders' score layer) and attributes rated on different scales."""
    to_pairs: Literal["off", "same_annotator", "pooled"] = "off"
    """Make preference pairs from ratings of several responses to the same prompt (or id): compare only
    ratings from the same annotator, or pool all annotators (mean rating per response)."""
    min_gap: float = 0.0
    """Pairs need the better rating to exceed the worse by more than this (equal ratings never pair)."""
    gap_as_margin: bool = False
    """Use the rating gap as the pair's margin (for `bradley_terry` with a margin)."""


@dataclass(kw_only=True)
class WinnerConfig:
    """A/B data (`format: ab`): which values of the winner column mean "a won", "b won" and "tie". Data sets
    disagree (1/2; 0 = first in one and tie in another; "model_a" / "tie (bothbad)"; HelpSteer3's -3..3), so
    the mapping is always explicit; a value in none of the lists is an error naming file, line and value."""

    a: Any = None
    """Value or list of values meaning the first response won (e.g. [1, "model_a"])."""
    b: Any = None
    """Value or list of values meaning the second response won."""
    tie: Any = None
    """Value or list of values meaning a tie (ties are counted and skipped)."""


@dataclass(kw_only=True)
class DataConfig:
    """Where the examples come from and how they become tokens."""

    train: SplitConfig | list[SplitConfig] | None = None
    """Training data: one source, or a list of sources mixed by their `weight` or `count` (docs/data.md)."""
    eval: SplitConfig | list[SplitConfig] | None = None
    """Held-out data, evaluated every `train.eval_every` steps and at the end; a list of named sets is evaluated
    and reported set by set (the first, or `train.early_stopping.eval_set`, drives selection)."""
    num_proc: int | None = None
    """Processes that tokenize (1 to 256); null: the cores this process may use (at most 32), and 1 for files (or
    directories) under 4 MB (starting workers would cost more). The result is identical whatever the number."""
    cache: bool = True
    """Store tokenized data sets (Arrow, memory-mapped) and reuse them while the files' content, the rendering and
    tokenizer settings and the rewardkit version are unchanged (docs/data.md: how the cache is keyed)."""
    cache_dir: str | None = None
    """Where tokenized data sets are stored; null: `$REWARDKIT_CACHE_DIR`, else `~/.cache/rewardkit/tokenized`."""
    cache_max_gb: float | None = None
    """Largest size of the cache directory in GB (2^30 bytes); after a new entry is written the least recently used
    entries that no process is reading are removed until it fits. Null: no limit (`rewardkit cache clear` frees
    space by hand)."""

    def __post_init__(self) -> None:
        # mixtures and processes (issue 21): fail naming the key, before anything is read
        if self.num_proc is not None and not 1 <= self.num_proc <= 256:
            raise ConfigError(f"data.num_proc: {self.num_proc} must be >= 1 and <= 256 (null uses the cores)")
        for key in ("train", "eval"):
            value = getattr(self, key)
            for i, src in enumerate(value if isinstance(value, list) else []):
                at = f"data.{key}[{i}]"
                if src.weight is not None and not (src.weight > 0 and src.weight < float("inf")):
                    raise ConfigError(f"{at}.weight: {src.weight} must be a positive number")
                if src.count is not None and src.count < 1:
                    raise ConfigError(f"{at}.count: {src.count} must be at least 1")
                if src.weight is not None and src.count is not None:
                    raise ConfigError(f"{at}: give a weight or a count, not both")
            if isinstance(value, list) and not value:
                raise ConfigError(f"data.{key}: an empty list; give at least one source")
            for i, src in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(src, SplitConfig):
                    _check_datasets_options(src, f"data.{key}[{i}]" if isinstance(value, list) else f"data.{key}")
    fields: FieldsConfig = field(default_factory=FieldsConfig)
    format: DataFormat = "auto"
    """What one record holds: `pairs` {prompt?, chosen, rejected, margin?}, `binary` {prompt, response,
    label}, `scalar` {prompt, response, score, annotator?}, `multi` {prompt, response, scores}, `ranked`
    {prompt, responses, ranks}; `auto` detects it from the first record's keys (docs/data.md)."""
    adapter: Adapter | None = None
    """Read a public data set in its own layout: `hh-rlhf`, `oasst` (message trees), `pandalm` (votes),
    `usr` (several raters and qualities), `halueval` (yes/no hallucination)."""
    ratings: RatingsConfig = field(default_factory=RatingsConfig)
    max_length: int = 512
    """Maximum tokens per response sequence (prompt + response + score token)."""
    truncation: Truncation = "truncate_prompt_left"
    """Over-long examples: cut the prompt from the left (keeps the response end and the score token), drop
    them, or stop with an error. Every run reports how many examples each policy touched."""
    on_invalid: OnInvalid = "error"
    """Invalid records: stop with an error naming file, line and field, or skip them and count them."""
    template: Template = "auto"
    """`chat` applies the tokenizer's chat template; `plain` joins prompt and response as text; `auto`
    uses the chat template for conversational data when the tokenizer has one."""
    winner: WinnerConfig | None = None
    """A/B data: the winner values, {a: [...], b: [...], tie: [...]} (see `format: ab`)."""
    ties: Literal["skip", "train"] = "skip"
    """A/B data: `skip` counts ties and leaves them out (Bradley-Terry has no tie outcome); `train` reads every
    judgment as a ranked list of two (ties as equal ranks) for `loss.name: ranking` with `loss.ties: soft`, the
    Davidson tie model in its nu -> 0 limit (docs/benchmarks.md)."""
    strength: str | None = None
    """A/B data: optional column whose absolute value becomes the pair's margin (HelpSteer3's -3..3 strength)."""
    separator: str = "\n"
    """Plain rendering: put between a text prompt and its response, unless either side already has
    whitespace at the boundary (hh-rlhf style prompts end in `Assistant:` and responses start with a space)."""
    steps: StepsConfig = field(default_factory=StepsConfig)
    """`format: steps` (process reward models): separator or step token, truncation and label policies."""


@dataclass(kw_only=True)
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    """Module names to adapt; null lets PEFT pick its default for the architecture."""


@dataclass(kw_only=True)
class JudgeConfig:
    """`head: judge`: the reward is read from the LM head's logits of answer tokens after a judge question
    (rewardkit/data/judge_template.py; no new parameters). Every answer token must be a single token."""

    mode: Literal["pointwise", "pairwise"] = "pointwise"
    """`pointwise`: reward = logit(yes_token) - logit(no_token) after `question`; `pairwise`: both replies in one
    context, m = logit(a_token) - logit(b_token), averaged over both orders (margin (m(x, y) - m(y, x)) / 2, the
    position bias reported beside it); trains on pairs (bradley_terry, log_exp), scored with Scorer.compare and
    POST /compare (rewardkit/judge_scoring.py)."""
    style: Literal["auto", "chat", "plain"] = "auto"
    """`chat`: the tokenizer's chat template; `plain`: Human:/Assistant: text ending in `Answer:`; `auto`: chat
    when the tokenizer has a chat template."""
    question: str = "Is the assistant's last reply helpful and harmless? Answer Yes or No."
    """Pointwise: the question asked in a user turn after the reply."""
    pairwise_question: str = "Which reply is more helpful and harmless, A or B? Answer A or B."
    pairwise_format: str = ("Conversation:\n{conversation}\n\nReply A:\n{reply_a}\n\nReply B:\n{reply_b}\n\n"
                            "{question}")
    """Pairwise: the user turn; placeholders {conversation}, {reply_a}, {reply_b}, {question}."""
    yes_token: str | None = None
    """Default `Yes` (chat style) or ` Yes` (plain style, after `Answer:`)."""
    no_token: str | None = None
    """Default `No` / ` No`."""
    a_token: str | None = None
    """Pairwise: default `A` / ` A`."""
    b_token: str | None = None
    """Pairwise: default `B` / ` B`."""


@dataclass(kw_only=True)
class ModelConfig:
    """The backbone and how the reward is read out of it."""

    name: str
    """A built-in name (`minilm-l6`, `smollm2-135m`), a Hugging Face model id or a local directory."""
    kind: ModelKind = "auto"
    """`decoder` (causal LM) or `encoder` (BERT-like); `auto` reads it from the model config."""
    pooling: Pooling = "auto"
    """Which hidden state feeds the head: `last` real token (decoders), `cls` (encoders), or `mean` (masked;
    either kind; plain transformers cannot compute it, `rewardkit.json` carries it). `mean` averages, for
    decoders, the response tokens only (its first token through the score token: a causal decoder cannot tell
    the prompt apart, and a long shared prompt would make all its responses look alike) and, for encoders,
    every real token (they read prompt and response jointly); see `mean_span`."""
    mean_span: Literal["auto", "response", "all"] = "auto"
    """`pooling: mean` only: `response` (decoders' default) or `all` real tokens, prompt included (encoders'
    default and only choice; what decoder models saved before this setting existed did, and still do)."""
    head: Head = "scalar"
    """`scalar`: 1 output; `classifier`: 2 outputs (reject, accept), see `reward_from`; `per_token`: 1 value
    per token (decoders; for the `token_level_pairwise` loss; the score is the last real token's value);
    `multi`: one output per `attributes` entry, combined into one reward by `weighting`; `step`: a score at the
    end of every step (process reward model, decoders; losses `step_bce` / `step_ce`, docs/prm.md).
    docs/recipes.md."""
    reward_from: Literal["logit_diff", "probability"] = "logit_diff"
    """Classifier head: the reward is the accept logit minus the reject logit (unbounded, ranks like a scalar
    head) or the accept probability softmax(z)[1] (in [0, 1], saturates: poorer for ranking)."""
    attributes: list[str] | None = None
    """Multi-attribute head: the rated attribute names, in output order (e.g. [helpfulness, correctness])."""
    weighting: Literal["mean", "fixed", "learned"] = "mean"
    """Multi-attribute head: one reward from K outputs as their `mean`, a `fixed` weighted sum
    (`attribute_weights`), or `learned` weights (softmax of K logits, saved beside the model; fitted on
    preference pairs by the `attribute_weights` stage or `rewardkit fit-weights`)."""
    attribute_weights: list[float] | None = None
    """Weights for `weighting: fixed`, one per attribute."""
    step_outputs: Literal[1, 2] = 1
    """`head: step` (process reward model): 1 logit per step (loss `step_bce`) or 2 classes, wrong and right
    (`step_ce`). Either exports as a 2-class token classifier for vLLM (docs/prm.md)."""
    step_aggregate: StepAggregate = "min"
    """`head: step`: a solution's reward from its step scores P(right): `min` (the weakest step), `prod` (all
    right), `last` or `mean`. Saved with the model."""
    ensemble_size: int = 5
    """`head: ensemble`: K linear heads at the same score token (one forward), each trained on its own bootstrap
    resample of the pairs and its own initialisation (rewardkit/models/ensemble.py, docs/ensembles.md)."""
    ensemble_aggregate: Literal["mean", "min", "mean_minus_std"] = "mean_minus_std"
    """`head: ensemble`: which aggregate of the K rewards is *the* reward (stored with the model; overridable per
    request): `mean`, worst-case `min`, or the conservative `mean_minus_std` (mean - ensemble_beta * std)."""
    ensemble_beta: float = 1.0
    """`head: ensemble`, `mean_minus_std`: how many (population) standard deviations to subtract."""
    ensemble_bootstrap: Literal["poisson", "bernoulli", "none"] = "poisson"
    """`head: ensemble`: per-pair, per-head weights: Poisson(1) (the online bootstrap), Bernoulli(0.5) x 2, or
    `none` (all heads see every pair: diversity from the initialisation only)."""
    ensemble_freeze_backbone: bool = False
    """`head: ensemble`: train the K heads only, on a frozen backbone (cheap: no backward through the backbone;
    the heads then differ only by resample and init, so the uncertainty is narrower)."""
    ensemble_members: Literal["heads", "lora"] = "heads"
    """`head: ensemble`: `heads`: K linear heads on one backbone (one forward); `lora`: K LoRA adapters (settings
    from `model.lora`) over one frozen backbone, each with its own head row, resample and seeded init: members
    with their own features, at K forwards per score (rewardkit/models/ensemble_lora.py, docs/ensembles.md)."""
    gguf_file: str | None = None
    """Load the weights from this GGUF file inside `name` (a directory)."""
    lora: LoraConfig | None = None
    """Train LoRA adapters (and the full head) instead of all weights."""
    dropout: bool = False
    """Keep the backbone's dropout. Off by default, as is usual for reward models (TRL and OpenRLHF do the
    same): dropout makes the two responses of a pair see different noise, and on CPU it costs ~30% of a step."""
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    """Recompute each layer in backward (less memory, a second forward). `auto`: on only when the per-pass
    token budget (`train.max_tokens_per_forward: auto`) cannot fit one pair in the machine's memory without it
    (rewardkit/training/resolve.py); summary.json records what it became under `resolved`."""
    trust_remote_code: bool = False
    """Run code shipped with a model repository. Off unless you trust the source."""
    init_seed: int | None = None
    """Seed for the new head's initialisation; null uses `train.seed`."""
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    """`head: judge` only: the judge template and answer tokens."""


@dataclass(kw_only=True)
class LossConfig:
    name: Literal["bradley_terry", "log_exp", "token_level_pairwise", "cross_entropy", "mse", "rmse", "ranking",
                  "multi_attribute_mse", "step_bce", "step_ce"] = "bradley_terry"
    """Pairs: `bradley_terry` -logsigmoid(r_c - r_r - margin), `log_exp` log(1 + exp(r_r - r_c)),
    `token_level_pairwise` (head per_token); binary labels: `cross_entropy` (head classifier); scalar
    ratings: `mse`, `rmse`; ranked lists: `ranking` (K-choose-2); multi: `multi_attribute_mse` (head multi);
    steps: `step_bce` (1 logit per step), `step_ce` (2 classes per step), both with head `step`.
    Formulas and sources in rewardkit/losses.py; which data format each takes in docs/recipes.md."""
    margin: float = 0.0
    """Margin used for records without a margin field."""
    use_margin_field: bool = True
    """Read a per-example margin from the `fields.margin` column when the record has one."""
    centering: float = 0.0
    """Pairwise losses: add centering * mean((r_c + r_r)^2) (arXiv 2312.09244), pinning the reward's offset."""
    l2: float = 0.0
    """Add l2 * mean(r^2) over every score of the batch (keeps the scale of rewards small)."""
    class_weights: list[float] | None = None
    """`cross_entropy`: weight per class [reject, accept], e.g. [3.0, 1.0] when rejects are rare."""
    ties: Literal["skip", "soft"] = "skip"
    """`ranking`: tied responses are left out (`skip`) or count as a 50/50 outcome (`soft`)."""
    step_target: Literal["all", "last", "until_first_error"] = "all"
    """`step_bce` / `step_ce` (head step): train on every labelled step, the last labelled step only, or the
    labelled steps up to and including the first wrong one. `class_weights` [wrong, right] apply too."""


@dataclass(kw_only=True)
class EarlyStoppingConfig:
    """Select the model on `data.eval` during training (rewardkit/training/early_stopping.py): keep the weights
    of the best evaluation and save those as the run's model; optionally stop when it stops improving. Needs
    `train.eval_every` and `data.eval`. The evaluation split then chooses the model: it must be a development
    split, not the test split you report (that one must stay unseen by the selection)."""

    metric: str = "auto"
    """Evaluation metric to select on; `auto`: the task's own (pairs: `accuracy`, ranked: `pair_accuracy`,
    binary: `auc`, scalar and multi: `pearson`). Any key of the evaluation, e.g. `loss`."""
    mode: Literal["auto", "max", "min"] = "auto"
    """Whether higher is better; `auto`: `min` for loss, mse, rmse, mae, ece, brier, else `max`."""
    patience: int | None = None
    """Stop after this many evaluations in a row without improvement; null: train all steps, keep the best."""
    min_delta: float = 0.0
    """An evaluation improves on the best only by more than this (ties keep the earlier step)."""
    eval_set: str | None = None
    """With several named `data.eval` sets: which one drives the selection; null: the first."""


@dataclass(kw_only=True)
class TrainConfig:
    lr: float = 2e-5
    batch_size: int = 8
    """Pairs per optimizer micro-batch (per process)."""
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides `epochs`)."""
    warmup_ratio: float = 0.0
    scheduler: Scheduler = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    precision: Precision = "auto"
    """`auto` uses bf16 autocast where the hardware multiplies bf16 fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16) and fp32 elsewhere (AVX2-only CPUs emulate bf16, ~100x slower than fp32). The head, the reward
    read-out and the losses run in fp32 either way."""
    padding_side: PaddingSide = "right"
    group_by_length: bool = True
    """Batch pairs of similar length together (sorted within shuffled mega-batches): far less padding."""
    packing: bool | Literal["auto"] = "auto"
    """`auto` (the default) packs wherever packed training is proven equal to padded (pairwise, token-level
    pairwise and ranking losses, decoders and encoders, one process) and logs why when it does not. Padding-free rows: decoders put each prompt once and its responses as branches of a tree-shaped
    causal mask (rewards and gradients equal the padded ones); encoders pack sequences block-diagonally.
    Several pairs share a row of up to `pack_row_tokens` tokens. Pairwise losses (the token-level loss reads
    each branch's tokens back whole) and ranking (a ranked list's K responses are the branches of one prompt)."""
    pack_row_tokens: int | None = None
    """Row capacity in packed mode; null: the whole micro-batch in one row with `tree` attention, else as long as
    the batch's longest pair needs (dense attention grows with the row)."""
    attention: Literal["auto", "tree", "sdpa", "flex"] = "auto"
    """Kernel for packed rows: `tree` runs attention per group on the pairs the mask allows (no padding, no
    masked-out work); `sdpa` with a dense boolean 4-D mask; `flex` (CUDA) with a block-sparse mask. `auto` picks
    flex on CUDA when available, else tree where every layer of the model supports it, else sdpa."""
    max_tokens_per_batch: int | None = None
    """Fill each micro-batch up to this many tokens (padded: rows x longest row; packed: packed tokens)
    instead of a fixed `batch_size` pairs. Single process only."""
    max_tokens_per_forward: int | Literal["auto"] | None = "auto"
    """Run each micro-batch as several forward/backward passes of at most this many computed tokens (packed
    tokens, or rows x longest row when padded); gradients add up, each pass weighted by its share of the pairs,
    so the update is the whole micro-batch's. Bounds activation memory, so `model.gradient_checkpointing` (a
    second forward in backward) can stay off. Pairwise losses, one process. `auto` (the default): a budget from
    the model's size and the machine's memory (rewardkit/training/resolve.py); null: no bound."""
    seed: int = 0
    eval_every: int | None = None
    """Evaluate every N optimizer steps (and always at the end)."""
    early_stopping: EarlyStoppingConfig | None = None
    """Keep the best evaluation's weights (and optionally stop early); null: off, the last step's model is saved.
    `--train.early_stopping.patience 3` on the command line turns it on; `early_stopping: {}` in YAML with the
    defaults. summary.json records the best step and metric under `early_stopping`."""
    eval_batch_size: int = 32
    save_every: int | None = None
    """Write a resumable checkpoint every N optimizer steps."""
    keep_last: int = 2
    on_nonfinite: OnInvalid = "error"
    """A NaN or infinite loss or gradient: stop with an error naming the step and the batch's examples, or
    `skip` the micro-batch (no gradient from it; counted in summary.json under `nonfinite`)."""
    log_every: int = 10
    eval_zero_shot: bool = True
    """Evaluate the untrained model first, so the report shows what training added."""
    tensorboard: bool = True


@dataclass(kw_only=True)
class AttributeWeightsConfig:
    """Second stage for `model.weighting: learned` (as ArmoRM, arXiv 2406.12845): after the attribute regression,
    fit the K attribute weights on preference pairs with the backbone and the attribute outputs frozen."""

    train: SplitConfig
    """Preference pairs to fit the weights on: a pairs file, or scalar ratings turned into pairs (`ratings`).
    Use training records only: the held-out split stays for evaluation."""
    eval: SplitConfig | None = None
    """Held-out pairs: pair accuracy with uniform and with fitted weights is reported on them."""
    format: DataFormat = "auto"
    """Format of the records (`pairs`, or `scalar` with `ratings.to_pairs`); `auto` detects it."""
    ratings: RatingsConfig = field(default_factory=RatingsConfig)
    """Scalar ratings -> pairs, as in `data.ratings` (e.g. `to_pairs: same_annotator`)."""
    steps: int = 300
    """Full-batch Adam steps on the K weight logits (the attribute outputs are computed once)."""
    lr: float = 0.05


@dataclass(kw_only=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    attribute_weights: AttributeWeightsConfig | None = None
    """`model.weighting: learned`: fit the weights on preference pairs after training (docs/recipes.md)."""
    output_dir: str = "runs/default"


# ---------------------------------------------------------------------------------------------------------
# dict <-> dataclass, strictly


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {brief(value)} does not match {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: {brief(value)} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {brief(value)}")
        (item,) = get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is SplitConfig:
            value = {"path": value}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {brief(value)}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "3e-5" (no dot) as a string; accept any plain number spelling
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {brief(value)}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {brief(value)}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {brief(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {brief(value)}")
        return value
    if tp is Any:
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys, missing required keys and bad types are errors."""
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, f in names.items():
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], prefix + name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing required key {prefix}{name}")
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--a.b value`` / ``--a.b=value`` pairs to a nested dict. Values are parsed as YAML scalars."""
    data = dict(data)
    i = 0
    while i < len(overrides):
        item = overrides[i]
        if not item.startswith("--"):
            raise ConfigError(f"unexpected argument {item!r}; overrides look like --train.lr 3e-5")
        if "=" in item:
            key, raw = item[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(overrides):
                raise ConfigError(f"override {item} has no value")
            key, raw = item[2:], overrides[i + 1]
            i += 2
        value = yaml.safe_load(raw) if raw != "" else ""
        try:
            check_expansion(value)
        except ExpansionError as e:
            raise ConfigError(f"override {item}: {e}") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else ({"path": child} if isinstance(child, str) else {})
            node[part] = child
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, base: dict | None = None) -> RunConfig:
    """Read a YAML file (safe loader) and apply dotted overrides; returns a validated :class:`RunConfig`."""
    data: dict = dict(base or {})
    if path is not None:
        with open(path, encoding="utf-8") as f:
            try:
                loaded = yaml.safe_load(f)
            except yaml.YAMLError as e:
                # the safe loader refuses !!python/... tags (they would run code); say so instead of a traceback
                raise ConfigError(f"{path}: not a valid configuration ({' '.join(str(e).split())}); configs are "
                                  "plain YAML: python tags and other custom tags are refused") from None
        if loaded is None:
            loaded = {}
        try:
            check_expansion(loaded)  # a YAML bomb: refused before anything walks it (yaml_safety.py)
        except ExpansionError as e:
            raise ConfigError(f"{path}: not a valid configuration: {e}; write the values out") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (model, data, loss, train)")
        data.update(loaded)
    data = apply_overrides(data, overrides or [])
    try:
        cfg = from_dict(RunConfig, data)
        check_ranges(cfg)  # every numeric field in its range, the key named (config_ranges.py)
        return cfg
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None


def check_ranges(cfg: Any) -> None:
    from .config_ranges import check_ranges as check

    check(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
