"""A checkpoint's manifest (sizes and SHA-256 of its files, in the ``COMPLETE`` marker) and a resume that
verifies it and falls back to the previous complete checkpoint.

``COMPLETE`` used to say only "ok": a checkpoint damaged after it was written (a truncated copy, a full disk
during a sync, bit rot) was trusted, and ``--resume`` failed with a raw traceback from safetensors or
``torch.load`` naming no file. Now the marker lists every file with its size and digest; resuming checks
them, names the first file that differs or does not load, warns, and tries the next older checkpoint.
Files over :data:`HASH_LIMIT` bytes are checked by size only: hashing tens of GB on every save would cost
more than the checkpoint write itself. Checkpoints written before manifests (marker ``ok``) are loaded
unverified, with the same per-file errors and fallback.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

HASH_LIMIT = 1 << 30
"""Files up to this many bytes get a SHA-256; larger ones their size only."""


class CheckpointError(ValueError):
    """A checkpoint file is missing, damaged or unreadable (the message names it)."""


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path, marker: str) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != marker)


def write_manifest(directory: Path, marker: str) -> None:
    """Write ``directory/marker`` listing every other file's size (and SHA-256 up to HASH_LIMIT bytes)."""
    files = {}
    for p in _files(directory, marker):
        size = p.stat().st_size
        files[p.relative_to(directory).as_posix()] = {"size": size, **({"sha256": _digest(p)}
                                                                       if size <= HASH_LIMIT else {})}
    (directory / marker).write_text(json.dumps({"format": 1, "files": files}, indent=1) + "\n")


def verify_manifest(directory: Path, marker: str) -> None:
    """Raise CheckpointError naming the first file that is missing or differs from the manifest."""
    text = (directory / marker).read_text(errors="replace")
    if text.strip() == "ok":  # written before manifests: nothing to compare against
        return
    try:
        files = json.loads(text)["files"]
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{directory / marker}: the checkpoint manifest is damaged") from None
    for name, want in files.items():
        p = directory / name
        if not p.is_file():
            raise CheckpointError(f"{p}: listed in the checkpoint manifest but missing")
        size = p.stat().st_size
        if size != want.get("size"):
            raise CheckpointError(f"{p}: {size} bytes, the manifest says {want.get('size')} (truncated or "
                                  "overwritten)")
        if "sha256" in want and _digest(p) != want["sha256"]:
            raise CheckpointError(f"{p}: its SHA-256 differs from the manifest (the file is damaged)")


def load_file_or_fail(path: Path, load: Callable[[Path], object]) -> object:
    """``load(path)``, with any failure turned into a CheckpointError naming the file."""
    try:
        return load(path)
    except CheckpointError:
        raise
    except Exception as e:  # safetensors, torch.load (unpickling) and json raise many kinds
        raise CheckpointError(f"{path}: cannot be loaded ({type(e).__name__}: {' '.join(str(e).split())[:200]})") \
            from None


def resume_checkpoint(found: list[Path], marker: str, load: Callable[[Path], dict]) -> tuple[Path, dict]:
    """The newest of ``found`` (oldest first) that verifies and loads: (its path, ``load(path)``). A damaged
    one is skipped with a warning naming the file; when none loads, a CheckpointError lists why."""
    problems = []
    for path in reversed(found):
        try:
            verify_manifest(path, marker)
            return path, load(path)
        except CheckpointError as e:
            problems.append(str(e))
            log.warning("checkpoint %s is damaged, not resuming from it: %s", path.name, e)
    raise CheckpointError("--resume: no complete checkpoint could be loaded: " + "; ".join(problems) +
                          "; start again without --resume (with --overwrite)")
