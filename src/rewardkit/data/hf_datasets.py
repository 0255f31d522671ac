"""Hugging Face ``datasets`` sources: a Hub dataset, a ``save_to_disk`` directory, or a directory in the Hub's layout.

``data.train`` (or an eval set) points at one with ``path`` and chooses within it with ``split``, ``subset``,
``data_dir`` and ``revision`` (:class:`DatasetsOptions`):

* ``hf://datasets/OWNER/NAME`` (``hf://OWNER/NAME`` is read the same): the Hub dataset, streamed with
  ``datasets.load_dataset_builder(...).as_streaming_dataset(split)`` (what ``load_dataset(..., streaming=True)``
  does): records arrive shard by shard, never as a whole list;
* a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` (it holds ``state.json`` or
  ``dataset_dict.json``): loaded with ``datasets.load_from_disk``, memory-mapped, and iterated row by row;
* any other directory: data files in the Hub's layout (``data/train-*.parquet``, ``*.jsonl``, an optional
  README with ``configs``), streamed as a Hub dataset is.

Every record is a :class:`~rewardkit.data.readers.Record` named ``SOURCE[SPLIT]:row N`` (``N`` from 1) and goes
through the same adapters, validators and ``data.on_invalid`` as a file's records. Which split is read is never
guessed: with ``split`` null the source must hold one split, else the error names those it holds.

The tokenized cache keys a Hub dataset by its repo id and the commit the Hub resolves ``revision`` to
(:func:`hub_identity`; a commit's files never change); a local directory by the content of its files, as a file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError
from .readers import Record, Row

log = logging.getLogger(__name__)

HUB_SCHEME = "hf://"


@dataclass(frozen=True)
class DatasetsOptions:
    """What to read of a ``datasets`` source (the fields of the same names on ``SplitConfig``)."""

    split: str | None = None
    subset: str | None = None
    data_dir: str | None = None
    revision: str | None = None

    @classmethod
    def of(cls, split) -> DatasetsOptions:
        """The options a ``SplitConfig`` gives."""
        return cls(split.split, split.subset, split.data_dir, split.revision)

    def given(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}


def is_hub_path(path: str) -> bool:
    """A Hub dataset's path (``hf://...``): its size and content are not on this machine."""
    return path.startswith(HUB_SCHEME)


def hub_repo(path: str) -> str | None:
    """``OWNER/NAME`` of a ``hf://datasets/OWNER/NAME`` (or ``hf://OWNER/NAME``) path; None for other paths."""
    if not is_hub_path(path):
        return None
    rest = path[len(HUB_SCHEME):].strip("/")
    rest = rest[len("datasets/"):] if rest.startswith("datasets/") else rest
    parts = rest.split("/")
    if len(parts) != 2 or not all(parts) or "@" in rest:
        raise DataError(path, None, None, "a Hub dataset is written hf://datasets/OWNER/NAME; give a revision as "
                        "`revision:` and a folder of the repo as `data_dir:`", "bad_dataset_path")
    return "/".join(parts)


def is_datasets_source(path: str) -> bool:
    """A Hub dataset or a directory (``builtin:`` names and files are read by :mod:`.readers`)."""
    return is_hub_path(path) or (not path.startswith("builtin:") and Path(path).is_dir())


def is_saved(p: Path) -> bool:
    """A ``save_to_disk`` directory (of one ``Dataset`` or of a ``DatasetDict``)."""
    return (p / "state.json").is_file() or (p / "dataset_dict.json").is_file()


def _choose(source: str, wanted: str | None, names: list[str]) -> str:
    """The split to read: ``wanted`` when the source has it, its only split when ``wanted`` is None."""
    listed = ", ".join(names) or "none"
    if wanted is None:
        if len(names) == 1:
            return names[0]
        raise DataError(source, None, None, f"the source holds several splits ({listed}); name one with "
                        "`split:` (e.g. --data.train.split train)", "several_splits")
    if wanted not in names:
        raise DataError(source, None, None, f"no split {wanted!r}; the available splits are: {listed}",
                        "missing_split")
    return wanted


def _not_for(source: str, opts: DatasetsOptions, keys: tuple[str, ...], what: str) -> None:
    for key in keys:
        if getattr(opts, key) is not None:
            raise DataError(source, None, None, f"`{key}` does not apply to {what}; leave it out", "bad_option")


def _saved_rows(path: str, opts: DatasetsOptions) -> tuple[str, Iterable[dict]]:
    import datasets

    _not_for(path, opts, ("subset", "data_dir", "revision"), "a save_to_disk directory")
    ds = datasets.load_from_disk(path)
    if isinstance(ds, datasets.DatasetDict):
        name = _choose(path, opts.split, list(ds))
        return f"{path}[{name}]", ds[name]
    saved = str(ds.split) if ds.split is not None else None
    if opts.split is not None and opts.split != saved:
        raise DataError(path, None, None, f"no split {opts.split!r}: the directory holds one data set "
                        f"({'split ' + repr(saved) if saved else 'no split names'}); leave out `split`",
                        "missing_split")
    return path, ds


def builder_for(path: str, opts: DatasetsOptions):
    """``datasets.load_dataset_builder`` for a Hub dataset or a directory in the Hub's layout; its errors (an
    unknown subset, no data files, the Hub unreachable) become a :class:`DataError` naming the source."""
    import datasets

    repo = hub_repo(path)
    if repo is None:
        _not_for(path, opts, ("revision",), "a local directory")
    try:
        return datasets.load_dataset_builder(repo or path, opts.subset, data_dir=opts.data_dir,
                                             revision=opts.revision)
    except (ValueError, FileNotFoundError, ConnectionError, datasets.exceptions.DatasetsError) as e:
        raise DataError(path, None, None, f"datasets cannot load it: {e}", "unreadable_dataset") from None


def split_names(builder) -> list[str]:
    """The splits a builder can stream: those its info lists, else those its data files are grouped into."""
    names = builder.info.splits or builder.config.data_files or {}
    return [str(n) for n in names]  # data files are keyed by NamedSplit


def _streamed_rows(path: str, opts: DatasetsOptions) -> tuple[str, Iterable[dict]]:
    builder = builder_for(path, opts)
    name = _choose(path, opts.split, split_names(builder))
    return f"{path}[{name}]", builder.as_streaming_dataset(split=name)


def read_dataset(path: str, opts: DatasetsOptions | None = None) -> Iterator[Record]:
    """Every record of the chosen split, one at a time, named ``SOURCE[SPLIT]:row N``."""
    opts = opts if opts is not None else DatasetsOptions()
    hub = hub_repo(path) is not None
    path = path if hub else str(Path(path))  # a directory named as the file readers name files ("d/" is "d")
    saved = not hub and is_saved(Path(path))
    label, rows = _saved_rows(path, opts) if saved else _streamed_rows(path, opts)
    log.info("%s: reading a datasets source (%s)", label, "memory-mapped" if saved else "streamed")
    i, stream = 0, iter(rows)
    try:
        for i, row in enumerate(stream, start=1):
            yield Record(dict(row), label, Row(i))
    except DataError:
        raise
    except Exception as e:  # an unreadable shard mid-stream cannot be skipped past: stop naming where it was
        raise DataError(label, Row(i + 1), None, f"datasets could not read it ({type(e).__name__}: "
                        f"{str(e)[:200]})", "unreadable_dataset") from e
    finally:
        # a stream left open (a row range's stop, a format peek, an error) is closed now, not by the garbage
        # collector at interpreter exit: pyarrow's reader threads then abort or hang the process
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _is_commit(revision: str | None) -> bool:
    return revision is not None and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision)


def resolve_commit(path: str, opts: DatasetsOptions) -> str | None:
    """The commit a Hub dataset's ``revision`` (null: the default branch) resolves to now, as ``datasets`` resolves
    it; None when it gives none."""
    if _is_commit(opts.revision):
        return opts.revision
    commit = getattr(builder_for(path, opts), "hash", None)
    return commit if isinstance(commit, str) and _is_commit(commit) else None


def hub_identity(path: str, opts: DatasetsOptions) -> str | None:
    """``hub:OWNER/NAME@COMMIT`` for a Hub dataset (a commit's files never change, a branch's do); None when no
    commit is known (the cache is then bypassed)."""
    commit = resolve_commit(path, opts)
    return f"hub:{hub_repo(path)}@{commit}" if commit else None


def pin_revision(split):
    """``split`` (a ``SplitConfig``) with a Hub dataset's ``revision`` replaced by the commit it resolves to now,
    so that the records read and the cache key name the same commit even if the branch moves meanwhile; other
    splits, and a Hub dataset without a known commit, are returned as they are."""
    from dataclasses import replace

    if hub_repo(split.path) is None or _is_commit(split.revision):
        return split
    commit = resolve_commit(split.path, DatasetsOptions.of(split))
    if commit is None:
        return split
    log.info("%s: revision %s is commit %s", split.path, split.revision or "(default branch)", commit)
    return replace(split, revision=commit)
