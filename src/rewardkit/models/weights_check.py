"""Checks on a weights directory before transformers opens it: pickle-only weights, truncated safetensors.

* A directory with pickle weights (``pytorch_model.bin``) and no safetensors is refused here, for backbones as
  for saved reward models: transformers would otherwise open the pickle (its ``torch.load(weights_only=True)``
  refuses code, but the file is still unpickled). rewardkit never hands a pickle to ``torch.load`` for weights.
* A ``.safetensors`` file is checked against its own header (8-byte length, JSON header, tensor offsets):
  a truncated or damaged file is an error naming it, instead of a traceback from deep inside safetensors.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class WeightsError(ValueError):
    """A weights file cannot be used (the message names it and says why)."""


def check_safetensors(path: Path) -> None:
    """Raise WeightsError when ``path`` is not a whole safetensors file (its header and size disagree)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise WeightsError(f"{path}: {size} bytes, too short for a safetensors file; the file is truncated, "
                               "copy or save it again")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8:
            raise WeightsError(f"{path}: its header claims {n} bytes but the file has {size}; the file is "
                               "truncated or not safetensors, copy or save it again")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError):
            raise WeightsError(f"{path}: the safetensors header is not valid JSON; the file is damaged, copy or "
                               "save it again") from None
    if not isinstance(header, dict):
        raise WeightsError(f"{path}: the safetensors header is not a mapping; the file is damaged")
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)
            and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2]
    need = 8 + n + max(ends, default=0)
    if size < need:
        raise WeightsError(f"{path}: {size} bytes, but its tensors need {need}; the file is truncated, copy or "
                           "save it again")


def check_weights_dir(path: str | Path, what: str) -> None:
    """For a local directory: refuse pickle-only weights and truncated safetensors (``what`` names its role)."""
    d = Path(path)
    if not d.is_dir():
        return  # a hub id: transformers resolves it (offline here), with use_safetensors
    shards = sorted(d.glob("*.safetensors"))
    if not shards:
        pickled = sorted(p.name for p in d.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickled:
            raise WeightsError(f"{d}: the {what} has only pickle weights ({', '.join(pickled)}) and no "
                               ".safetensors; rewardkit does not open pickle files, which can run code when "
                               "loaded. If you trust the file, convert it once: "
                               "AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
        return
    for shard in shards:
        check_safetensors(shard)
