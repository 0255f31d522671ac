"""Writing files so that no output is lost or silently replaced.

:func:`atomic_write` gives a temporary path in the destination's own directory; the caller writes there, and
only when the ``with`` block ends without an exception is it flushed to disk and renamed over the destination
(a rename within one file system is atomic on POSIX). A process killed mid-write leaves the previous file
untouched and at most a ``.NAME.*.tmp`` file that no reader mistakes for the output; a failed write removes
its temporary file. :func:`check_output` refuses, before any work is done, an output that is the input or
that already exists without ``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def check_output(output: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = False) -> Path:
    """``output`` as a Path, after refusing one that is one of ``inputs`` or exists (unless ``overwrite``)."""
    out = Path(output)
    for src in inputs:
        src_path = Path(src)
        if str(src).startswith("builtin:") or not src_path.exists() or not out.exists():
            continue
        if os.path.samefile(src_path, out):
            raise FileExistsError(f"{out}: the output is the input file; write to a new file (the input is read "
                                  "while the output is written, and replacing it would lose the original)")
    if out.is_dir():
        raise FileExistsError(f"{out}: the output is a directory; give a file name such as {out / 'scored.jsonl'}")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite to replace it, or choose another output")
    return out


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is fsynced and renamed to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; the output gets the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # the data reaches the disk before the name points at it
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself reaches the disk (not possible on every system)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
