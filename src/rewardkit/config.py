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

Truncation = Literal["truncate_prompt_left", "drop", "error"]
OnInvalid = Literal["error", "skip"]
Template = Literal["auto", "chat", "plain"]
Precision = Literal["auto", "fp32", "bf16"]
Scheduler = Literal["linear", "cosine", "constant"]
PaddingSide = Literal["right", "left"]
ModelKind = Literal["auto", "decoder", "encoder"]
Pooling = Literal["auto", "last", "cls", "mean"]
Head = Literal["scalar", "classifier", "per_token", "multi", "ensemble"]


class ConfigError(ValueError):
    """A configuration value is unknown, missing or of the wrong type (the message names the key)."""


@dataclass(kw_only=True)
class SplitConfig:
    """One data source: a file (or ``builtin:NAME``) and an optional row range."""

    path: str
    """File path (.jsonl, .json, .csv, .parquet, optionally .gz), a `datasets.save_to_disk` directory, or
    `builtin:hh-rlhf-harmless` for the bundled sample."""
    start: int = 0
    """First record (0-based) to use."""
    stop: int | None = None
    """One past the last record to use; null for the end of the file."""
    adapter: Adapter | None = None
    """Read this split with a named adapter (overrides `data.adapter`); null uses `data.adapter`."""


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


DataFormat = Literal["auto", "pairs", "binary", "scalar", "multi", "ranked"]
Adapter = Literal["hh-rlhf", "oasst", "pandalm", "usr", "halueval"]


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
class DataConfig:
    """Where the examples come from and how they become tokens."""

    train: SplitConfig | None = None
    """Training data."""
    eval: SplitConfig | None = None
    """Held-out data, evaluated every `train.eval_every` steps and at the end."""
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
    separator: str = "\n"
    """Plain rendering: put between a text prompt and its response, unless either side already has
    whitespace at the boundary (hh-rlhf style prompts end in `Assistant:` and responses start with a space)."""


@dataclass(kw_only=True)
class LoraConfig:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    """Module names to adapt; null lets PEFT pick its default for the architecture."""


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
    `multi`: one output per `attributes` entry, combined into one reward by `weighting`. docs/recipes.md."""
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
    gguf_file: str | None = None
    """Load the weights from this GGUF file inside `name` (a directory)."""
    lora: LoraConfig | None = None
    """Train LoRA adapters (and the full head) instead of all weights."""
    dropout: bool = False
    """Keep the backbone's dropout. Off by default, as is usual for reward models (TRL and OpenRLHF do the
    same): dropout makes the two responses of a pair see different noise, and on CPU it costs ~30% of a step."""
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    """Run code shipped with a model repository. Off unless you trust the source."""
    init_seed: int | None = None
    """Seed for the new head's initialisation; null uses `train.seed`."""


@dataclass(kw_only=True)
class LossConfig:
    name: Literal["bradley_terry", "log_exp", "token_level_pairwise", "cross_entropy", "mse", "rmse", "ranking",
                  "multi_attribute_mse"] = "bradley_terry"
    """Pairs: `bradley_terry` -logsigmoid(r_c - r_r - margin), `log_exp` log(1 + exp(r_r - r_c)),
    `token_level_pairwise` (head per_token); binary labels: `cross_entropy` (head classifier); scalar
    ratings: `mse`, `rmse`; ranked lists: `ranking` (K-choose-2); multi: `multi_attribute_mse` (head multi).
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
    """`auto` uses bf16 autocast only where the hardware multiplies bf16 fast (CUDA with bf16, CPUs with
    AMX or AVX512-BF16); on other CPUs bf16 is emulated and far slower than fp32."""
    padding_side: PaddingSide = "right"
    group_by_length: bool = True
    """Batch pairs of similar length together (sorted within shuffled mega-batches): far less padding."""
    packing: bool = False
    """Padding-free rows: decoders put each prompt once and its responses as branches of a tree-shaped
    causal mask (rewards and gradients equal the padded ones); encoders pack sequences block-diagonally.
    Several pairs share a row of up to `pack_row_tokens` tokens. Pairwise and ranking losses (a ranked list's K
    responses are the branches of one prompt)."""
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
    max_tokens_per_forward: int | None = None
    """Run each micro-batch as several forward/backward passes of at most this many computed tokens (packed
    tokens, or rows x longest row when padded); gradients add up, each pass weighted by its share of the pairs,
    so the update is the whole micro-batch's. Bounds activation memory, so `model.gradient_checkpointing` (a
    second forward in backward) can stay off. Pairwise losses, one process."""
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
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} does not match {_type_name(tp)}")
    if origin is Literal:
        if value not in get_args(tp):
            choices = ", ".join(repr(a) for a in get_args(tp))
            raise ConfigError(f"{key}: {value!r} is not one of {choices}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if isinstance(value, str) and tp is SplitConfig:
            value = {"path": value}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads "3e-5" (no dot) as a string; accept any plain number spelling
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
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
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections (model, data, loss, train)")
        data.update(loaded)
    data = apply_overrides(data, overrides or [])
    try:
        return from_dict(RunConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}" if path else str(e)) from None


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
