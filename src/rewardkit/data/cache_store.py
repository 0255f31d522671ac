"""The tokenized cache's entries on disk: what is there, how recently each was used, and removing them safely.

* **In use**: a process that reads an entry (a :class:`~rewardkit.data.cache.TokenizedSet`) holds a shared
  ``flock`` on the entry's ``lock`` file for as long as the set is alive. Removal takes an exclusive lock without
  waiting; an entry whose lock is held is never removed (it is listed as in use and skipped). A removed entry is
  first renamed out of the way under the lock, so a reader that waited for the lock finds no entry and tokenizes
  again instead of reading a half-deleted one.
* **Last used**: every cache hit and every new entry touches the entry's ``last_used`` file; eviction and
  ``--older-than`` go by its time (least recently used first).
* **Size limit**: with ``data.cache_max_gb`` set, writing a new entry evicts the least recently used entries that
  are not in use until the cache fits (the new entry is kept even if it alone is larger).

``rewardkit cache list`` and ``rewardkit cache clear`` are the command-line view of this module. The digests of
source files remembered under ``sources/`` (:mod:`rewardkit.data.source_identity`) are small and are removed only
by ``clear --all``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

LOCK, LAST_USED = "lock", "last_used"


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path
    bytes: int
    last_used: float
    """Seconds since the epoch of the last hit or of the build."""
    source: str | None
    in_use: bool


def hold(entry: Path):
    """A shared lock on ``entry`` (an open file: keep it while the entry is read, close it to release); touches
    its ``last_used`` time. Raises OSError when the entry is gone."""
    f = open(entry / LOCK, "a+b")  # noqa: SIM115 - held for the lifetime of the set that reads the entry
    try:
        fcntl.flock(f, fcntl.LOCK_SH)
        if not (entry / "meta.json").is_file():  # removed while this process waited for the lock
            raise FileNotFoundError(f"{entry}: cache entry was removed")
        touch(entry)
    except BaseException:
        f.close()
        raise
    return f


def touch(entry: Path) -> None:
    (entry / LAST_USED).touch()


def _size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _in_use(path: Path) -> bool:
    try:
        with open(path / LOCK, "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _source(path: Path) -> str | None:
    import json

    try:
        return json.loads((path / "meta.json").read_text()).get("source")
    except (OSError, ValueError):
        return None


def entries(root: Path) -> list[Entry]:
    """The complete entries under ``root``, least recently used first (temporary build directories, which start
    with a dot, are not entries)."""
    out = []
    if not root.is_dir():
        return out
    for path in root.iterdir():
        if path.name.startswith(".") or path.name == "sources" or not (path / "meta.json").is_file():
            continue
        stamp = path / LAST_USED
        used = (stamp if stamp.exists() else path / "meta.json").stat().st_mtime
        out.append(Entry(path.name, path, _size(path), used, _source(path), _in_use(path)))
    return sorted(out, key=lambda e: (e.last_used, e.key))


def remove(entry: Entry) -> bool:
    """Remove ``entry`` unless a process holds it; True when it was removed."""
    try:
        f = open(entry.path / LOCK, "a+b")  # noqa: SIM115
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        trash = entry.path.with_name(f".removing-{entry.key}-{os.getpid()}")
        try:
            os.replace(entry.path, trash)
        except OSError:
            return False
    shutil.rmtree(trash, ignore_errors=True)
    return True


def clear(root: Path, *, older_than_days: float | None = None, max_bytes: int | None = None,
          everything: bool = False, keep: frozenset[str] = frozenset()) -> tuple[list[Entry], list[Entry]]:
    """Remove entries: all of them (``everything``), those not used for ``older_than_days``, and/or the least
    recently used until the rest fit in ``max_bytes``. Never an entry in use, nor one in ``keep``. Returns
    (removed, skipped because in use)."""
    removed: list[Entry] = []
    busy: list[Entry] = []
    found = entries(root)
    total = sum(e.bytes for e in found)
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    for e in found:  # least recently used first
        wanted = (everything or (cutoff is not None and e.last_used < cutoff)
                  or (max_bytes is not None and total > max_bytes))
        if not wanted or e.key in keep:
            continue
        if remove(e):
            removed.append(e)
            total -= e.bytes
        else:
            busy.append(e)
    if everything:
        shutil.rmtree(root / "sources", ignore_errors=True)
    return removed, busy


def evict(root: Path, max_gb: float | None, keep: str) -> None:
    """``data.cache_max_gb``: after writing entry ``keep``, drop least recently used entries until the cache fits."""
    if max_gb is None:
        return
    import logging

    removed, busy = clear(root, max_bytes=int(max_gb * 2**30), keep=frozenset({keep}))
    if removed or busy:
        logging.getLogger(__name__).info("cache %s over data.cache_max_gb=%g: removed %d entries (%.1f MB), %d in "
                                         "use kept", root, max_gb, len(removed),
                                         sum(e.bytes for e in removed) / 1e6, len(busy))
