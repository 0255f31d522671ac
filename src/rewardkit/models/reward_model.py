"""The reward model: a transformers ``*ForSequenceClassification`` model read at an explicit score token.

We keep the backbone inside the transformers class that fits it (``LlamaForSequenceClassification``,
``BertForSequenceClassification`` ...) so the saved directory loads in plain transformers. What we change is
*where the reward is read*: at the recorded score index, not at "the last token that is not pad", and with
position ids counted over real tokens, so that neither the padding side nor ``pad == eos`` moves a score.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..types import PackedBatch, TokenBatch
from .backbones import detach_gguf_quantizer, is_encoder_config, load_config, load_tokenizer, resolve_model
from .cls_readout import cls_only
from .fp32 import FP32Head, fp32_forward
from .head_kinds import head_kind
from .heads import HeadExtras, HeadSpec, RewardOutput, combine, spec_from_config
from .packed import packed_outputs
from .readout import mean_mask, read_out
from .weights_check import check_weights_dir

log = logging.getLogger(__name__)

META_FILE = "rewardkit.json"
PAD_TOKEN = "<|rewardkit_pad|>"


@dataclass(kw_only=True)
class ModelMeta:
    """What a consumer needs to reproduce our scores; saved next to the weights as ``rewardkit.json``."""

    kind: str
    """`decoder` or `encoder`."""
    pooling: str
    """`last` (decoders: the score token), `cls` (encoders) or `mean` (masked mean over `mean_span`)."""
    mean_span: str | None = None
    """`mean` pooling: `response` (decoders: first response token through the score token) or `all` real tokens
    (encoders). Absent (null) in models saved before it was recorded: those averaged all real tokens, and
    :func:`load_reward_model` keeps that, so an older model scores as it was trained."""
    head: str = "scalar"
    """`scalar`, `classifier`, `per_token`, `multi` or `step` (see rewardkit/models/heads.py)."""
    step_outputs: int = 1
    """`step` head: 1 logit or 2 classes (wrong, right) per step."""
    step_aggregate: str = "min"
    """`step` head: the solution's reward from its step scores: min, prod, last or mean."""
    steps: dict | None = None
    """`step` head: how steps are rendered, {separator, step_token, step_token_id, truncation}
    (rewardkit.config.StepsConfig)."""
    reward_from: str = "logit_diff"
    attributes: list[str] | None = None
    weighting: str = "mean"
    attribute_weights: list[float] | None = None
    ensemble_size: int | None = None
    """`ensemble` head: K (transformers `num_labels`); the reward is `ensemble_aggregate` (`mean`, `min`,
    `mean_minus_std`) of the K outputs, with `ensemble_beta` (models/ensemble.py). Null for other heads."""
    ensemble_aggregate: str | None = None
    ensemble_beta: float | None = None
    ensemble_members: str | None = None
    """`ensemble` head: `heads` (K heads on one backbone) or `lora` (K LoRA adapters under `adapters/`,
    models/ensemble_lora.py); null for other heads and for ensembles saved before it was recorded (heads)."""
    score_token: str = ""
    """The token appended at the end of every rendered response and read for the reward (decoders)."""
    score_token_id: int | None = None
    template: str = "auto"
    separator: str = "\n"
    max_length: int = 512
    truncation: str = "truncate_prompt_left"
    padding_side: str = "right"
    normalization: dict | None = None
    """{"mean": m, "std": s} fitted on an evaluation set; normalised reward = (r - mean) / std."""
    judge: dict | None = None
    """`head: judge`: the judge template settings, the answer token ids and pieces, the score token id and the
    vLLM command that serves the directory (rewardkit/models/judge.py)."""
    base_model: str = ""
    rewardkit_version: str = ""
    training: dict = field(default_factory=dict)

    def save(self, directory: str | Path) -> None:
        Path(directory, META_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> ModelMeta:
        data = json.loads(Path(directory, META_FILE).read_text(encoding="utf-8"))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


class RewardModel(nn.Module):
    """Backbone + pooling + head. ``forward(batch) -> rewards [N]`` in fp32; ``outputs(batch)`` gives the head's
    logits (and per-token values) too, for the losses."""

    def __init__(self, hf: nn.Module, kind: str, spec: HeadSpec | None = None):
        super().__init__()
        self.hf = hf
        self.kind = kind
        self.spec = (spec or HeadSpec(pooling="cls" if kind == "encoder" else "last")).resolve(kind)
        self.extras = HeadExtras(self.spec)

    @property
    def transformer(self) -> nn.Module:
        """The plain transformers model (under the LoRA wrapper, if any)."""
        hf = self.hf
        return hf.get_base_model() if hasattr(hf, "get_base_model") else hf

    def _head(self) -> FP32Head:
        """The head, called in fp32 even under bf16 autocast (models/fp32.py: bf16 loses small margins)."""
        tm = self.transformer
        for name in ("score", "classifier"):
            if hasattr(tm, name):
                return FP32Head(getattr(tm, name))
        raise AttributeError(f"{type(tm).__name__} has no 'score' or 'classifier' head")

    def forward(self, batch: TokenBatch, full: bool = False) -> torch.Tensor | RewardOutput:
        """Rewards [N]; with ``full`` the whole :class:`RewardOutput` (through ``forward``, so DDP sees it)."""
        out = self.outputs(batch)
        return out if full else out.rewards

    def outputs(self, batch: TokenBatch | PackedBatch) -> RewardOutput:
        if isinstance(batch, PackedBatch):
            return packed_outputs(self, batch)
        kwargs = {"token_type_ids": batch.token_type_ids} if batch.token_type_ids is not None else {}
        if self.kind == "encoder" and self.spec.pooling == "cls":
            tm = self.transformer
            with cls_only(tm), fp32_forward(getattr(tm.base_model, "pooler", None), getattr(tm, "classifier", None)):
                # the last layer computes the [CLS] row only: same logits; pooler and head in fp32
                logits = self.transformer(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                          position_ids=batch.position_ids, **kwargs).logits.float()
            return RewardOutput(combine(logits, self.spec, self.extras), logits)
        if self.kind == "decoder":
            kwargs["use_cache"] = False
        out = self.transformer.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                                          position_ids=batch.position_ids, **kwargs)
        return read_out(self, out.last_hidden_state, batch.read_index())

    def mean_mask(self, batch: TokenBatch) -> torch.Tensor:
        """[N, L] mask of the tokens ``mean`` pooling averages: the response span (decoders) or every real token."""
        return mean_mask(self.spec, batch.read_index())

    # -- saving --------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, tokenizer, meta: ModelMeta) -> None:
        """Write a directory that ``AutoModelForSequenceClassification.from_pretrained`` loads as it is."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        hf = self.plain_hf()
        if hasattr(hf, "merge_and_unload"):
            # LoRA: merge adapters into a copy, so the head (in modules_to_save) and adapters are both saved
            hf = copy.deepcopy(hf).merge_and_unload()
        for p in hf.parameters():
            if not torch.isfinite(p).all():
                raise FloatingPointError("refusing to save: the model has NaN or infinite weights")
        hf.save_pretrained(directory, safe_serialization=True)
        tokenizer.save_pretrained(directory)
        self.extras.save(directory)
        meta = dataclasses.replace(meta, **self.spec.to_meta())  # the read-out travels with the weights
        if self.spec.head_kind.lm_head:  # the judge: template, answer tokens, how vLLM serves this directory
            from .judge import vllm_command

            arch = (hf.config.architectures or [type(hf).__name__])[0]
            meta.judge = {**(meta.judge or {}), "vllm_command": vllm_command(str(directory), meta.judge, arch)}
        meta.save(directory)
        self.save_members(directory)

    def plain_hf(self) -> nn.Module:
        """The transformers model that ``save_pretrained`` and export write (a K LoRA ensemble: without its
        adapters, models/ensemble_lora.py)."""
        return self.hf

    def save_members(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """Weights written beside the transformers model (a K LoRA ensemble's adapters); none here."""


def build_meta(model: RewardModel, tokenizer, data, base_model: str, training: dict,
               score_token_id: int | None = None) -> ModelMeta:
    """The one place a :class:`ModelMeta` is made from a model (the trainer at the end of a run, export from a
    checkpoint): read-out from the model's spec, text layout from the data config (``DataConfig``), the score
    token from the tokenizer (decoders: ``score_token_id``, else EOS; encoders: [CLS])."""
    from .._version import __version__

    encoder = model.kind == "encoder"
    sid = None if encoder else (score_token_id if score_token_id is not None else tokenizer.eos_token_id)
    meta = ModelMeta(kind=model.kind, pooling=model.spec.pooling,
                     score_token="[CLS]" if encoder else tokenizer.convert_ids_to_tokens(sid), score_token_id=sid,
                     template=data.template, separator=data.separator, max_length=data.max_length,
                     truncation=data.truncation, padding_side="right", base_model=base_model,
                     rewardkit_version=__version__, training=training,
                     judge=getattr(model, "judge_settings", None))
    return dataclasses.replace(meta, **model.spec.to_meta())


def _set_pad_token(tokenizer, hf_model, kind: str) -> None:
    """Give decoders a pad token distinct from EOS, so transformers' own "last non-pad token" rule reads the
    same (EOS) position that rewardkit reads. Adds one embedding row when the tokenizer has no such token."""
    if kind == "encoder":
        if tokenizer.pad_token_id is None:
            raise ValueError("the encoder's tokenizer has no pad token")
    elif tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
        hf_model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    hf_model.config.pad_token_id = tokenizer.pad_token_id


def disable_dropout(config) -> None:
    """Set every dropout probability of a transformers config to 0 (names vary: attention_dropout,
    hidden_dropout_prob, resid_pdrop ...)."""
    for key, value in config.to_dict().items():
        if isinstance(value, float) and ("dropout" in key or "pdrop" in key):
            setattr(config, key, 0.0)


def build_model(cfg, seed: int = 0) -> tuple[RewardModel, object, str]:
    """Load the backbone for training with a fresh head (``cfg.head``); returns (model, tokenizer, kind)."""
    from transformers import AutoModelForSequenceClassification

    if head_kind(cfg.head).lm_head:
        return build_judge_model(cfg)
    path, gguf = resolve_model(cfg.name, cfg.gguf_file)
    tokenizer = load_tokenizer(path, gguf, cfg.trust_remote_code)
    config = load_config(path, gguf, cfg.trust_remote_code)
    kind = cfg.kind if cfg.kind != "auto" else ("encoder" if is_encoder_config(config) else "decoder")
    spec = spec_from_config(cfg, kind)
    config = load_config(path, gguf, cfg.trust_remote_code, num_labels=spec.num_labels)
    if not cfg.dropout:
        disable_dropout(config)
    # a head of another size in the checkpoint (a 1-output reward model fine-tuned as a classifier) is replaced
    kwargs = {"config": config, "trust_remote_code": cfg.trust_remote_code, "dtype": torch.float32,
              "ignore_mismatched_sizes": spec.num_labels != 1}
    if gguf:
        kwargs["gguf_file"] = gguf
    else:  # pickle-only or truncated weights: an error naming the file before transformers opens it
        check_weights_dir(path, "backbone")
        kwargs["use_safetensors"] = True
    torch.manual_seed(cfg.init_seed if cfg.init_seed is not None else seed)  # the new head's initialisation
    hf = AutoModelForSequenceClassification.from_pretrained(path, **kwargs)
    if gguf:
        detach_gguf_quantizer(hf)  # weights are de-quantised fp32 now; keep the model saveable
    _set_pad_token(tokenizer, hf, kind)
    if cfg.gradient_checkpointing is True:  # `auto`: decided later, from the token budget (training/resolve.py)
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if spec.head == "ensemble":
        _prepare_ensemble(hf, cfg, seed)
    if spec.ensemble_members == "lora":  # K adapters over the frozen backbone (models/ensemble_lora.py)
        from .ensemble_lora import build_lora_ensemble

        return build_lora_ensemble(hf, kind, spec, cfg.lora, cfg.init_seed if cfg.init_seed is not None else seed), \
            tokenizer, kind
    if cfg.lora is not None:
        hf = apply_lora(hf, cfg.lora)
    return RewardModel(hf, kind, spec), tokenizer, kind


def build_judge_model(cfg) -> tuple[RewardModel, object, str]:
    """``head: judge``: the backbone as a causal LM, read by its own LM head (no new parameters)."""
    from .judge import apply_judge_lora, judge_head, judge_settings, load_causal_lm

    path, gguf = resolve_model(cfg.name, cfg.gguf_file)
    tokenizer = load_tokenizer(path, gguf, cfg.trust_remote_code)
    settings = judge_settings(cfg.judge, tokenizer)  # fails early on answer tokens that are not single tokens
    hf = load_causal_lm(path, gguf, cfg.trust_remote_code)
    if is_encoder_config(hf.config):
        raise ValueError("model.head judge needs a decoder (a causal LM with a language-model head)")
    if not cfg.dropout:
        disable_dropout(hf.config)
    if gguf:
        detach_gguf_quantizer(hf)
    _set_pad_token(tokenizer, hf, "decoder")
    if cfg.gradient_checkpointing:
        hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora is not None:
        hf = apply_judge_lora(hf, cfg.lora)
    model = RewardModel(hf, "decoder", HeadSpec(head="judge", pooling="last"))
    model.judge_head = judge_head(hf, settings)
    model.judge_settings = settings
    return model, tokenizer, "decoder"


def _prepare_ensemble(hf, cfg, seed: int) -> None:
    """Per-head initialisation seeds, and the frozen-backbone variant (models/ensemble.py)."""
    from .ensemble import freeze_backbone, init_heads

    head = hf.score if hasattr(hf, "score") else hf.classifier
    linear = head if isinstance(head, nn.Linear) else getattr(head, "out_proj", None)  # RoBERTa: dense->out_proj
    if linear is None:
        raise ValueError(f"model.head ensemble: {type(hf).__name__}'s head is not a linear layer")
    init_heads(linear, cfg.init_seed if cfg.init_seed is not None else seed,
               float(getattr(hf.config, "initializer_range", 0.02)))
    if cfg.ensemble_freeze_backbone:
        if cfg.ensemble_members == "lora":
            raise ValueError("model.ensemble_freeze_backbone: with ensemble_members lora the backbone is frozen "
                             "already (only the K adapters and heads train); leave it false")
        if cfg.lora is not None:
            raise ValueError("model.ensemble_freeze_backbone and model.lora exclude each other (a frozen backbone "
                             "has no adapters to train)")
        log.info("ensemble: frozen backbone, %d trainable parameters (the heads)", freeze_backbone(hf, head))


def apply_lora(hf, lora_cfg):
    from peft import LoraConfig, TaskType, get_peft_model

    head = "score" if hasattr(hf, "score") else "classifier"
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=lora_cfg.r, lora_alpha=lora_cfg.alpha,
                        lora_dropout=lora_cfg.dropout, target_modules=lora_cfg.target_modules,
                        modules_to_save=[head])
    model = get_peft_model(hf, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA: %d trainable parameters (adapters + the %s head)", trainable, head)
    return model


def model_from_config(hf_config, kind: str, tokenizer, spec: HeadSpec | None = None) -> RewardModel:
    """A randomly initialised reward model from a transformers config (tests and benchmarks)."""
    from transformers import AutoModelForSequenceClassification

    spec = spec or HeadSpec(pooling="cls" if kind == "encoder" else "last")
    spec.validate(kind)
    hf_config.num_labels = spec.num_labels
    hf = AutoModelForSequenceClassification.from_config(hf_config)
    _set_pad_token(tokenizer, hf, kind)
    return RewardModel(hf, kind, spec)


def load_reward_model(directory: str | Path, trust_remote_code: bool = False) -> tuple[RewardModel, object, ModelMeta]:
    """Load a saved reward model (safetensors only) with its tokenizer and metadata."""
    from transformers import AutoModelForSequenceClassification

    directory = Path(directory)
    if not (directory / META_FILE).exists():
        from .foreign import is_foreign_model, load_foreign_model

        if is_foreign_model(directory):  # a public transformers reward model: read as transformers reads it
            return load_foreign_model(directory, trust_remote_code)
        raise FileNotFoundError(f"{directory}: no {META_FILE}; not a rewardkit model directory (a training run "
                                "keeps its model in RUN/model)")
    if not any(directory.glob("*.safetensors")):
        pickled = sorted(p.name for p in directory.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
        found = f" (it holds {', '.join(pickled)})" if pickled else ""
        raise FileNotFoundError(f"{directory}: no .safetensors weights{found}; rewardkit loads weights from "
                                "safetensors only, since pickle files can run code when loaded. If you trust the "
                                "file, convert it once: model.save_pretrained(dir, safe_serialization=True)")
    meta = ModelMeta.load(directory)
    check_weights_dir(directory, "reward model")  # a truncated safetensors file: named, not a traceback
    if head_kind(meta.head).lm_head:
        from .judge import judge_head, load_causal_lm

        hf = load_causal_lm(str(directory), None, trust_remote_code, directory_load=True).eval()
        model = RewardModel(hf, "decoder", HeadSpec(head="judge", pooling="last"))
        model.judge_head = judge_head(hf, meta.judge)
        model.judge_settings = meta.judge
        return model.eval(), load_tokenizer(str(directory), None, trust_remote_code), meta
    hf = AutoModelForSequenceClassification.from_pretrained(
        directory, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code)
    hf.eval()
    tokenizer = load_tokenizer(str(directory), None, trust_remote_code)
    span = meta.mean_span
    if meta.pooling == "mean" and span is None:  # saved before mean_span was recorded: it averaged all tokens
        span = "all"
        if meta.kind == "decoder":
            log.warning("%s: saved before rewardkit recorded mean_span; scoring it as trained, mean over all real "
                        "tokens (prompt included). Retrain for response-only pooling.", directory)
    spec = HeadSpec(head=meta.head, pooling=meta.pooling, reward_from=meta.reward_from, attributes=meta.attributes,
                    weighting=meta.weighting, attribute_weights=meta.attribute_weights, mean_span=span,
                    step_outputs=meta.step_outputs, step_aggregate=meta.step_aggregate,
                    ensemble_size=meta.ensemble_size, ensemble_aggregate=meta.ensemble_aggregate,
                    ensemble_beta=meta.ensemble_beta, ensemble_members=meta.ensemble_members)
    if spec.ensemble_members == "lora":
        from .ensemble_lora import load_lora_ensemble

        return load_lora_ensemble(hf, meta.kind, spec, directory), tokenizer, meta
    model = RewardModel(hf, meta.kind, spec)
    model.extras.load(directory)  # weights plain transformers has no place for (learned attribute weights)
    return model.eval(), tokenizer, meta
