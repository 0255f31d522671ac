"""K LoRA adapters over one frozen backbone: an ensemble whose members differ in the backbone too.

``model.head: ensemble`` with ``model.ensemble_members: lora`` (and ``model.lora`` for r, alpha, dropout and
the target modules). Member k is the frozen backbone + its own LoRA adapter on every target linear + row k of
the K-row head; it is trained on its own bootstrap resample of the pairs (the same per-(pair, head) weights as
the K-heads ensemble, training/ensemble_step.py) from its own seeded initialisation of the adapter's ``A``
(``B`` starts at zero, as in LoRA, so every member starts from the base model and its own head row).

Why a separate variant: K heads on one backbone share every feature, so their spread under-estimates what K
separately trained models would disagree on; K adapters give each member its own features at K times the
forward cost. Cost: a batch is scored by K forwards, one per member (each member's adapters switched on in
turn); training holds the K forwards' activations for one backward (K times the activation memory of one
model), but only the adapters and the head get gradients.

Saved layout (training output and ``rewardkit export`` alike)::

    DIR/config.json, model.safetensors   the frozen backbone with the K-row head (num_labels = K), WITHOUT
                                          adapters: plain transformers on DIR alone gives the base's K heads,
                                          not the members' rewards
    DIR/adapters/member_k/                a standard peft LoRA adapter (adapter_config.json,
                                          adapter_model.safetensors; the K-row head as modules_to_save)

A consumer without rewardkit scores member k with peft and reads column k (:func:`peft_members` is that recipe,
and the model card prints it); the reward is the stored aggregate of the K columns.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .heads import HeadSpec, RewardOutput, combine
from .reward_model import RewardModel

ADAPTERS_DIR = "adapters"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def member_dir(k: int) -> str:
    return f"{ADAPTERS_DIR}/member_{k}"


class MemberLoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus K LoRA adapters, ``y = base(x) + scaling * B_m A_m dropout(x)`` for the member
    ``m`` selected by :meth:`LoraEnsembleModel.member` (peft's LoRA forward, so peft reproduces it)."""

    def __init__(self, base: nn.Linear, k: int, r: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.zeros(k, r, base.in_features, dtype=base.weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(k, base.out_features, r, dtype=base.weight.dtype))
        self.scaling = alpha / r
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.member: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.member
        if m is None:  # the base alone would be a silent wrong score
            raise RuntimeError("a K LoRA ensemble layer was called without a member selected; score through "
                               "LoraEnsembleModel.outputs (it runs every member)")
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_A[m]), self.lora_B[m]) * self.scaling


def _member_seed(seed: int, k: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"ensemble-lora\x1f{seed}\x1f{k}".encode(), digest_size=4).digest(),
                          "little")


@torch.no_grad()
def init_members(layers: dict[str, MemberLoRALinear], seed: int) -> None:
    """A_k ~ U(-1/sqrt(in), 1/sqrt(in)) (peft's kaiming-uniform default, a = sqrt(5)) from a generator seeded by
    (seed, k), layers in name order; B_k = 0."""
    for k in range(next(iter(layers.values())).lora_A.shape[0]):
        g = torch.Generator().manual_seed(_member_seed(seed, k))
        for name in sorted(layers):
            a = layers[name].lora_A
            bound = 1.0 / math.sqrt(a.shape[2])
            a[k].copy_((torch.rand(a.shape[1:], generator=g) * 2 - 1) * bound)
            layers[name].lora_B[k].zero_()


def head_name(hf: nn.Module) -> str:
    return "score" if hasattr(hf, "score") else "classifier"


def default_targets(hf: nn.Module) -> list[str]:
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    targets = DEFAULTS.get(getattr(hf.config, "model_type", ""))
    if not targets:
        raise ValueError(f"model.lora.target_modules: no default for model type {hf.config.model_type!r}; name the "
                         "linear layers to adapt")
    return list(targets)


def _matches(name: str, targets: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)  # peft's rule for a list of names


def inject(hf: nn.Module, k: int, lora: dict) -> dict[str, MemberLoRALinear]:
    """Freeze ``hf`` but its head, and replace every target ``nn.Linear`` (outside the head) by a
    :class:`MemberLoRALinear` with K zero adapters. ``lora``: {r, alpha, dropout, target_modules}."""
    head = head_name(hf)
    for p in hf.parameters():
        p.requires_grad_(False)
    for p in getattr(hf, head).parameters():
        p.requires_grad_(True)
    layers = {}
    for name, module in list(hf.named_modules()):
        if isinstance(module, nn.Linear) and _matches(name, lora["target_modules"]) and \
                not (name == head or name.startswith(head + ".")):
            parent, _, child = name.rpartition(".")
            layers[name] = MemberLoRALinear(module, k, lora["r"], lora["alpha"], lora["dropout"])
            setattr(hf.get_submodule(parent) if parent else hf, child, layers[name])
    if not layers:
        raise ValueError(f"model.lora.target_modules {lora['target_modules']} match no linear layer of "
                         f"{type(hf).__name__}")
    return layers


class LoraEnsembleModel(RewardModel):
    """A :class:`RewardModel` whose K ensemble members are K LoRA adapters: ``outputs`` runs the backbone once per
    member and returns the members' rewards as the K logits (so scoring, the ensemble loss, the aggregates, the
    server and eval see the same [N, K] as for K heads)."""

    def __init__(self, hf: nn.Module, kind: str, spec: HeadSpec, layers: dict[str, MemberLoRALinear], lora: dict):
        super().__init__(hf, kind, spec)
        self.layers = layers  # a plain dict: the modules are registered once, inside hf
        self.lora = lora

    @property
    def forward_passes(self) -> int:
        """Backbone forwards per batch (training/resolve.py plans K times one model's activations)."""
        return int(self.spec.ensemble_size)

    @contextlib.contextmanager
    def member(self, k: int):
        """Switch every adapted layer to member ``k``'s adapter for the block."""
        for layer in self.layers.values():
            layer.member = k
        try:
            yield
        finally:
            for layer in self.layers.values():
                layer.member = None

    def outputs(self, batch) -> RewardOutput:
        cols = []
        for k in range(self.spec.ensemble_size):
            with self.member(k):
                cols.append(super().outputs(batch).logits[:, k])  # member k reads its own head row
        z = torch.stack(cols, 1)
        return RewardOutput(combine(z, self.spec, self.extras), z)

    # -- saving ----------------------------------------------------------------------------------------------
    def plain_hf(self) -> nn.Module:
        """A copy of the transformers model with the adapters taken out: the frozen backbone and the K-row head."""
        hf = copy.deepcopy(self.hf)
        for name in self.layers:
            parent, _, child = name.rpartition(".")
            holder = hf.get_submodule(parent) if parent else hf
            setattr(holder, child, getattr(holder, child).base)
        return hf

    def save_members(self, directory: str | Path, dtype: torch.dtype | None = None) -> None:
        """``DIR/adapters/member_k``: member k as a standard peft LoRA adapter (its A, B and the K-row head)."""
        from peft import LoraConfig, TaskType
        from safetensors.torch import save_file

        hf, head = self.hf, head_name(self.hf)
        head_state = {f"{PEFT_PREFIX}{head}.{n}": p.detach() for n, p in getattr(hf, head).named_parameters()}
        for k in range(self.spec.ensemble_size):
            out = Path(directory, member_dir(k))
            out.mkdir(parents=True, exist_ok=True)
            state = dict(head_state)
            for name, layer in self.layers.items():
                state[f"{PEFT_PREFIX}{name}.lora_A.weight"] = layer.lora_A[k].detach()
                state[f"{PEFT_PREFIX}{name}.lora_B.weight"] = layer.lora_B[k].detach()
            state = {n: (t.to(dtype) if dtype is not None else t).contiguous().cpu() for n, t in state.items()}
            for n, t in state.items():
                if not torch.isfinite(t).all():
                    raise FloatingPointError(f"refusing to save: {member_dir(k)} {n} has NaN or infinite values")
            save_file(state, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
            LoraConfig(task_type=TaskType.SEQ_CLS, r=self.lora["r"], lora_alpha=self.lora["alpha"],
                       lora_dropout=self.lora["dropout"], target_modules=self.lora["target_modules"],
                       modules_to_save=[head]).save_pretrained(str(out))


def build_lora_ensemble(hf: nn.Module, kind: str, spec: HeadSpec, lora_cfg, seed: int) -> LoraEnsembleModel:
    """Training: K fresh adapters (seeded per member) on the frozen backbone ``hf`` (its head already prepared
    by the ensemble's per-head initialisation)."""
    if lora_cfg is None:
        raise ValueError("model.ensemble_members lora needs model.lora (r, alpha, dropout, target_modules): the "
                         "settings of each member's adapter")
    lora = {"r": int(lora_cfg.r), "alpha": lora_cfg.alpha, "dropout": float(lora_cfg.dropout),
            "target_modules": list(lora_cfg.target_modules or default_targets(hf))}
    layers = inject(hf, spec.ensemble_size, lora)
    init_members(layers, seed)
    return LoraEnsembleModel(hf, kind, spec, layers, lora)


def load_lora_ensemble(hf: nn.Module, kind: str, spec: HeadSpec, directory: str | Path) -> LoraEnsembleModel:
    """Loading: the saved base ``hf`` plus ``DIR/adapters/member_k`` for every member (errors name the file)."""
    from safetensors.torch import load_file

    k = spec.ensemble_size
    first = Path(directory, member_dir(0), ADAPTER_CONFIG)
    if not first.exists():
        raise FileNotFoundError(f"{first}: missing; rewardkit.json says this ensemble's {k} members are LoRA "
                                f"adapters under {Path(directory, ADAPTERS_DIR)}")
    c = json.loads(first.read_text(encoding="utf-8"))
    lora = {"r": int(c["r"]), "alpha": c["lora_alpha"], "dropout": float(c.get("lora_dropout") or 0.0),
            "target_modules": sorted(c["target_modules"])}
    layers = inject(hf, k, lora)
    with torch.no_grad():
        for m in range(k):
            path = Path(directory, member_dir(m), ADAPTER_WEIGHTS)
            if not path.exists():
                raise FileNotFoundError(f"{path}: missing; the ensemble has {k} LoRA members")
            state = load_file(str(path))
            for name, layer in layers.items():
                for part, param in (("lora_A", layer.lora_A), ("lora_B", layer.lora_B)):
                    key = f"{PEFT_PREFIX}{name}.{part}.weight"
                    if key not in state or state[key].shape != param[m].shape:
                        raise ValueError(f"{path}: {key} missing or of the wrong shape for the saved backbone")
                    param[m].copy_(state[key])
    model = LoraEnsembleModel(hf, kind, spec, layers, lora)
    return model.eval()


class PeftMembers(nn.Module):
    """The consumer's recipe (written on the model card): the exported directory in plain transformers + peft,
    one adapter per member; ``forward(**inputs).logits`` [N, K] holds member k's reward in column k."""

    def __init__(self, directory: str | Path):
        super().__init__()
        from peft import PeftModel
        from transformers import AutoModelForSequenceClassification

        directory = Path(directory)
        k = len(sorted(Path(directory, ADAPTERS_DIR).glob("member_*")))
        base = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, directory / member_dir(0), adapter_name="member_0")
        for m in range(1, k):
            model.load_adapter(directory / member_dir(m), adapter_name=f"member_{m}")
        self.model, self.k = model.eval(), k

    def forward(self, **inputs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        cols = []
        for m in range(self.k):
            self.model.set_adapter(f"member_{m}")
            cols.append(self.model(**inputs).logits[:, m])
        return SequenceClassifierOutput(logits=torch.stack(cols, -1))


CONSUMER_RECIPE = """\
from peft import PeftModel
from transformers import AutoModelForSequenceClassification
base = AutoModelForSequenceClassification.from_pretrained(DIR)
model = PeftModel.from_pretrained(base, f"{DIR}/adapters/member_0", adapter_name="member_0")
for k in range(1, K):
    model.load_adapter(f"{DIR}/adapters/member_{k}", adapter_name=f"member_{k}")
logits = []
for k in range(K):  # member k's reward is column k of its own forward
    model.set_adapter(f"member_{k}")
    logits.append(model(**inputs).logits[:, k])
logits = torch.stack(logits, -1)"""
