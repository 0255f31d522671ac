"""Tokenized data sets stored once as Arrow files and read back memory-mapped.

:func:`load_tokenized` is the one entry point: it returns a :class:`TokenizedSet` (a read-only sequence of the
task's encoded items) for a split, from the cache when an entry with the same key exists, else by reading,
validating and tokenizing the split (in ``data.num_proc`` processes, :mod:`rewardkit.data.parallel`) and
writing the entry chunk by chunk, so neither the text nor the Python objects of the whole set are ever held.

The key (:func:`cache_key`) is a SHA-256 over everything that can change the encoded items:

* the content of the data file (BLAKE2 over its bytes; every file of a ``datasets`` directory), not its
  modification time, and its path as given (each item names its record ``path:line``). The digest is
  remembered with the file's stat and a sampled hash, so a cached start does not read the whole file again
  (:mod:`rewardkit.data.source_identity` says when a remembered digest is trusted). A Hub dataset
  (``hf://datasets/OWNER/NAME``) is keyed by its repo id and the commit its ``revision`` resolves to, and its
  ``split`` / ``subset`` / ``data_dir`` / ``revision`` as given (:mod:`rewardkit.data.hf_datasets`); when no commit
  is known the split is not cached (a warning says so);
* the split's row range, adapter, format and field names, ``data.on_invalid`` and ``data.ratings``;
* the task (which item type the records become; the attribute names of a multi-attribute head);
* rendering and tokenization: model kind, template, separator, max_length, truncation policy, score token, and
  the tokenizer itself (its serialized vocabulary, merges, normalizer and post-processor, chat template and
  special tokens);
* the rewardkit version and :data:`CACHE_FORMAT`.

An entry is a directory ``<cache_dir>/<key>/`` holding ``items.arrow`` (one row per item: token ids, response
starts, score indices and prompt lengths of its sequences, its length and its targets) and ``meta.json`` (what
was skipped as invalid and what the over-length policy touched, so a cached run reports the same counts).
Entries are written to a temporary directory and renamed into place, so a crashed or concurrent build never
leaves a partial entry that a later run would take. Readers hold a shared lock on the entry, and
:mod:`rewardkit.data.cache_store` (``rewardkit cache list|clear``, ``data.cache_max_gb``) never removes an entry
in use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass, replace
from pathlib import Path

from .. import __version__
from ..config import DataConfig, SplitConfig
from . import cache_store
from .errors import SkipReport
from .source_identity import content_digest

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
"""Bump when the stored layout or the meaning of a column changes: older entries are then never read."""


# ---------------------------------------------------------------------------------------------------------
# items <-> rows


def _item_kind(item) -> str:
    name = type(item).__name__
    return {"EncodedPair": "pair", "EncodedExample": "example", "EncodedRanked": "ranked"}[name]


def _seqs_extra(item) -> tuple[list, dict]:
    kind = _item_kind(item)
    if kind == "pair":
        return [item.chosen, item.rejected], {"margin": item.margin, "chosen_chars": item.chosen_chars,
                                              "rejected_chars": item.rejected_chars}
    if kind == "example":
        return [item.seq], {"target": item.target, "mask": item.mask}
    return list(item.seqs), {"ranks": item.ranks}


def items_to_columns(items: Sequence) -> dict[str, list]:
    """Column lists for a chunk of encoded items (one row each)."""
    cols: dict[str, list] = {k: [] for k in ("kind", "where", "length", "ids", "types", "start", "score", "prompt",
                                             "extra")}
    for it in items:
        seqs, extra = _seqs_extra(it)
        cols["kind"].append(_item_kind(it))
        cols["where"].append(it.where)
        cols["length"].append(max(len(s.input_ids) for s in seqs))
        cols["ids"].append([s.input_ids for s in seqs])
        cols["types"].append(None if all(s.token_type_ids is None for s in seqs) else
                             [s.token_type_ids or [] for s in seqs])
        cols["start"].append([s.response_start for s in seqs])
        cols["score"].append([s.score_index for s in seqs])
        cols["prompt"].append([s.prompt_tokens for s in seqs])
        cols["extra"].append(json.dumps(extra))  # floats round-trip exactly through repr; NaN as NaN
    return cols


def row_to_item(row: dict):
    """The encoded item a stored row holds (equal to the one that was written)."""
    from ..training.tasks import EncodedExample, EncodedRanked  # tasks import this package: import late
    from .dataset import EncodedPair
    from .tokenize import Encoded

    types = row["types"]
    seqs = [Encoded(ids, types[j] if types is not None else None, row["start"][j], row["score"][j],
                    row["prompt"][j]) for j, ids in enumerate(row["ids"])]
    extra = json.loads(row["extra"])
    if row["kind"] == "pair":
        return EncodedPair(seqs[0], seqs[1], extra["margin"], row["where"], extra["chosen_chars"],
                           extra["rejected_chars"])
    if row["kind"] == "example":
        return EncodedExample(seqs[0], extra["target"], row["where"], extra["mask"])
    return EncodedRanked(seqs, extra["ranks"], row["where"])


def _schema():
    import pyarrow as pa

    ints = pa.list_(pa.int32())
    return pa.schema([("kind", pa.string()), ("where", pa.string()), ("length", pa.int32()),
                      ("ids", pa.list_(ints)), ("types", pa.list_(pa.list_(pa.int8()))), ("start", ints),
                      ("score", ints), ("prompt", ints), ("extra", pa.string())])


# ---------------------------------------------------------------------------------------------------------
# the stored set


@dataclass
class TokenizedSet(Sequence):
    """Encoded items of one split, read memory-mapped from an Arrow file: ``len``, ``[i]`` and iteration give the
    task's items (:class:`~rewardkit.data.dataset.EncodedPair` ...); :attr:`lengths` is the length column (the
    longest sequence of each item) that batch planning works on without touching the items."""

    path: Path
    meta: dict = field(default_factory=dict)
    """``truncation`` (over-length counts), ``invalid`` (skip counts), ``key``, ``source``, ``cached``."""

    def __post_init__(self):
        import pyarrow as pa

        # a shared lock while this set lives: `rewardkit cache clear` and eviction never remove an entry in use
        lock = cache_store.hold(self.path)
        weakref.finalize(self, lock.close)
        self._table = pa.ipc.open_file(pa.memory_map(str(self.path / "items.arrow"), "r")).read_all()
        self.lengths = self._table.column("length").to_numpy()

    def __len__(self) -> int:
        return self._table.num_rows

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(i)
        return row_to_item(self._table.slice(i % n, 1).to_pylist()[0])

    def __iter__(self) -> Iterator:
        for batch in self._table.to_batches(max_chunksize=1024):
            for row in batch.to_pylist():
                yield row_to_item(row)

    @property
    def truncation(self) -> dict:
        return dict(self.meta.get("truncation", {}))


def _write_entry(directory: Path, chunks: Iterator[list], meta_of) -> None:
    """Write chunks of items to ``directory/items.arrow`` one record batch at a time; then ``meta.json``."""
    import pyarrow as pa

    directory.mkdir(parents=True, exist_ok=True)
    schema = _schema()
    with pa.OSFile(str(directory / "items.arrow"), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for items in chunks:
            if items:
                writer.write_batch(pa.RecordBatch.from_pydict(items_to_columns(items), schema=schema))
    (directory / "meta.json").write_text(json.dumps(meta_of(), indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------
# the key


def tokenizer_digest(tokenizer) -> str:
    """What of a tokenizer decides its ids: the serialized Rust tokenizer, the chat template, special tokens."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    extra = {"chat_template": getattr(tokenizer, "chat_template", None),
             "special": getattr(tokenizer, "special_tokens_map", {}),
             "ids": [tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id],
             "add_bos": getattr(tokenizer, "add_bos_token", None), "add_eos": getattr(tokenizer, "add_eos_token", None)}
    h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()


def source_data(split: SplitConfig, data: DataConfig) -> DataConfig:
    """``data`` with a source's own format and field names (mixture sources may each have their own)."""
    return replace(data, format=split.format or data.format, fields=split.fields or data.fields)


def source_content(split: SplitConfig, data: DataConfig) -> str | None:
    """What identifies a split's data: a Hub dataset's repo id and resolved commit (``hf_datasets.hub_identity``),
    else the content digest of its file or directory; None when neither is known (the cache is then bypassed)."""
    from .hf_datasets import DatasetsOptions, hub_identity, hub_repo

    if hub_repo(split.path) is not None:
        return hub_identity(split.path, DatasetsOptions.of(split))
    # the file's digest is remembered under the cache directory, re-used only while the file is provably the
    # same (data/source_identity.py); with the cache off nothing is written there, so the file is hashed
    return content_digest(split.path, cache_root(data) if data.cache else None)


def cache_key(split: SplitConfig, data: DataConfig, task_id: dict, renderer, encoder) -> str | None:
    """The cache key of a split's encoded items (see the module docstring for what goes in); None when the
    source's data cannot be identified (:func:`source_content`)."""
    from .hf_datasets import DatasetsOptions

    d = source_data(split, data)
    content = source_content(split, data)
    if content is None:
        return None
    parts = {
        # the path too: every item names its record as ``path:line`` (errors, reports and score rows use it)
        "rewardkit": __version__, "cache_format": CACHE_FORMAT, "content": content, "path": split.path,
        "rows": [split.start, split.stop], "adapter": split.adapter or data.adapter, "format": d.format,
        "fields": asdict(d.fields), "on_invalid": d.on_invalid, "ratings": asdict(d.ratings), "task": task_id,
        "render": settings_identity(renderer), "encode": settings_identity(encoder),
        "tokenizer": tokenizer_digest(encoder.tokenizer),
    }
    if options := DatasetsOptions.of(split).given():  # only then: the keys of file splits stay as they were
        parts["datasets"] = options
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def settings_identity(obj) -> dict:
    """What of a renderer or encoder changes the items: its class and every plain setting it holds (kind,
    template, separator, max_length, truncation, score token, a judge's or a step renderer's config ...), so a
    new renderer with settings of its own is keyed without editing this function. The tokenizer is keyed apart
    (:func:`tokenizer_digest`); counters (``stats``) are not settings."""
    out: dict = {"class": type(obj).__name__}
    for name, value in sorted(vars(obj).items()):
        if name in ("tokenizer", "stats") or name.startswith("_"):
            continue
        if is_dataclass(value) and not isinstance(value, type):
            out[name] = asdict(value)
        elif value is None or isinstance(value, (str, int, float, bool, list, tuple)):
            out[name] = value
    return out


def task_identity(task) -> dict:
    """What of a task changes the items: its class (the item type) and a multi-attribute head's attributes."""
    return {"task": type(task).__name__, "attributes": getattr(task, "attributes", None)}


def default_cache_dir() -> Path:
    env = os.environ.get("REWARDKIT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rewardkit" / "tokenized"


def cache_root(data: DataConfig) -> Path:
    """``data.cache_dir``, else :func:`default_cache_dir`."""
    return Path(data.cache_dir) if data.cache_dir else default_cache_dir()


# ---------------------------------------------------------------------------------------------------------
# the entry point


def _restore_skips(report: SkipReport, saved: dict) -> None:
    report.skipped.update(saved.get("by_reason", {}))
    room = report.max_examples - len(report.examples)
    report.examples.extend(saved.get("first", [])[:max(room, 0)])


class InMemorySet(list):
    """The encoded items of a split the cache cannot store, in memory, with a :class:`TokenizedSet`'s ``meta``."""

    meta: dict
    truncation: dict


def _in_memory(split: SplitConfig, data: DataConfig, task, renderer, encoder, report: SkipReport) -> InMemorySet:
    encoder.stats.counts.clear()  # this split's over-length counts only
    items = InMemorySet(task.encode(task.load(split, data, report), renderer, encoder))
    items.truncation = encoder.stats.summary()
    items.meta = {"source": split.path, "truncation": items.truncation, "invalid": report.summary(), "cached": False}
    log.info("%s: %d items tokenized in memory (%s items are not cached)", split.path, len(items), type(task).__name__)
    return items


def load_tokenized(split: SplitConfig, data: DataConfig, task, renderer, encoder, report: SkipReport | None = None,
                   *, name: str = "", progress: bool = True) -> TokenizedSet:
    """The encoded items of ``split`` for ``task``, cached under ``data.cache_dir`` unless ``data.cache`` is off.

    ``report`` receives the split's invalid-record counts (also on a cache hit, from the entry). The items are
    the ones ``task.encode(task.load(split, ...))`` gives, in the same order, whatever ``data.num_proc``.
    """
    from .hf_datasets import pin_revision
    from .parallel import encode_split

    split = pin_revision(split)  # a Hub branch read and keyed at one commit
    report = report if report is not None else SkipReport()
    if not getattr(task, "cacheable", True):  # items this cache has no columns for (e.g. process-reward steps)
        return _in_memory(split, source_data(split, data), task, renderer, encoder, report)
    key = cache_key(split, data, task_identity(task), renderer, encoder)
    use_cache = data.cache and key is not None
    if key is None:
        log.warning("%s: not cached: datasets gave no commit for this Hub dataset, so a cache entry could not tell "
                    "its versions apart (pin `revision:` to a commit, or point at a local copy)", split.path)
        key = "uncached"
    root = cache_root(data)
    entry = root / key
    if use_cache and (entry / "meta.json").is_file():
        try:
            ts = TokenizedSet(entry, json.loads((entry / "meta.json").read_text()))
        except (OSError, ValueError) as e:  # an unreadable entry is rebuilt, never trusted
            log.warning("%s: unreadable cache entry (%s); tokenizing again", entry, e)
        else:
            _restore_skips(report, ts.meta.get("invalid", {}))
            ts.meta["cached"] = True
            log.info("%s: %d tokenized items from the cache (%s)", split.path, len(ts), entry)
            return ts
    if use_cache:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    else:  # still written to disk and memory-mapped: memory does not grow with the set; removed with the set
        tmp = Path(tempfile.mkdtemp(prefix="rewardkit-tokenized-"))
    local = SkipReport(max_examples=report.max_examples)
    build = encode_split(split, source_data(split, data), task, renderer, encoder, local, data.num_proc,
                         desc=f"tokenize {name or split.path}", progress=progress)
    try:
        _write_entry(tmp, build.chunks, lambda: {"key": key, "source": split.path, "rewardkit": __version__,
                                                 "truncation": build.truncation(), "invalid": local.summary(),
                                                 "records": build.records})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _restore_skips(report, local.summary())
    if not use_cache:
        ts = TokenizedSet(tmp, json.loads((tmp / "meta.json").read_text()))
        weakref.finalize(ts, shutil.rmtree, tmp, True)
        return ts
    try:
        os.replace(tmp, entry)  # atomic: a reader sees no entry or a whole one
    except OSError:  # another process wrote the same entry first: the same items; keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
    ts = TokenizedSet(entry, json.loads((entry / "meta.json").read_text()))
    ts.meta["cached"] = False
    cache_store.evict(root, data.cache_max_gb, keep=key)  # after the new set holds its entry
    return ts



class EvalPairs:
    """The `eval` command's pairs, already read (its report shows their text): only their tokenization goes
    through the cache. ``format`` is not ``pairs`` so the records are not read a second time."""

    format = "eval-pairs"

    def __init__(self, pairs: list):
        self.pairs = pairs

    def load(self, split: SplitConfig, data: DataConfig, report: SkipReport) -> list:
        return self.pairs

    def encode(self, examples: list, renderer, encoder) -> list:
        from .dataset import encode_pairs

        return encode_pairs(examples, renderer, encoder)


def encode_eval_pairs(split: SplitConfig, data: DataConfig | None, pairs: list, renderer, encoder) -> list:
    """``encode_pairs(pairs, renderer, encoder)`` through the cache; the encoder's counts get the over-length
    policy's counts as if it had encoded them."""
    data = data if data is not None else DataConfig()
    ts = load_tokenized(split, data, EvalPairs(pairs), renderer, encoder, SkipReport(), progress=False)
    encoder.stats.counts.update(ts.truncation)
    return list(ts)


class ScoreEncodings:
    """`rewardkit score`'s encoded sequences of a file through the cache: :meth:`encode` returns what
    ``scorer.encoder.encode(scorer.renderer.render(prompt, response), where)`` gives for each part of a record,
    from the entry when one exists, else encoding now; :meth:`save` then writes the entry."""

    def __init__(self, input_path: str, on_invalid: str, renderer, encoder, data: DataConfig | None = None,
                 records: tuple[int, int | None] = (0, None)):
        """``data``: the command's ``--data.*`` settings: ``cache`` / ``cache_dir`` say whether and where, and
        ``format`` / ``fields`` (which texts a record's parts are) and ``records`` (a shard's rows) are keyed, so
        an entry is never served for other parts or other rows."""
        data = data if data is not None else DataConfig()
        self.renderer, self.encoder, self.cache, self.max_gb = renderer, encoder, data.cache, data.cache_max_gb
        keyed = replace(data, on_invalid=on_invalid)  # type: ignore[arg-type]
        split = SplitConfig(path=input_path, start=records[0], stop=records[1])
        self.entry_source = input_path
        from .hf_datasets import hub_repo

        # a Hub dataset is read by `score` at whatever commit its branch has when read, which a key resolved
        # here could not promise to match: not cached (training and `eval` pin the commit, see load_tokenized)
        hub = hub_repo(input_path) is not None
        self.key = "" if hub else cache_key(split, keyed, {"task": "score"}, renderer, encoder) or ""
        self.cache = self.cache and bool(self.key)
        if hub and data.cache:
            log.info("%s: scored sequences of a Hub dataset are not cached", input_path)
        self.entry = cache_root(data) / (self.key or "uncached")
        self.hit: dict[str, list] | None = None
        self.new: list = []
        self.before = dict(encoder.stats.counts)  # the scorer may have encoded before: save this file's counts only
        if self.cache and (self.entry / "meta.json").is_file():
            try:
                ts = TokenizedSet(self.entry, json.loads((self.entry / "meta.json").read_text()))
                self.hit = {it.where: it.seqs for it in ts}
                encoder.stats.counts.update(ts.truncation)
            except (OSError, ValueError, KeyError) as e:
                log.warning("%s: unreadable cache entry (%s); tokenizing again", self.entry, e)
                self.hit = None

    def encode(self, where: str, parts: list[tuple[str, object, object]]) -> list[tuple[str, object]]:
        from .tokenize import Dropped

        if self.hit is not None:
            seqs = self.hit.get(where)
            if seqs is None:  # encoded nowhere: the over-length policy dropped it when the entry was built
                raise Dropped(where)
            return [(name, s) for (name, _, _), s in zip(parts, seqs, strict=True)]
        out = [(name, self.encoder.encode(self.renderer.render(p, r), where)) for name, p, r in parts]
        self.new.append((where, [s for _, s in out]))
        return out

    def _counts(self) -> dict:
        from .tokenize import TruncationStats

        now = self.encoder.stats.counts
        return TruncationStats(Counter({k: now[k] - self.before.get(k, 0) for k in now})).summary()

    def save(self) -> None:
        if self.hit is not None or not self.cache:
            return
        from ..training.tasks import EncodedRanked

        root = self.entry.parent
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.key}.", dir=root))
        items = [EncodedRanked(seqs, [], where) for where, seqs in self.new]
        try:
            _write_entry(tmp, iter([items[i:i + 4096] for i in range(0, len(items), 4096)]),
                         lambda: {"key": self.key, "source": self.entry_source, "rewardkit": __version__,
                                  "truncation": self._counts()})
            os.replace(tmp, self.entry)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return
        cache_store.touch(self.entry)
        cache_store.evict(root, self.max_gb, keep=self.key)
