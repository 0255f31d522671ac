"""The content digest of a data file, without re-reading the file on every run.

The tokenized cache is keyed by the *content* of the data file (:func:`full_digest`, BLAKE2 over its bytes).
Hashing 1.5 GB (a million pairs) on every start costs seconds to tens of seconds, so the digest is remembered
next to the cache, in ``<cache_dir>/sources/<hash of the absolute path>.json``, together with the file's
identity when it was hashed: device, inode, size, modification time and change time (nanoseconds) of the file
(of every file of a ``datasets`` directory), and a *sampled hash* (the first and last 64 KiB and 16 blocks of
4 KiB spread evenly over the file).

A remembered digest is used only when all of the following hold, else the file is hashed again in full (and the
memo rewritten):

* every stat field is unchanged. Any write to a file moves its change time (``st_ctime``), which no program can
  set back (``touch``/``os.utime`` and ``cp -p`` move it too), and a file replaced by another (an editor's save,
  ``mv``, ``rsync``) has a new inode; so a same-size edit with the modification time put back is still seen;
* the sampled hash is unchanged: the blocks read cost well under a millisecond and catch a same-size rewrite on a
  file system whose timestamps do not move (some network mounts);
* the memo was not *racy* (as git's index): when the file was changed less than :data:`RACY_SECONDS` before it
  was hashed, a second write within the same timestamp tick could leave every stat field equal, so such a
  digest is not remembered at all and the next run hashes again;
* the file did not change while it was being hashed (stat before and after).

A touched file (new modification time, same bytes) is hashed again and keeps its digest, hence its cache entry.
What is not caught: a rewrite of the same size, inode, modification and change time whose changed bytes all
fall outside the sampled blocks, which needs the system clock moved back; delete ``<cache_dir>/sources`` (or
the whole cache) to make every file be hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

from .readers import resolve_path

log = logging.getLogger(__name__)

RACY_SECONDS = 2.0
"""A file changed this close before it was hashed is not remembered (coarse timestamps: FAT 2 s, ext3 1 s)."""

SAMPLE_EDGE = 1 << 16
SAMPLE_BLOCK = 1 << 12
SAMPLE_BLOCKS = 16


def _files(p: Path) -> list[Path]:
    return sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]


def _name(f: Path, p: Path) -> str:
    return str(f.relative_to(p)) if p.is_dir() else ""


def full_digest(path: str) -> str:
    """BLAKE2 of a file's bytes, or of every file (name and bytes) under a directory."""
    p = resolve_path(path)
    h = hashlib.blake2b(digest_size=20)
    for f in _files(p):
        h.update(_name(f, p).encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def stat_identity(p: Path) -> list[list]:
    """Name, device, inode, size, mtime and ctime (ns) of each file of ``p``."""
    out = []
    for f in _files(p):
        s = f.stat()
        out.append([_name(f, p), s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns])
    return out


def sampled_digest(p: Path) -> str:
    """BLAKE2 of the first and last :data:`SAMPLE_EDGE` bytes and :data:`SAMPLE_BLOCKS` evenly spread blocks."""
    h = hashlib.blake2b(digest_size=16)
    for f in _files(p):
        size = f.stat().st_size
        offsets = [0, max(size - SAMPLE_EDGE, 0)] + [size * k // (SAMPLE_BLOCKS + 1) for k in
                                                     range(1, SAMPLE_BLOCKS + 1)]
        with open(f, "rb") as fh:
            for k, off in enumerate(offsets):
                fh.seek(off)
                h.update(fh.read(SAMPLE_EDGE if k < 2 else SAMPLE_BLOCK))
    return h.hexdigest()


def _memo_path(memo_dir: Path, p: Path) -> Path:
    name = hashlib.blake2b(str(p.resolve()).encode(), digest_size=16).hexdigest()
    return memo_dir / "sources" / f"{name}.json"


def _recall(memo: Path, p: Path, stat: list) -> str | None:
    try:
        saved = json.loads(memo.read_text())
    except (OSError, ValueError):
        return None
    if saved.get("path") != str(p.resolve()) or saved.get("stat") != stat:
        return None
    if saved.get("sample") != sampled_digest(p):
        return None
    return saved.get("digest")


def _remember(memo: Path, p: Path, stat: list, digest: str, hashed_at: float) -> None:
    newest = max((max(s[4], s[5]) for s in stat), default=0) / 1e9
    if hashed_at - newest < RACY_SECONDS:  # a write in the same timestamp tick could go unseen: do not trust
        return
    memo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".json", dir=memo.parent)
    with os.fdopen(fd, "w") as fh:
        json.dump({"path": str(p.resolve()), "stat": stat, "sample": sampled_digest(p), "digest": digest}, fh)
    os.replace(tmp, memo)  # atomic: a concurrent reader sees the old memo or the new one


def content_digest(path: str, memo_dir: Path | None = None) -> str:
    """:func:`full_digest` of ``path``, taken from the memo under ``memo_dir`` when the file is provably the
    one that was hashed (module docstring); ``memo_dir=None`` always hashes in full."""
    if memo_dir is None:
        return full_digest(path)
    p = resolve_path(path)
    memo = _memo_path(memo_dir, p)
    before = stat_identity(p)
    known = _recall(memo, p, before)
    if known:
        return known
    hashed_at = time.time()
    digest = full_digest(path)
    if stat_identity(p) == before:  # not changed while it was read
        try:
            _remember(memo, p, before, digest, hashed_at)
        except OSError as e:  # a read-only cache directory: hash every run, never fail the run
            log.debug("%s: cannot remember the digest (%s)", memo, e)
    return digest
