"""The options of `rewardkit eval`, `score`, `serve` and `fit-weights` as dataclasses: one field per flag, its
docstring the flag's ``--help`` (read from the source by :func:`rewardkit.config_docs.field_docs`, as `train
--help` reads the config's). Adding a flag is adding a field; the command reads it as ``args.NAME``.

How a field becomes an argument (:func:`add_options`):

* ``positional()`` fields are positional arguments, in declaration order;
* every other field is ``--name-with-dashes`` (``flag=`` renames it, ``short=`` adds e.g. ``-o``); no default:
  a required option;
* the options of several classes can make one command (``score`` and ``serve`` share
  :class:`ScoringOptions`);
* ``bool`` defaulting to False is a switch (``--json``); defaulting to True, ``--no-NAME`` turns it off;
* ``Literal[...]`` (or ``Literal[...] | None``) gives the choices; ``int`` / ``float`` the type.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Literal

from .config import Adapter, DataFormat
from .config_docs import field_docs


def positional(metavar: str | None = None):
    """A positional argument (no default)."""
    return field(metadata={"positional": True, "metavar": metavar})


def option(default=None, *, flag: str | None = None, short: str | None = None, metavar: str | None = None,
           required: bool = False):
    """An option; ``required``: no default, the command cannot run without it."""
    meta = {"flag": flag, "short": short, "metavar": metavar}
    if required:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def _plain(tp) -> tuple[type | None, tuple | None]:
    """(argparse type, choices) of a field's annotation; ``X | None`` is read as ``X``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        tp = args[0] if len(args) == 1 else str
    if typing.get_origin(tp) is Literal:
        return None, typing.get_args(tp)
    return (tp if tp in (int, float) else None), None


def add_options(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """One argument per field of the dataclass ``cls`` (see the module docstring); returns ``parser``."""
    hints, docs = typing.get_type_hints(cls), field_docs(cls)
    for f in dataclasses.fields(cls):
        meta = f.metadata
        doc = (docs.get(f.name) or "").replace("%", "%%") or None  # argparse %-formats help
        if meta.get("positional"):
            parser.add_argument(f.name, help=doc, metavar=meta.get("metavar"))
            continue
        has_default = f.default is not dataclasses.MISSING
        names = [meta.get("flag") or "--" + f.name.replace("_", "-")]
        if meta.get("short"):
            names.insert(0, meta["short"])
        if hints[f.name] is bool:
            if f.default:  # on by default: the flag turns it off
                names = [meta.get("flag") or "--no-" + f.name.replace("_", "-")]
            parser.add_argument(*names, dest=f.name, action="store_false" if f.default else "store_true", help=doc)
            continue
        kind, choices = _plain(hints[f.name])
        kwargs = {"default": f.default} if has_default else {"required": True}
        parser.add_argument(*names, dest=f.name, type=kind, choices=choices, metavar=meta.get("metavar"),
                            help=doc, **kwargs)
    return parser


def add_command(sub, name: str, func, *classes: type, **defaults) -> argparse.ArgumentParser:
    """The subcommand ``name`` running ``func(args, overrides)`` with the options of ``classes``, in order: the
    first class's docstring gives the command's one-line help (its first line) and description (the rest)."""
    summary, _, rest = (classes[0].__doc__ or "").strip().partition("\n")
    p = sub.add_parser(name, help=summary.strip(), description=" ".join(rest.split()) or None)
    for cls in classes:
        add_options(p, cls)
    p.set_defaults(func=func, **defaults)
    return p


@dataclass(kw_only=True)
class ScoringOptions:
    """Options shared by `score` and `serve`: both batch through the same Scorer."""

    device: str = "cpu"
    """Where the model runs (cpu, cuda, cuda:1 ...)."""
    max_tokens: int | None = option(None)
    """Token budget per batch (rows x longest row); default 4096 on CPU, 16384 on GPU."""
    max_batch: int = 64
    """Most sequences per batch."""
    aggregate: Literal["mean", "min", "mean_minus_std"] | None = None
    """Ensemble models: which aggregate of the K head rewards is the reward (default: the one stored with the
    model)."""
    beta: float | None = None
    """Ensemble models, mean_minus_std: mean - beta * std (default: the stored ensemble_beta)."""
    share_prompts: bool = True
    """Decoders: score every text in its own padded row instead of computing a prompt once for all its responses
    (the scores are the same; for comparison)."""


@dataclass(kw_only=True)
class EvalOptions:
    """evaluate a saved model: pairs, binary labels, scalar ratings, ranked lists"""

    model: str = positional()
    """Model directory or training run directory, or any transformers *ForSequenceClassification reward model (a
    directory or a hub id), read as transformers reads it."""
    data: str = positional()
    """Data file (pairs get the full report with figures); data overrides as in train: --data.format ab
    --data.winner.a 1 ..."""
    start: int = 0
    """First record of DATA to use."""
    stop: int | None = None
    """One past the last record of DATA to use (default: to the end)."""
    on_invalid: Literal["error", "skip"] = "error"
    """An invalid record: stop with its file, line and field (error), or count it and go on (skip)."""
    json: bool = False
    """Print the metrics as one JSON object."""
    format: DataFormat = "auto"
    """What a record holds (auto: detected from the first record); multi: per-attribute metrics of a
    multi-attribute model."""
    adapter: Adapter | None = None
    """Read a public data set in its own layout (e.g. usr with --format multi)."""
    report: str | None = option(None, metavar="DIR")
    """Write report.html (figures embedded), the PNGs and metrics.json to DIR."""
    by: str | None = option(None, metavar="COLUMN")
    """Also break the metrics down by this record column (e.g. subset)."""
    fit_normalization: bool = False
    """Fit reward mean/std on this data and store them in the model's rewardkit.json."""
    bootstrap: int = option(1000, metavar="N")
    """Bootstrap resamples for the confidence intervals (0: none)."""
    seed: int = 0
    """Seed of the bootstrap."""
    worst: int = 20
    """Worst-scored pairs listed in the report."""
    suite: Literal["rewardbench", "rewardbench2", "rm-bench"] | None = None
    """Score DATA (the benchmark's own files, or its hub id when online) by the benchmark's official rules
    (docs/benchmarks.md); MODEL may be any transformers *ForSequenceClassification."""
    baseline: str | None = option(None, metavar="MODEL2")
    """With --suite: also score this model and compare section by section."""


@dataclass(kw_only=True)
class FitWeightsOptions:
    """fit a multi-attribute model's learned weighting on preference pairs
    Stage 2 of `model.weighting: learned` (as ArmoRM): fit the K attribute weights on preference pairs with the
    attribute outputs frozen, and save them into the model."""

    model: str = positional()
    """Model directory or training run directory (head multi, weighting learned)."""
    data: str = positional()
    """Preference pairs, or scalar ratings with --to-pairs."""
    start: int = 0
    """First record of DATA to fit on."""
    stop: int | None = None
    """One past the last record of DATA to fit on (default: to the end)."""
    adapter: Adapter | None = None
    """Read a public data set in its own layout."""
    format: DataFormat = "auto"
    """What a record holds (auto: detected from the first record)."""
    to_pairs: Literal["off", "same_annotator", "pooled"] = "off"
    """Scalar ratings -> pairs (as data.ratings.to_pairs)."""
    eval_start: int | None = None
    """Held-out records of the same file: first."""
    eval_stop: int | None = None
    """Held-out records of the same file: one past last."""
    steps: int = 300
    """Optimizer steps of the fit."""
    lr: float = 0.05
    """Learning rate of the fit."""
    dry_run: bool = False
    """Report the fit without saving it."""
    json: bool = False
    """Print the result as one JSON object."""


@dataclass(kw_only=True)
class ScoreOptions:
    """add rewards to every record of a file
    Score {prompt, response} / {messages} records (-> reward) or pairs (-> reward_chosen, reward_rejected); the
    output keeps the input's order and format."""

    model: str = positional()
    """Model directory or training run directory."""
    input: str = positional()
    """jsonl/json/csv/parquet file (optionally .gz) or builtin:NAME."""
    output: str = option(short="-o", required=True)
    """Output file; its extension sets the format."""
    on_invalid: Literal["error", "skip"] = "error"
    """skip: keep invalid records with null rewards and count them."""
    overwrite: bool = False
    """Replace an existing output file (never the input)."""
    num_processes: int | None = option(None, metavar="N")
    """Data-parallel: N local processes each score a contiguous shard (written atomically to OUTPUT.shards/),
    merged in input order; under `accelerate launch` each launched process is one."""
    resume: bool = False
    """With --num-processes / accelerate launch: keep the complete shards of the same job and score only the
    missing ones."""
    block_records: int = option(8192, metavar="N")
    """Records scored together (sorted by length into batches); shards are whole blocks, so any --num-processes
    writes the same bytes as one process."""
    normalize: bool = False
    """Apply the model's stored mean/std."""


@dataclass(kw_only=True)
class ServeOptions:
    """serve a model over HTTP (/score, /get_reward, /health, /metrics)"""

    model: str = positional()
    """Model directory or training run directory."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8000
    """Port to listen on."""
    max_wait_ms: float = 5.0
    """Longest wait for a batch to fill."""
    max_items: int = 1024
    """Most items per request (422 above)."""
    max_text_chars: int = 100_000
    """Longest text per field (422 above)."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest body (413 above)."""
    max_request_chars: int = 2_000_000
    """Most text characters in one request, all items together (422 above)."""
    max_queue_chars: int = 8_000_000
    """Most text characters of all requests in flight (503 with Retry-After above)."""
    body_timeout: float = 30.0
    """Seconds for the whole body to arrive (408)."""
    keep_alive: float = 5.0
    """Seconds an idle connection stays open."""
    shutdown_timeout: float = 30.0
    """On SIGTERM, seconds to finish requests in flight before closing connections."""
    api_key_env: str = "REWARDKIT_API_KEY"
    """Environment variable holding the bearer token; unset: no authentication."""
    engine: Literal["rewardkit", "vllm"] = "rewardkit"
    """Who runs the forward: rewardkit's dynamic batcher, or vLLM on an exported directory (`rewardkit export`;
    for GPU deployments); the HTTP protocol is the same."""
    engine_args: str = option("{}", metavar="JSON")
    """--engine vllm: extra vLLM AsyncEngineArgs as JSON, e.g. '{"gpu_memory_utilization": 0.5}'."""
    normalize: bool = False
    """Return normalised rewards by default."""


@dataclass(kw_only=True)
class InspectOptions:
    """detected format, counts, lengths and the first invalid records"""

    file: str = positional()
    """Data file (.jsonl, .json, .csv, .parquet, optionally .gz), builtin:NAME, or a `datasets` source
    (hf://datasets/OWNER/NAME, a save_to_disk directory or a directory in the Hub's layout)."""
    split: str | None = None
    """A `datasets` source: the split to read (null: its only split)."""
    subset: str | None = None
    """A `datasets` source in the Hub's layout: its subset (config name)."""
    data_dir: str | None = None
    """A `datasets` source in the Hub's layout: only the data files under this folder."""
    revision: str | None = None
    """A Hub dataset: a branch, tag or commit."""
    format: DataFormat = "auto"
    """What a record holds (auto: detected from the first record)."""
    adapter: Adapter | None = None
    """Read a public data set in its own layout."""
    tokenizer: str | None = None
    """Tokenizer to count tokens (a built-in model name, a directory or a hub id); else lengths are in
    characters."""
    max_errors: int = 5
    """How many skipped records to show."""
    json: bool = False
    """Print the result as one JSON object."""
