"""A run's output directory: refuse one that cannot be written or holds a finished run, before any work.

``train`` checks the directory when it starts (:func:`check_output_dir`) and writes ``config.yaml`` only once
the data and the model are validated (:func:`claim_output_dir`), so a run that fails validation leaves an
earlier run's files, ``config.yaml`` included, as they were: an export's model card then still describes the
model that was trained.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

FINISHED_MARKERS = ("summary.json", "model")
"""What only a finished run writes (its last step): either one means the directory holds a trained model."""


def check_output_dir(out: Path, resume: bool, overwrite: bool, has_checkpoints: bool) -> None:
    """Raise a clear error for an ``output_dir`` that is a file, is not writable, or holds an earlier run."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"output_dir {out}: {parent} is a file, not a directory; choose another "
                                         "output_dir")
            try:  # a real write, not os.access: root, read-only mounts and ACLs all answer truly
                tempfile.TemporaryFile(dir=parent).close()
            except OSError as e:
                raise PermissionError(f"output_dir {out}: cannot write in {parent} ({e.strerror}); choose another "
                                      "output_dir or fix its permissions") from None
            break
    if resume and overwrite:
        raise ValueError("--resume continues the run in output_dir and --overwrite replaces it: pass one of them")
    if resume or overwrite:
        return
    finished = [m for m in FINISHED_MARKERS if (out / m).exists()]
    if finished:
        raise FileExistsError(f"output_dir {out} holds a finished run ({finished[0]}); pass --overwrite to replace "
                              "it, or choose another output_dir")
    if has_checkpoints:
        raise FileExistsError(f"{out / 'checkpoints'} holds checkpoints of an earlier run: pass --resume to continue "
                              "it, --overwrite to start again, or choose another output_dir")


def claim_output_dir(out: Path, config_text: str, overwrite: bool) -> None:
    """Create ``out`` and write ``config.yaml``; with ``overwrite``, first remove the earlier run's outputs.

    Called after validation: an earlier run is only replaced by one whose data and model loaded.
    """
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in ("checkpoints", "model", "summary.json", "metrics.jsonl", "tensorboard"):
            p = out / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
            else:
                continue
            log.info("--overwrite: removed %s of the earlier run", p)
    tmp = out / ".config.yaml.tmp"
    tmp.write_text(config_text)
    os.replace(tmp, out / "config.yaml")
