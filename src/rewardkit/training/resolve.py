"""What every `auto` training setting becomes on this machine, for this model: one pure function.

:func:`resolve` maps the run's config, a few facts about the model (:class:`ModelFacts`) and about the machine
(:class:`MachineFacts`) to a typed :class:`Resolved`; :func:`apply_resolved` then switches the model to it
(attention kernel, gradient checkpointing). The trainer logs the result at the start of training and writes it
to ``summary.json`` under ``resolved``, so a run always says what its defaults were.

* ``train.precision: auto`` -> bf16 autocast where bf16 matmuls are fast (CUDA with bf16, CPUs with AMX or
  AVX512-BF16: ~3x fp32 there), fp32 where bf16 is emulated (AVX2-only CPUs: ~100x slower than fp32).
* ``train.packing: auto`` -> packed rows wherever packed training is proven equal to padded (pairwise, token-level
  pairwise and ranking losses, decoders and encoders; tests/unit/test_packing.py) on one process; otherwise
  padded, and why.
* ``train.max_tokens_per_forward: auto`` -> a per-pass token budget (see :func:`token_budget`).
* ``model.gradient_checkpointing: auto`` -> on only when that budget cannot hold one pair without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from ..config import RunConfig, TrainConfig

log = logging.getLogger(__name__)

MEMORY_SHARE = 0.6
"""Share of the machine's memory the training state and activations may plan for (the rest: the process, the
data, the allocator's slack, other processes)."""


@dataclass(frozen=True, kw_only=True)
class MachineFacts:
    device: Literal["cpu", "cuda"] | str
    bf16_fast: bool
    """bf16 matmuls run in hardware (CUDA with bf16; CPU flags amx_bf16 or avx512_bf16)."""
    memory_bytes: int
    """Memory the run can use: the GPU's, or the CPU's RAM (within a cgroup limit, if any)."""
    cpu_flags: tuple[str, ...] = ()
    """The bf16-relevant CPU flags found (for the log)."""


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    parameters: int
    trainable: int
    layers: int
    hidden: int
    intermediate: int
    kind: str


@dataclass(frozen=True, kw_only=True)
class Resolved:
    """What the `auto` settings became (and the explicit ones, as given)."""

    precision: Literal["fp32", "bf16"]
    packing: bool
    attention: str | None
    """The attention implementation the backbone runs (packed: the kernel chosen for packed rows)."""
    max_tokens_per_forward: int | None
    gradient_checkpointing: bool
    reasons: dict[str, str] = field(default_factory=dict)
    """Why, for each setting that was `auto`."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def train_config(self, tc: TrainConfig) -> TrainConfig:
        """``tc`` with the resolved values in place of `auto`, as the training loop reads them."""
        return dataclasses.replace(tc, precision=self.precision, packing=self.packing,
                                   max_tokens_per_forward=self.max_tokens_per_forward)


def bf16_is_fast(device: torch.device) -> bool:
    """bf16 pays only with hardware support; on AVX2-only CPUs it is emulated and ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(_bf16_cpu_flags())


def _bf16_cpu_flags() -> tuple[str, ...]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def _cpu_memory_bytes() -> int:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def machine_facts(device: torch.device) -> MachineFacts:
    if device.type == "cuda":
        memory = torch.cuda.get_device_properties(device).total_memory
        return MachineFacts(device="cuda", bf16_fast=bf16_is_fast(device), memory_bytes=memory)
    flags = _bf16_cpu_flags()
    return MachineFacts(device=device.type, bf16_fast=bool(flags), memory_bytes=_cpu_memory_bytes(), cpu_flags=flags)


def model_facts(model) -> ModelFacts:
    """Sizes of a :class:`~rewardkit.models.reward_model.RewardModel` (any transformers config spelling)."""
    cfg = model.transformer.config
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    return ModelFacts(parameters=sum(p.numel() for p in model.parameters()),
                      trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                      # a K LoRA ensemble runs the backbone once per member: K times the saved activations
                      layers=(getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 1))
                      * getattr(model, "forward_passes", 1),
                      hidden=hidden,
                      intermediate=getattr(cfg, "intermediate_size", None) or getattr(cfg, "n_inner", None)
                      or 4 * hidden, kind=model.kind)


def activation_bytes_per_token(m: ModelFacts, checkpointing: bool) -> int:
    """Bytes of saved activations one token costs in a training forward (fp32 storage; under bf16 autocast the
    residual stream and norms stay fp32 and the matmul inputs add bf16 copies, about the same in total).

    Per layer a token keeps about 12 hidden-sized tensors (norm inputs and outputs, q, k, v, attention output,
    projections, residuals) and 5 intermediate-sized ones (gate, up, activation, product, their gradient
    input). Checkpointing keeps each layer's input only, plus one layer's full set during the recompute.
    """
    per_layer = (12 * m.hidden + 5 * m.intermediate) * 4
    return m.layers * m.hidden * 4 + per_layer if checkpointing else m.layers * per_layer


def training_state_bytes(m: ModelFacts, bf16: bool) -> int:
    """fp32 weights (4 B/param), and for the trained ones a gradient and Adam's two moments (12 B/param);
    bf16 autocast adds its cached bf16 copy of the weights (2 B/param)."""
    return 4 * m.parameters + 12 * m.trainable + (2 * m.parameters if bf16 else 0)


def token_budget(m: ModelFacts, machine: MachineFacts, bf16: bool, checkpointing: bool, *, batch_tokens: int,
                 floor: int) -> int:
    """Tokens per forward/backward pass: the smaller of

    * the peer's memory: activations no larger than what a padded trainer that checkpoints (TRL's
      `RewardTrainer` by default) keeps for the whole micro-batch, ``batch_tokens`` (2 rows x batch size x max
      length) at the checkpointed cost per token. Both hold the same training state, so this keeps the peak at or
      below the peer's. An earlier rule (activations within the 16 B/param training state: 1,216 tokens for
      SmolLM2-135M at batch 8, length 512) peaked at 5.26 GB against TRL's 4.66 GB in bf16 on an AVX512-BF16 CPU
      (issue 22); this one gives 576 there, and the same race gave 4.72 GB against TRL's 5.04 GB (medians of 3),
      at 58.2 s against 66.1 s for 10 steps: a pass of a few hundred tokens already runs the matmuls near full rate;
    * the machine's memory: training state plus activations within :data:`MEMORY_SHARE` of it,

    rounded down to a multiple of 64 and never below ``floor`` (one sequence). A pair costlier than the budget
    still gets a pass of its own (data/packing.py:token_budget_batches), which is why the checkpointing decision
    asks :func:`fits` about one whole pair, not about the budget.
    """
    per_token = activation_bytes_per_token(m, checkpointing)
    peer = batch_tokens * activation_bytes_per_token(m, True) // per_token
    room = (int(MEMORY_SHARE * machine.memory_bytes) - training_state_bytes(m, bf16)) // per_token
    return max(floor, min(peer, room) // 64 * 64)


def fits(m: ModelFacts, machine: MachineFacts, bf16: bool, checkpointing: bool, tokens: int) -> bool:
    need = training_state_bytes(m, bf16) + tokens * activation_bytes_per_token(m, checkpointing)
    return need <= MEMORY_SHARE * machine.memory_bytes


def resolve(cfg: RunConfig, model: ModelFacts, machine: MachineFacts, *, pairwise: bool, packs: bool,
            world: int) -> Resolved:
    """The run's settings with every `auto` decided (pure: no model or device is touched).

    ``pairwise``: the task's batches may be cut by a token budget (losses that are a plain mean over pairs:
    Bradley-Terry, log-exp); ``packs``: the task has a packed layout (every pairwise loss, the token-level one
    included, and ranked lists); ``world``: the number of processes.
    """
    tc, reasons = cfg.train, {}
    if tc.precision == "auto":
        bf16 = machine.bf16_fast
        reasons["precision"] = (f"{machine.device}: bf16 matmuls in hardware ({', '.join(machine.cpu_flags) or 'CUDA'})"
                                if bf16 else f"{machine.device}: no fast bf16 (no amx_bf16 / avx512_bf16): fp32")
    else:
        bf16 = tc.precision == "bf16"
    packing = tc.packing
    if packing == "auto":
        # every read-out of a pairwise / ranked loss packs, encoder mean pooling included: its packed rewards and
        # gradients equal the padded ones (tests/unit/test_packing.py). A packed and a padded encoder-mean run do
        # end with scores a constant apart (2e-4 after 3 steps at lr 1e-3): the last LayerNorm's bias moves every
        # reward alike, so Bradley-Terry gives it a zero gradient, and Adam turns the different rounding noise of
        # the two layouts into steps of size lr. The score differences the loss defines agree to 1e-7 (test).
        packing = world == 1 and (pairwise or packs)
        reasons["packing"] = ("packed rows: proven equal to padded for this loss" if packing else
                              f"{world} processes: packing runs on one process" if world > 1 else
                              f"loss {cfg.loss.name}: the trainer has no packed layout for it (padded batches)")
    pair = 2 * cfg.data.max_length  # the most one pair can cost in a pass (its own pass when over the budget)
    sizes = {"batch_tokens": tc.max_tokens_per_batch or 2 * tc.batch_size * cfg.data.max_length,
             "floor": cfg.data.max_length}
    gc = cfg.model.gradient_checkpointing
    budget = tc.max_tokens_per_forward
    if budget == "auto":
        if not pairwise or world > 1:
            budget = None
            reasons["max_tokens_per_forward"] = (f"{world} processes: bounded passes run on one process: off"
                                                 if world > 1 else
                                                 f"loss {cfg.loss.name}: its batches are not cut by tokens: off")
        else:
            budget = token_budget(model, machine, bf16, gc is True, **sizes)
            if gc == "auto" and not fits(model, machine, bf16, False, max(budget, pair)):
                gc = True  # one pair per pass does not fit without recomputation
                reasons["gradient_checkpointing"] = f"on: a pass of {pair} tokens (one pair) does not fit without it"
                budget = token_budget(model, machine, bf16, True, **sizes)
            peer_gb = sizes["batch_tokens"] * activation_bytes_per_token(model, True) / 1e9
            reasons["max_tokens_per_forward"] = (
                f"{budget} tokens: activations within a checkpointing padded trainer's for the batch "
                f"({peer_gb:.2f} GB) and {MEMORY_SHARE:.0%} of {machine.memory_bytes / 1e9:.1f} GB")
    if gc == "auto":
        tokens = max(budget or 0, pair)
        gc = not fits(model, machine, bf16, False, tokens)
        reasons["gradient_checkpointing"] = (f"on: one pass of {tokens} tokens does not fit without it" if gc
                                             else "off: the token budget fits without recomputation")
    return Resolved(precision="bf16" if bf16 else "fp32", packing=bool(packing), attention=None,
                    max_tokens_per_forward=budget, gradient_checkpointing=bool(gc), reasons=reasons)


def apply_resolved(model, resolved: Resolved, requested_attention: str, device: torch.device) -> Resolved:
    """Switch ``model`` to ``resolved`` (packed-row kernel, gradient checkpointing); returns it with the
    attention implementation filled in."""
    from ..models.packed import select_attention

    if resolved.packing:
        attention = select_attention(model, requested_attention, device)
    else:
        attention = model.transformer.config._attn_implementation
    tm = model.transformer
    if resolved.gradient_checkpointing and not getattr(tm.base_model, "gradient_checkpointing", False):
        tm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return dataclasses.replace(resolved, attention=attention)


def resolve_for(cfg: RunConfig, model, device: torch.device, *, pairwise: bool, packs: bool,
                world: int) -> Resolved:
    """:func:`resolve` on this model and machine, applied to the model and logged (the trainer's one call)."""
    machine = machine_facts(device)
    resolved = apply_resolved(model, resolve(cfg, model_facts(model), machine, pairwise=pairwise, packs=packs,
                                             world=world), cfg.train.attention, device)
    log.info("resolved settings: precision %s, packing %s, attention %s, max_tokens_per_forward %s, "
             "gradient_checkpointing %s (%s)", resolved.precision, resolved.packing, resolved.attention,
             resolved.max_tokens_per_forward, resolved.gradient_checkpointing,
             "; ".join(f"{k}: {v}" for k, v in resolved.reasons.items()) or "nothing was auto")
    return resolved
