"""`rewardkit export`: a run, model directory or training checkpoint -> a self-contained transformers directory.

The exported directory is what a consumer (plain transformers, TRL, OpenRLHF, a server) loads without
rewardkit: LoRA merged into the base (the trained head included), weights cast to one dtype in safetensors
shards, a tokenizer that appends the score token by itself (``export/tokenizer.py``), ``rewardkit.json`` and
a model card. Export then reloads the result both ways, rewardkit and plain transformers, and checks that
they agree with each other and with the source model, so a silent mismatch cannot ship.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal, get_args

import torch

from ..data.render import Renderer
from ..models.backbones import detach_gguf_quantizer
from ..models.head_kinds import Readout, head_kind  # Readout was defined here; the registry owns it now
from ..models.reward_model import META_FILE, ModelMeta, RewardModel, load_reward_model
from .card import write_card
from .manifest import apply_problem_type, require_engine, serving_manifest
from .tokenizer import prepare_tokenizer, save_chat_tokenizer

log = logging.getLogger(__name__)

Dtype = Literal["float32", "bfloat16", "float16"]
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# rewardkit(exported) vs rewardkit(source): fp32 must agree up to kernel noise; a bf16/fp16 cast changes scores
# by an amount that depends on the model, so it is measured and written in the card, and only NaN/inf fail
FIDELITY_TOL = {"float32": 1e-4, "bfloat16": math.inf, "float16": math.inf}
INTEROP_TOL = 1e-4

PROBE_TEXT = [
    ("\n\nHuman: How do I make tea?\n\nAssistant:", " Boil water, steep the leaves for three minutes."),
    ("\n\nHuman: What is 2+2?\n\nAssistant:", " 4."),
    ("Question: name a colour.\nAnswer:", " Blue"),
]
PROBE_CHAT = [
    ([{"role": "user", "content": "How do I make tea?"}],
     [{"role": "assistant", "content": "Boil water, then steep the leaves for three minutes."}]),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
     [{"role": "assistant", "content": "4"}]),
]


class ExportError(ValueError):
    """The source cannot be exported as asked (unknown layout, head transformers cannot express, mismatch)."""


@dataclass
class Source:
    """What export reads: the reward model, its tokenizer and metadata, and the run around it (if any)."""

    model: RewardModel
    tokenizer: object
    meta: ModelMeta
    kind: Literal["model", "run", "checkpoint"]
    path: Path
    run_dir: Path | None


@dataclass
class ExportResult:
    out_dir: Path
    dtype: str
    transformers_compatible: bool
    readout: Readout
    checks: dict = field(default_factory=dict)
    """{"interop_max_abs_diff", "fidelity_max_abs_diff", "probes", "chat_probes"}: the reload check."""


# -- reading the source -----------------------------------------------------------------------------------------
def load_source(path: str | Path) -> Source:
    """Accept ``RUN``, ``RUN/model`` (or any rewardkit model directory) or ``RUN/checkpoints/step-N``."""
    p = Path(path)
    if (p / META_FILE).exists():
        model, tok, meta = load_reward_model(p)
        run = p.parent if (p.parent / "config.yaml").exists() else None
        return Source(model, tok, meta, "model", p, run)
    if (p / "model" / META_FILE).exists():
        model, tok, meta = load_reward_model(p / "model")
        return Source(model, tok, meta, "run", p / "model", p)
    if (p / "model.safetensors").exists() and p.parent.name == "checkpoints":
        return _load_checkpoint(p)
    raise FileNotFoundError(f"{p}: not a rewardkit model directory (no {META_FILE}), run directory (no "
                            f"model/{META_FILE}) or training checkpoint (no model.safetensors under "
                            "RUN/checkpoints/step-N)")


def _load_checkpoint(ckpt: Path) -> Source:
    """Rebuild the model from ``RUN/config.yaml`` and load the checkpoint's RewardModel state (LoRA adapters
    and the head's trained copy included)."""
    from safetensors.torch import load_model

    from ..config import load_config
    from ..models.reward_model import build_meta, build_model
    from ..training.checkpoint import MARKER
    from ..training.tasks import make_task

    run = ckpt.parent.parent
    if not (ckpt / MARKER).exists():
        raise ExportError(f"{ckpt}: incomplete checkpoint (no {MARKER} marker); the run stopped while writing it")
    if not (run / "config.yaml").exists():
        raise FileNotFoundError(f"{run / 'config.yaml'}: missing; a checkpoint is rebuilt from its run's config")
    cfg = load_config(run / "config.yaml")
    model, tokenizer, kind = build_model(cfg.model, seed=cfg.train.seed)
    # the task prepares the model as the trainer did before the checkpoint (the step task adds its step token
    # and an embedding row) and adds its rendering to the meta (the step separator / token): the trainer's calls
    task = make_task(cfg, model, tokenizer)
    missing, unexpected = load_model(model, str(ckpt / "model.safetensors"), strict=False)
    if missing or unexpected:
        raise ExportError(f"{ckpt / 'model.safetensors'}: does not match the model built from {run / 'config.yaml'} "
                          f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    state = json.loads((ckpt / "trainer_state.json").read_text()) if (ckpt / "trainer_state.json").exists() else {}
    meta = task.annotate_meta(build_meta(model, tokenizer, cfg.data, cfg.model.name,  # the trainer's call
                                         training={"steps": state.get("step"), "loss": cfg.loss.name,
                                                   "checkpoint": ckpt.name}))
    return Source(model, tokenizer, meta, "checkpoint", ckpt, run)


def readout(meta: ModelMeta) -> Readout:
    """What plain transformers computes for this model: the reward (``exact``), the head's outputs with a
    formula on the card (``logits``), or not this read-out at all (mean pooling: ``rewardkit_only``)."""
    if meta.pooling not in ("last", "cls"):
        return "rewardkit_only"
    return head_kind(meta.head).transformers_readout(meta)


def transformers_compatible(meta: ModelMeta) -> bool:
    return readout(meta) != "rewardkit_only"


def attribute_weights(model: RewardModel, meta: ModelMeta) -> list[float] | None:
    """The head's effective combination weights (multi: reward = sum_k w_k z_k, learned ones included)."""
    return head_kind(meta.head).effective_weights(model, meta)


def consumer_reward(logits: torch.Tensor, meta: ModelMeta, weights: list[float] | None) -> torch.Tensor:
    """The card's formula: transformers logits [N, C] -> rewards [N]."""
    return head_kind(meta.head).consumer_reward(logits.float(), meta, weights)


# -- export -----------------------------------------------------------------------------------------------------
def export_model(source: str | Path, out_dir: str | Path, dtype: Dtype = "float32", max_shard_size: str = "2GB",
                 rewardkit_only: bool = False, overwrite: bool = False, verify: bool = True,
                 engines: tuple[str, ...] = ()) -> ExportResult:
    """Export ``source`` (run, model directory or checkpoint) to ``out_dir``; see the module docstring.

    ``rewardkit_only``: export a head that transformers cannot compute (mean pooling, per-token, several
    attributes) anyway, for ``rewardkit.load_model``; without it such a head is an error. ``engines``: serving
    engines (``vllm``, ``sglang``) that must compute this head's reward, else an error (``export/manifest.py``).
    """
    if dtype not in get_args(Dtype):
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(get_args(Dtype))}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: exists and is not empty; choose a new directory")
    src = load_source(source)
    if src.meta.head == "step":  # a process reward model: a token classifier, scored at every step end
        from .step_export import export_step_model

        return export_step_model(source, out, dtype, overwrite=True, verify=verify)
    how = readout(src.meta)
    compatible = how != "rewardkit_only"
    if not compatible and not rewardkit_only:
        raise ExportError(
            f"{src.path}: a {src.meta.kind} with pooling '{src.meta.pooling}' and head '{src.meta.head}' cannot be "
            "computed by a transformers *ForSequenceClassification class (it reads one token through a linear "
            "head); pass --rewardkit-only to export it for rewardkit.load_model / rewardkit serve")
    for engine in engines:
        require_engine(src.meta, how, engine, str(src.path))
    weights = attribute_weights(src.model, src.meta)
    out.mkdir(parents=True, exist_ok=True)
    probes, n_chat = _probes(src)
    # scored before anything below touches the model (the cast is in place when there is no LoRA copy)
    before = _score_source(src, probes) if verify else []

    hf = merged_finite(src.model.plain_hf())  # a K LoRA ensemble: the backbone without its adapters
    _drop_dequantized_gguf_marker(hf)
    hf = hf.to(_DTYPES[dtype])
    tok = src.tokenizer  # changed in place below: the source is not used after this point
    hf.config.pad_token_id = tok.pad_token_id
    head_kind(src.meta.head).export_config(hf.config, src.meta)  # e.g. label names for multi
    apply_problem_type(hf.config, how)  # raw outputs in vLLM / SGLang / the pipeline, not a sigmoid
    hf.save_pretrained(out, safe_serialization=True, max_shard_size=max_shard_size)
    src.model.save_members(out, _DTYPES[dtype])  # a K LoRA ensemble: adapters/member_k (peft format)
    # a judge's text already ends where the answer goes (the assistant turn start): nothing is appended
    lm_head = head_kind(src.meta.head).lm_head
    if not lm_head:
        prepare_tokenizer(tok, src.meta.kind)
    if src.meta.kind == "decoder" and src.meta.truncation == "truncate_prompt_left" and not lm_head:
        # `tokenizer(text, truncation=True)` then cuts from the left to max_length with the score token kept:
        # rewardkit's over-length policy (the prompt's start goes first)
        tok.truncation_side = tok.init_kwargs["truncation_side"] = "left"
        tok.model_max_length = tok.init_kwargs["model_max_length"] = src.meta.max_length
    tok.save_pretrained(out)
    chat_tok = save_chat_tokenizer(tok, out) if src.meta.kind == "decoder" and not lm_head else None
    src.model.extras.save(out)  # learned attribute weights: rewardkit_head.safetensors

    meta = _exported_meta(src.meta, out, tok, hf.config.architectures[0] if lm_head else None)
    export_info = {"dtype": dtype, "source": str(src.path), "source_kind": src.kind,
                   "transformers_compatible": compatible, "readout": how, "attribute_weights": weights,
                   "tokenizer_appends_score_token": meta.kind == "decoder" and not lm_head,
                   **head_kind(meta.head).export_manifest(meta)}
    export_info["serving"] = serving_manifest(meta, how, weights, tok, dtype, chat_tokenizer=chat_tok)
    _write_meta(out, meta, export_info)
    checks = _verify(out, probes, n_chat, before, dtype, compatible, weights) if verify else {}
    export_info["checks"] = checks
    _write_meta(out, meta, export_info)
    write_card(out, meta, export_info, src.run_dir)
    log.info("exported %s -> %s (%s)%s", src.path, out, dtype,
             f"; checks {checks}" if checks else "")
    return ExportResult(out, dtype, compatible, how, checks)


def merged_finite(hf):
    """The weights to export: LoRA merged into a copy (the adapters fold into the base weights and the head's
    trained copy, peft ``modules_to_save``, replaces the original head), refused when any is NaN or infinite."""
    if hasattr(hf, "merge_and_unload"):
        hf = copy.deepcopy(hf).merge_and_unload()
    for name, p in hf.named_parameters():
        if not torch.isfinite(p).all():
            raise FloatingPointError(f"refusing to export: parameter {name} has NaN or infinite values")
    return hf


def _exported_meta(meta: ModelMeta, out: Path, tok, judge_architecture: str | None) -> ModelMeta:
    """The exported directory's metadata: right padding, the score token named, a judge's vLLM command."""
    meta = copy.deepcopy(meta)
    meta.padding_side = "right"
    if judge_architecture is not None:
        from ..models.judge import vllm_command

        meta.judge = {**meta.judge, "vllm_command": vllm_command(str(out), meta.judge, judge_architecture)}
    if meta.kind == "decoder" and not meta.score_token:
        sid = meta.score_token_id if meta.score_token_id is not None else tok.eos_token_id
        meta.score_token, meta.score_token_id = tok.convert_ids_to_tokens(sid), sid
    return meta


def _drop_dequantized_gguf_marker(hf) -> None:
    try:
        detach_gguf_quantizer(hf)
    except ValueError as e:
        raise ExportError(str(e)) from None


def _write_meta(out: Path, meta: ModelMeta, export_info: dict) -> None:
    data = asdict(meta)
    data["export"] = export_info  # ModelMeta.load ignores unknown keys: old readers still load the file
    (out / META_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# -- the reload check -------------------------------------------------------------------------------------------
def consumer_inputs(tokenizer, meta: ModelMeta, prompt, response) -> dict:
    """How a consumer without rewardkit tokenizes one example (the recipe written in the model card)."""
    if meta.kind == "encoder":
        return tokenizer(_plain(prompt), _plain(response), return_tensors="pt")
    if isinstance(prompt, list) or isinstance(response, list):
        text = tokenizer.apply_chat_template(_msgs(prompt, "user") + _msgs(response, "assistant"), tokenize=False)
        return tokenizer(text, add_special_tokens=False, truncation=True, return_tensors="pt")
    return tokenizer(prompt + response, truncation=True, return_tensors="pt")


def _plain(x) -> str:
    return x if isinstance(x, str) else "\n".join(m["content"] for m in x)


def _msgs(x, role: str) -> list:
    return x if isinstance(x, list) else [{"role": role, "content": x}]


def _probes(src: Source) -> tuple[list, int]:
    """Fixed examples for the reload check: plain text, plus conversations when the model renders chat."""
    probes: list = list(PROBE_TEXT)
    renderer = Renderer(src.tokenizer, src.meta.kind, src.meta.template, src.meta.separator)
    if src.meta.kind == "decoder" and renderer.has_chat_template and src.meta.template != "plain":
        return probes + PROBE_CHAT, len(PROBE_CHAT)
    return probes, 0


def _score_source(src: Source, probes: list) -> list[float]:
    from ..scoring import Scorer

    return probe_rewards(Scorer(src.model, src.tokenizer, src.meta), probes)


def probe_rewards(scorer, probes: list) -> list[float]:
    """The probes' rewards; a pairwise judge compares each probe's response with the next probe's, and its values
    are the two orders' margins ``m(x, y)``, ``m(y, x)`` of each comparison (what a consumer computes)."""
    prompts, responses = [p for p, _ in probes], [r for _, r in probes]
    if scorer.is_pairwise_judge:
        judged = scorer.compare(prompts, responses, responses[1:] + responses[:1])
        return [v for j in judged for v in (j.margin_a_first, j.margin_b_first)]
    return scorer.score(prompts, responses)


def _verify(out: Path, probes: list, n_chat: int, before: list[float], dtype: str, compatible: bool,
            weights: list[float] | None) -> dict:
    from ..scoring import Scorer

    exported = Scorer.from_pretrained(out)
    after = probe_rewards(exported, probes)
    fidelity = max(abs(a - b) for a, b in zip(before, after, strict=True))
    checks = {"probes": len(probes), "chat_probes": n_chat, "fidelity_max_abs_diff": fidelity}
    if not math.isfinite(fidelity) or fidelity > FIDELITY_TOL[dtype]:
        raise ExportError(f"{out}: the exported model's scores differ from the source by {fidelity:.3g} "
                          f"(at most {FIDELITY_TOL[dtype]} allowed for {dtype})")
    if head_kind(exported.meta.head).lm_head:
        checks["interop_max_abs_diff"] = _verify_judge(exported, probes, after)
    elif compatible:
        # rewardkit loaded these with AutoTokenizer and AutoModelForSequenceClassification (fp32), as a consumer
        # would; the consumer's forward is the transformers class's own (last non-pad token, its own head)
        tok, hf = exported.tokenizer, exported.model.transformer
        if exported.meta.ensemble_members == "lora":  # the card's recipe: transformers + peft, one adapter each
            from ..models.ensemble_lora import PeftMembers

            hf = PeftMembers(out)
        consumer = []
        with torch.no_grad():
            for p, r in probes:
                logits = hf(**consumer_inputs(tok, exported.meta, p, r)).logits
                consumer.append(float(consumer_reward(logits, exported.meta, weights)[0]))
        interop = max(abs(a - b) for a, b in zip(after, consumer, strict=True))
        checks["interop_max_abs_diff"] = interop
        if not math.isfinite(interop) or interop > INTEROP_TOL:
            worst = max(range(len(probes)), key=lambda i: abs(after[i] - consumer[i]))
            raise ExportError(f"{out}: plain transformers scores differ from rewardkit's by {interop:.3g} on probe "
                              f"{probes[worst]!r}; the tokenizer does not reproduce rewardkit's rendering")
    return checks


def _verify_judge(exported, probes: list, after: list[float]) -> float:
    """Plain ``AutoModelForCausalLM`` on the judge text (what vLLM's ``from_2_way_softmax`` classifier reads):
    ``logit(yes) - logit(no)`` at the last token must equal rewardkit's reward."""
    from ..models.judge import judge_text

    tok, hf, settings = exported.tokenizer, exported.model.transformer, exported.meta.judge
    if exported.is_pairwise_judge:  # both orders of each probe against the next one, as probe_rewards
        others = [r for _, r in probes[1:] + probes[:1]]
        texts = [judge_text(tok, settings, p, x, y) for (p, r), o in zip(probes, others, strict=True)
                 for x, y in ((r, o), (o, r))]
    else:
        texts = [judge_text(tok, settings, p, r) for p, r in probes]
    consumer = []
    with torch.no_grad():
        for text in texts:
            ids = tok(text, add_special_tokens=False, return_tensors="pt").input_ids
            z = hf(input_ids=ids).logits[0, -1].float()
            consumer.append(float(z[settings["pos_token_id"]] - z[settings["neg_token_id"]]))
    interop = max(abs(a - b) for a, b in zip(after, consumer, strict=True))
    if not math.isfinite(interop) or interop > INTEROP_TOL:
        raise ExportError(f"plain transformers judge logits differ from rewardkit's rewards by {interop:.3g}")
    return interop
