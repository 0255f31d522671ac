"""`rewardkit serve --engine vllm`: the server's forward done by a vLLM engine instead of rewardkit's batcher.

The HTTP protocol, validation, authentication, limits, `/health` and `/metrics` stay rewardkit's
(:mod:`rewardkit.serve.server`); only :class:`VllmBatcher` replaces :class:`~rewardkit.serve.server.Batcher`, and
the server holds a :class:`~rewardkit.serve.front_end.FrontEnd` (tokenizer, rendering, manifest) instead of a
Scorer: vLLM has the only copy of the weights.
Requests are still tokenized by rewardkit (the same tokens as ``rewardkit score``) and sent to vLLM as token ids,
so vLLM's continuous batching does the forward and its pooler reads the last token (decoders) or [CLS]
(encoders, whose segment ids go along: :func:`segment_kwargs`) through the classifier. The model must be a
``rewardkit export`` directory: its ``config.json`` has ``problem_type: "regression"`` (raw outputs,
:mod:`rewardkit.export.manifest`), which is checked at start-up.

vLLM API used (0.32, ``vllm/v1/engine/async_llm.py``): ``AsyncLLM.from_engine_args(AsyncEngineArgs(model, runner=
"pooling", ...))`` and ``AsyncLLM.encode(TokensPrompt, PoolingParams(task="classify", use_activation=False),
request_id)``, an async generator whose final item's ``outputs.data`` holds the head's outputs.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..data.tokenize import Encoded
from .front_end import FrontEnd
from .metrics import ServerMetrics

log = logging.getLogger(__name__)


def check_vllm_model(model_dir: str | Path) -> None:
    """A clear error before vLLM starts when the directory is not an export vLLM scores like rewardkit."""
    config = Path(model_dir) / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"{config}: missing; --engine vllm serves a `rewardkit export` directory")
    problem = json.loads(config.read_text(encoding="utf-8")).get("problem_type")
    if problem != "regression":
        raise ValueError(f"{config}: problem_type is {problem!r}, not 'regression': vLLM would apply a sigmoid or "
                         "softmax to the reward; re-export it with this rewardkit (`rewardkit export`)")


def engine_args(model_dir: str | Path, max_length: int, dtype: str = "auto", **extra):
    from vllm import AsyncEngineArgs

    # the longest sequence rewardkit's encoder produces is max_length tokens (the score token included)
    return AsyncEngineArgs(model=str(model_dir), runner="pooling", convert="classify", dtype=dtype,
                           max_model_len=max_length, **extra)


@dataclass
class VllmBatcher:
    """The Batcher interface (``start``, ``stop``, ``score``) over a vLLM ``AsyncLLM``."""

    scorer: FrontEnd
    model_dir: str
    metrics: ServerMetrics
    engine_kwargs: dict = field(default_factory=dict)
    _engine: object | None = None
    _ids: itertools.count = field(default_factory=itertools.count)

    def start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        check_vllm_model(self.model_dir)
        args = engine_args(self.model_dir, self.scorer.meta.max_length, **self.engine_kwargs)
        self._engine = AsyncLLM.from_engine_args(args)

    async def stop(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None

    async def _one(self, seq: Encoded) -> list[float]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        params = PoolingParams(task="classify", use_activation=False,  # raw outputs, whatever the config says
                               extra_kwargs=segment_kwargs(seq))
        final = None
        async for out in self._engine.encode(TokensPrompt(prompt_token_ids=list(seq.input_ids)), params,
                                             f"rk-{next(self._ids)}"):
            final = out
        return final.outputs.data.float().tolist()

    async def score(self, seqs: list[Encoded]) -> list[float]:
        """Rewards for ``seqs`` in order; vLLM batches them with every other request in flight."""
        if not seqs:
            return []
        outputs = await asyncio.gather(*(self._one(s) for s in seqs))
        self.metrics.items += len(seqs)
        return [reward_from_outputs(o, self.scorer) for o in outputs]


def segment_kwargs(seq: Encoded) -> dict | None:
    """An encoder's segment ids as vLLM takes them with a token prompt: the index where segment B (the response)
    starts, ``extra_kwargs["compressed_token_type_ids"]`` (what vLLM 0.32's own ``/score`` sends,
    ``entrypoints/pooling/scoring/io_processor.py``; its model runner rebuilds the ids as ``position >= start``).
    Without it BERT reads the response as segment A and scores something else. None: no segment B (decoders, or
    a tokenizer without token types), which is vLLM's default of all zeros."""
    types = seq.token_type_ids
    if types is None or not any(types):
        return None
    start = list(types).index(1) if 1 in types else len(types)
    if any(t != 0 for t in types[:start]) or any(t != 1 for t in types[start:]):
        # vLLM can only express zeros followed by ones; rewardkit's encoder never makes anything else
        raise ValueError(f"token type ids {list(types)} are not zeros followed by ones: vLLM cannot take them")
    return {"compressed_token_type_ids": start}


def reward_from_outputs(outputs: list[float], front: FrontEnd) -> float:
    """The head's raw outputs -> the reward (the card's formula; scalar heads: the one output; multi-attribute
    heads: the manifest's weights)."""
    import torch

    from ..export.exporter import consumer_reward

    return float(consumer_reward(torch.tensor([outputs]), front.meta, front.attribute_weights)[0])
