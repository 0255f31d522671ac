"""Load any Hugging Face ``*ForSequenceClassification`` reward model that rewardkit did not train.

A public reward model (a local directory or a hub id) has no ``rewardkit.json``; we read it as transformers
does, and record what was inferred so the output can say it:

* the reward is the model's single logit (``num_labels == 1``), read where transformers reads it: decoders at
  the last token of the rendered text (transformers' "last non-pad token"; rewardkit records that index rather
  than searching for pad, so padding and ``pad == eos`` cannot move it), encoders at ``[CLS]``;
* no end token is appended to the text (a rewardkit model scores an appended EOS; a foreign model was trained
  on the text as its tokenizer gives it). Chat-rendered text is cut after the template's end-of-turn token (a
  template that adds ``"\\n"`` after it would otherwise have the reward read at that newline);
* rendering: the tokenizer's chat template when it has one (``data.template: auto``), else rewardkit's plain
  format;
* a tokenizer without a pad token pads with EOS: pad only fills batches, it is never read;
* ``max_length``: the smaller of 2048 (reward-bench's default) and the model's position limit.

Weights load from safetensors only (as for rewardkit models).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

log = logging.getLogger(__name__)

READ_AS = "transformers"
"""``ModelMeta.training["read_as"]`` of a foreign model: the scorer then scores the text without an appended
end token."""
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DEFAULT_MAX_LENGTH = 2048


def is_foreign_model(path: str | Path) -> bool:
    """A directory with a transformers classifier config and no rewardkit.json, or a hub id (owner/name)."""
    p = Path(path)
    if p.is_dir():
        cfg = p / "config.json"
        if not cfg.exists() or (p / "rewardkit.json").exists():
            return False
        archs = json.loads(cfg.read_text(encoding="utf-8")).get("architectures") or []
        return any(a.endswith("ForSequenceClassification") for a in archs)
    return not p.exists() and bool(_HUB_ID.match(str(path)))


def _local_dir(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        return p
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path), allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                                  "*.jinja", "tokenizer*"]))
    except Exception as e:  # offline, unknown id, gated: one clear line instead of the hub client's traceback
        raise FileNotFoundError(f"{path}: not a local directory, and it could not be fetched from the Hugging "
                                f"Face hub ({type(e).__name__}: {str(e).splitlines()[0][:160]}); download it on a "
                                "machine that is online and pass the directory") from None


def load_foreign_model(path: str | Path, trust_remote_code: bool = False):
    """(RewardModel, tokenizer, ModelMeta) for a plain transformers reward model; ``meta.training["inferred"]``
    states what was inferred."""
    from transformers import AutoModelForSequenceClassification

    from .backbones import is_encoder_config, load_config, load_tokenizer
    from .heads import HeadSpec
    from .reward_model import ModelMeta, RewardModel

    directory = _local_dir(path)
    config = load_config(str(directory), None, trust_remote_code)
    archs = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        raise ValueError(f"{path}: not a rewardkit model (no rewardkit.json) and not a transformers "
                         f"*ForSequenceClassification model (architectures: {archs or 'none'})")
    if config.num_labels != 1:
        raise ValueError(f"{path}: {archs[0]} has {config.num_labels} outputs; a reward model read as transformers "
                         "reads it has one (num_labels 1)")
    if not any(directory.glob("*.safetensors")):
        raise FileNotFoundError(f"{directory}: no .safetensors weights; rewardkit loads weights from safetensors "
                                "only, since pickle files can run code when loaded")
    kind = "encoder" if is_encoder_config(config) else "decoder"
    tokenizer = load_tokenizer(str(directory), None, trust_remote_code)
    inferred = {"source": f"{archs[0]} without rewardkit.json, read as transformers reads it",
                "reward": "logit at [CLS]" if kind == "encoder" else "logit at the last token of the rendered text "
                          "(no end token appended)"}
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
        inferred["pad_token"] = "none in the tokenizer: pads with EOS (pad is never read)"
    hf = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32, use_safetensors=True,
                                                            trust_remote_code=trust_remote_code).eval()
    limit = getattr(config, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH
    max_length = min(DEFAULT_MAX_LENGTH, int(limit))
    chat = bool(getattr(tokenizer, "chat_template", None))
    inferred["rendering"] = "the tokenizer's chat template" if chat and kind == "decoder" else "rewardkit plain"
    inferred["max_length"] = max_length
    meta = ModelMeta(kind=kind, pooling="cls" if kind == "encoder" else "last", head="scalar",
                     score_token="", score_token_id=None, template="auto", max_length=max_length,
                     base_model=str(path), training={"read_as": READ_AS, "inferred": inferred})
    model = RewardModel(hf, kind, HeadSpec(pooling=meta.pooling))
    log.info("%s: %s", path, "; ".join(f"{k}: {v}" for k, v in inferred.items()))
    return model.eval(), tokenizer, meta
