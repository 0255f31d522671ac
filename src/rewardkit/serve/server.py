"""`rewardkit serve`: an ASGI reward server (Starlette on uvicorn) with dynamic batching.

Endpoints
  ``POST /score``       ``[{prompt, response} | {messages}, ...]`` (or ``{"items": [...], "normalize": bool}``)
                        -> ``{"rewards": [...]}`` in request order; the same tokens as ``rewardkit score``.
  ``POST /get_reward``  OpenRLHF's remote reward model protocol: ``{"query": [full texts], "prompts": [...],
                        "labels": ...}`` -> ``{"rewards": [...], "scores": [...], "extra_logs": {...}}``
                        (matched against ``openrlhf/utils/remote_rm_utils.py`` and ``openrlhf/cli/serve_rm.py``).
  ``GET /health``, ``GET /metrics`` (Prometheus text).

A process reward model (``head: step``) answers ``POST /score`` with ``[{prompt, steps: [...]}, ...]`` (or
``{prompt, response}``, the response cut into steps at the model's separator) -> ``{"rewards": [...],
"step_rewards": [[...], ...]}``: the same scores as ``Scorer.score_steps``. Step requests are batched within the
request (by length, on the one model thread), not merged with other requests.

Dynamic batching: requests are validated and tokenized on their own (one tokenizer thread), then their
sequences join a queue. One batching task takes the first waiting sequence, waits at most ``max_wait_ms`` for
more to fill a token budget, takes whatever else is already waiting, forms batches from it all as `rewardkit
score` does (:func:`scoring_batches`: by length; a decoder's responses to one prompt share the prompt's
computation) and runs them one at a time on a single model thread. Requests arriving during a
forward wait in the queue and form the next batch, so under load batches grow by themselves and the wait is
never longer than one forward. An invalid request is answered 422 before it reaches the queue; a failing
forward fails only the requests with sequences in that batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import torch

from ..data.errors import DataError
from ..data.readers import Record
from ..data.text_checks import DuplicateKey, surrogate_error, unique_keys
from ..data.tokenize import Dropped, Encoded
from .adapters import query_settings
from .items import parse_single, rendered_query, split_query
from .limits import Admission, Busy, in_slices, item_chars, text_chars
from .metrics import ServerMetrics
from .scorer import Scorer, scoring_batches

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ServerConfig:
    """Limits and batching of the reward server."""

    max_items: int = 1024
    """Most items (responses) in one request; more is a 422 on `items`/`query`."""
    max_text_chars: int = 100_000
    """Longest prompt or response text, in characters; longer is a 422 naming the field."""
    max_body_bytes: int = 16 * 1024 * 1024
    """Largest request body; larger is a 413."""
    max_tokens: int | None = None
    """Token budget of one model batch (rows x longest row); None: the scorer's
    (:func:`~rewardkit.serve.scorer.default_max_tokens`)."""
    max_batch: int = 64
    """Most sequences in one model batch."""
    max_wait_ms: float = 5.0
    """How long the first waiting sequence may wait for others to fill a batch."""
    api_key: str | None = None
    """When set, `/score` and `/get_reward` need `Authorization: Bearer <api_key>` (401 otherwise)."""
    normalize: bool = False
    """Return normalised rewards by default (the model must have statistics)."""
    max_request_chars: int = 2_000_000
    """Most characters of text in one request, all items together; more is a 422 (serve/limits.py)."""
    max_queue_chars: int = 8_000_000
    """Most characters of all requests admitted and not yet answered; one more is a 503 with Retry-After."""
    tokenize_slice_chars: int = 100_000
    """A request is tokenized in slices of about this many characters, one at a time, so a small request waits
    for one slice of a large one, not for all of it."""
    body_timeout_s: float = 30.0
    """The whole body must arrive within this many seconds (408 after): a stalled client frees its socket."""
    keep_alive_s: float = 5.0
    """Close an idle keep-alive connection after this many seconds."""
    shutdown_timeout_s: float = 30.0
    """On SIGTERM, wait at most this long for requests in flight, then close the remaining connections."""

    engine: Literal["rewardkit", "vllm"] = "rewardkit"
    """Who runs the forward: rewardkit's batcher, or a vLLM engine on ``model_dir`` (an export;
    :mod:`rewardkit.serve.vllm_engine`). Tokenization, validation and the protocol are rewardkit's either way."""
    model_dir: str | None = None
    """The exported directory vLLM loads (``engine="vllm"``)."""
    engine_kwargs: dict = field(default_factory=dict)
    """Extra vLLM ``AsyncEngineArgs`` (``engine="vllm"``), e.g. ``{"dtype": "float32", "enforce_eager": True}``."""

    def __post_init__(self):
        if self.engine not in ("rewardkit", "vllm"):
            raise ValueError(f"engine {self.engine!r}: choose rewardkit or vllm")
        if self.engine == "vllm" and not self.model_dir:
            raise ValueError("engine 'vllm' needs model_dir, the exported directory vLLM loads")
        for name in ("max_items", "max_text_chars", "max_body_bytes", "max_tokens", "max_batch", "max_request_chars",
                     "max_queue_chars", "tokenize_slice_chars"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must be >= 0")
        for name in ("body_timeout_s", "keep_alive_s", "shutdown_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


class HTTPError(Exception):
    def __init__(self, status: int, detail: object):
        self.status = status
        self.detail = detail


def _invalid(loc: list, msg: str, kind: str = "value_error") -> HTTPError:
    """A 422 shaped like FastAPI's: ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``."""
    return HTTPError(422, [{"loc": ["body", *loc], "msg": msg, "type": kind}])


@dataclass
class _Job:
    results: list
    remaining: int
    future: asyncio.Future


@dataclass
class Batcher:
    """Merges the sequences of concurrent requests into model batches (see the module docstring)."""

    scorer: Scorer
    cfg: ServerConfig
    metrics: ServerMetrics
    _waiting: deque = field(default_factory=deque)
    _tokens_waiting: int = 0
    _more: asyncio.Event | None = None
    _task: asyncio.Task | None = None
    _model_thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        self._more = asyncio.Event()
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="rewardkit-model")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._model_thread is not None:
            self._model_thread.shutdown(wait=True)

    async def score(self, seqs: list[Encoded]) -> list[float]:
        """Rewards for ``seqs`` in order, computed in batches shared with other requests."""
        if not seqs:
            return []
        job = _Job([None] * len(seqs), len(seqs), asyncio.get_running_loop().create_future())
        for i, s in enumerate(seqs):
            self._waiting.append((job, i, s))
            self._tokens_waiting += len(s.input_ids)
        self.metrics.queue_depth = len(self._waiting)
        self._more.set()
        return await job.future

    def _take(self, limit_tokens: int) -> list:
        taken, tokens = [], 0
        while self._waiting and (not taken or tokens + len(self._waiting[0][2].input_ids) <= limit_tokens):
            item = self._waiting.popleft()
            n = len(item[2].input_ids)
            self._tokens_waiting -= n
            tokens += n
            taken.append(item)
        self.metrics.queue_depth = len(self._waiting)
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._waiting:
                self._more.clear()
                await self._more.wait()
            deadline = loop.time() + self.cfg.max_wait_ms / 1000
            while self._tokens_waiting < self.cfg.max_tokens and len(self._waiting) < self.cfg.max_batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._more.clear()
                try:
                    await asyncio.wait_for(self._more.wait(), left)
                except TimeoutError:
                    break
            # whatever is waiting now, up to a few batches' worth, is sorted by length together
            pending = self._take(4 * self.cfg.max_tokens)
            s = self.scorer
            for idx, batch in scoring_batches(s.model, [q for _, _, q in pending], s.tokenizer.pad_token_id,
                                              self.cfg.max_tokens, self.cfg.max_batch, s.share_prompts):
                await self._forward([pending[i] for i in idx], batch, loop)

    async def _forward(self, items: list, batch, loop: asyncio.AbstractEventLoop) -> None:
        try:
            rewards = await loop.run_in_executor(self._model_thread, self._model_forward, batch)
        except Exception as e:  # only the requests in this batch fail
            log.exception("model forward failed for a batch of %d", len(items))
            for job, _, _ in items:
                if not job.future.done():
                    job.future.set_exception(e)
            return
        self.metrics.observe_batch(len(items), batch.num_slots)
        self.metrics.items += len(items)
        for (job, i, _), r in zip(items, rewards, strict=True):
            job.results[i] = r
            job.remaining -= 1
            if job.remaining == 0 and not job.future.done():
                job.future.set_result(job.results)

    @torch.no_grad()
    def _model_forward(self, batch) -> list[float]:
        # the batch exactly as `rewardkit score` forms it (scorer.scoring_batches): the same scores
        s = self.scorer
        if s.is_ensemble:  # the K head rewards of each sequence: the request picks the aggregate
            return s.model(batch.to(s.device), full=True).logits.float().tolist()
        return s.model(batch.to(s.device)).tolist()


class RewardService:
    """Request validation, tokenization and the endpoints; the ASGI app is built by :func:`create_app`."""

    def __init__(self, scorer: Scorer, cfg: ServerConfig):
        self.scorer = scorer
        if cfg.max_tokens is None:
            cfg = dataclasses.replace(cfg, max_tokens=scorer.max_tokens)
        self.cfg = cfg
        self.metrics = ServerMetrics()
        if cfg.engine == "vllm":
            from .vllm_engine import VllmBatcher

            self.batcher = VllmBatcher(scorer, cfg.model_dir, self.metrics, dict(cfg.engine_kwargs))
        else:
            self.batcher = Batcher(scorer, cfg, self.metrics)
        # one tokenizer thread: keeps tokenization off the event loop and out of the model thread's way
        self._tok_thread = ThreadPoolExecutor(1, thread_name_prefix="rewardkit-tokenize")
        self._chat_queries, self._pad_text = query_settings(scorer)
        self.admission = Admission(cfg.max_queue_chars)
        if cfg.normalize and not scorer.meta.normalization:
            scorer.normalize([])  # raises the explanatory error at start-up

    # -- validation -------------------------------------------------------------------------------------------
    def _check_len(self, value: object, loc: list) -> None:
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, list):
            texts = [m.get("content") for m in value if isinstance(m, dict)]
        else:
            texts = []
        for t in texts:
            if isinstance(t, str) and len(t) > self.cfg.max_text_chars:
                raise _invalid(loc, f"text of {len(t)} characters is longer than the limit of "
                               f"{self.cfg.max_text_chars}", "too_long")

    def _item_list(self, body: object, key: str) -> list:
        items = body.get(key) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise _invalid([key], "expected a list", "type_error")
        if len(items) > self.cfg.max_items:
            raise _invalid([key], f"{len(items)} items is more than the limit of {self.cfg.max_items} per "
                           "request", "too_many_items")
        return items

    def _bounded(self, body: object):
        """Admit a request under the per-request and queue character bounds (serve/limits.py)."""
        chars = text_chars(body)
        if chars > self.cfg.max_request_chars:
            raise _invalid([], f"the request holds {chars} characters of text, more than the limit of "
                           f"{self.cfg.max_request_chars} per request; split it", "too_long")
        return self.admission.admit(chars)

    def _encode_score_items(self, items: list, offset: int = 0) -> list[Encoded | None]:
        out = []
        for i, data in enumerate(items, start=offset):
            if not isinstance(data, dict):
                raise _invalid(["items", i], f"expected an object, got {type(data).__name__}", "type_error")
            for name in ("prompt", "response", "messages"):
                if name in data:
                    self._check_len(data[name], ["items", i, name])
            try:
                item = parse_single(Record(data, "request", i))
                out.append(self.scorer.encode(item.prompt, item.response))
            except DataError as err:
                raise _invalid(["items", i, *(err.field.split(".") if err.field else [])], err.message,
                               err.reason) from None
            except Dropped:
                out.append(None)  # over-long under the `drop` policy: a null reward
        return out

    def _query_lists(self, body: object) -> tuple[list, list | None]:
        queries = self._item_list(body, "query")
        prompts = body.get("prompts") if isinstance(body, dict) else None
        if prompts is not None and (not isinstance(prompts, list) or len(prompts) != len(queries)):
            raise _invalid(["prompts"], "expected a list as long as 'query' (or null)", "type_error")
        return queries, prompts

    def _encode_queries(self, body: object, start: int = 0, stop: int | None = None) -> tuple[list, list[float]]:
        queries, prompts = self._query_lists(body)
        out, matched = [], []
        for i in range(start, len(queries) if stop is None else stop):
            q = queries[i]
            if not isinstance(q, str) or not q.strip():
                raise _invalid(["query", i], "expected non-empty text", "type_error")
            self._check_len(q, ["query", i])
            p = prompts[i] if prompts is not None else None
            if p is not None and not isinstance(p, str):
                raise _invalid(["prompts", i], "expected text", "type_error")
            split = split_query(q, p, self._pad_text)
            matched.append(1.0 if split.how == "prompt" else 0.0)
            try:
                out.append(self.scorer.encoder.encode(rendered_query(split, self._chat_queries)))
            except DataError as err:
                raise _invalid(["query", i], err.message, err.reason) from None
            except Dropped:
                out.append(None)
        return out, matched

    async def _rewards(self, seqs: list[Encoded | None], normalize: bool) -> list[float | None]:
        return (await self._scored(seqs, normalize, None))[0]

    async def _scored(self, seqs: list[Encoded | None], normalize: bool,
                      body: object) -> tuple[list[float | None], dict | None]:
        """(rewards, for an ensemble its ``reward_mean`` / ``reward_std`` / ``rewards_k`` lists, else None)."""
        present = [s for s in seqs if s is not None]
        out = await self.batcher.score(present)
        details = None
        if self.scorer.is_ensemble:
            rows = ensemble_rows(out, *self._ensemble_request(body))
            out = [r["reward"] for r in rows]
            it = iter(rows)
            per_seq = [next(it) if s is not None else None for s in seqs]
            details = {k: [r[k] if r is not None else None for r in per_seq]
                       for k in ("reward_mean", "reward_std", "rewards_k")}
        scored = iter(out)
        rewards = [next(scored) if s is not None else None for s in seqs]
        if normalize:
            norm = self.scorer.meta.normalization
            rewards = [(r - norm["mean"]) / norm["std"] if r is not None else None for r in rewards]
        return rewards, details

    def _ensemble_request(self, body: object) -> tuple[str, float]:
        """The request's ``aggregate`` / ``beta`` (ensemble models), else the scorer's or the stored ones."""
        from ..models.ensemble import AGGREGATES

        spec, s = self.scorer.model.spec, self.scorer
        how = (body.get("aggregate") if isinstance(body, dict) else None) or s.aggregate or spec.ensemble_aggregate
        beta = body.get("beta") if isinstance(body, dict) and body.get("beta") is not None else \
            (s.beta if s.beta is not None else spec.ensemble_beta)
        if how not in AGGREGATES:
            raise _invalid(["aggregate"], f"expected one of {', '.join(AGGREGATES)}", "value_error")
        if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta) or beta < 0:
            raise _invalid(["beta"], "expected a finite number >= 0", "value_error")
        return how, float(beta)

    def _check_ensemble_keys(self, body: object) -> None:
        """Before any work: a bad ``aggregate`` / ``beta``, or either one for a model that is no ensemble, is 422."""
        if self.scorer.is_ensemble:
            self._ensemble_request(body)
        elif isinstance(body, dict):
            for key in ("aggregate", "beta"):
                if body.get(key) is not None:
                    raise _invalid([key], "this model is not an ensemble (model.head ensemble)", "value_error")

    # -- endpoints (body already read and parsed) -----------------------------------------------------------
    def _check_single_reward(self) -> None:
        if self.scorer.is_pairwise_judge:  # it compares two responses: POST /compare (serve/compare.py)
            from ..data.judge_encode import PAIRWISE_ONLY

            raise _invalid([], PAIRWISE_ONLY, "value_error")

    async def compare(self, body: object) -> dict:
        from .compare import compare_request

        return await compare_request(self, body)

    async def score(self, body: object) -> dict:
        self._check_single_reward()
        items = self._item_list(body, "items")
        normalize = body.get("normalize", self.cfg.normalize) if isinstance(body, dict) else self.cfg.normalize
        if not isinstance(normalize, bool):
            raise _invalid(["normalize"], "expected true or false", "type_error")
        if normalize and not self.scorer.meta.normalization:
            raise _invalid(["normalize"], "this model has no normalisation statistics", "value_error")
        self._check_ensemble_keys(body)
        with self._bounded(body):
            if self.scorer.meta.head == "step":  # a process reward model: step_rewards per item
                from .step_scorer import score_step_request

                return await score_step_request(self, items, asyncio.get_running_loop())
            seqs = await in_slices(self._tok_thread, lambda a, b: self._encode_score_items(items[a:b], a),
                                   item_chars(items), self.cfg.tokenize_slice_chars)
            rewards, details = await self._scored(seqs, normalize, body)
        return {"rewards": rewards, **(details or {})}

    async def get_reward(self, body: object) -> dict:
        if not isinstance(body, dict):
            raise _invalid([], "expected an object with 'query' (and 'prompts', 'labels')", "type_error")
        self._check_single_reward()
        queries, prompts = self._query_lists(body)
        self._check_ensemble_keys(body)
        with self._bounded(body):
            pairs = await in_slices(self._tok_thread, lambda a, b: list(zip(*self._encode_queries(body, a, b),
                                                                            strict=True)),
                                    [max(1, text_chars(q) + text_chars(p)) for q, p in
                                     zip(queries, prompts or [None] * len(queries), strict=True)],
                                    self.cfg.tokenize_slice_chars)
            seqs, matched = [s for s, _ in pairs], [m for _, m in pairs]
            rewards, details = await self._scored(seqs, self.cfg.normalize, body)
        logs = {"query_split_on_prompt": matched}
        if details is not None:  # OpenRLHF logs each extra_logs list's mean: the ensemble's spread per step
            logs.update(reward_mean=details["reward_mean"], reward_std=details["reward_std"])
            return {"rewards": rewards, "scores": rewards, "rewards_k": details["rewards_k"], "extra_logs": logs}
        return {"rewards": rewards, "scores": rewards, "extra_logs": logs}

    def health(self) -> dict:
        m = self.scorer.meta
        return {"status": "ok", "kind": m.kind, "base_model": m.base_model, "max_length": m.max_length,
                "normalization": bool(m.normalization)}


def ensemble_rows(k_rewards: list[list[float]], how: str, beta: float) -> list[dict]:
    """:func:`~rewardkit.models.ensemble.uncertainty_columns` for the batcher's per-sequence K rewards."""
    from ..models.ensemble import uncertainty_columns

    return uncertainty_columns(torch.tensor(k_rewards, dtype=torch.float32), how, beta) if k_rewards else []


async def _read_json(request, limit: int, timeout_s: float = 30.0) -> object:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HTTPError(413, f"request body of {length} bytes is larger than the limit of {limit}")
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):  # a client that stalls mid-body does not hold its socket forever
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPError(413, f"request body is larger than the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPError(408, f"the request body did not arrive within {timeout_s:g} s") from None
    try:
        body = json.loads(b"".join(chunks), object_pairs_hook=unique_keys)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _invalid([], f"invalid JSON: {e}", "json_invalid") from None
    except DuplicateKey as e:
        raise _invalid([], f"{e}: remove the repeated key (JSON keeps only its last value)", "duplicate_key") from None
    bad = surrogate_error(body, "request", None)  # a lone "\ud800" would crash the tokenizer: a 422 instead
    if bad is not None:
        loc = [int(p) if p.isdigit() else p for p in (bad.field or "").replace("[", ".").replace("]", "").split(".")
               if p]
        raise _invalid(loc, bad.message, bad.reason)
    return body


def create_app(scorer: Scorer, cfg: ServerConfig | None = None):
    """The Starlette application serving ``scorer``."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.requests import ClientDisconnect
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    cfg = cfg or ServerConfig()
    service = RewardService(scorer, cfg)

    def authorized(request) -> bool:
        if not cfg.api_key:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), cfg.api_key.encode())

    def scoring(path: str, handler: Callable[[object], Awaitable[dict]]):
        async def endpoint(request):
            start = time.perf_counter()
            try:
                if not authorized(request):
                    raise HTTPError(401, "missing or wrong bearer token")
                body = await _read_json(request, cfg.max_body_bytes, cfg.body_timeout_s)
                response = JSONResponse(await handler(body))
            except HTTPError as e:
                headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
                response = JSONResponse({"detail": e.detail}, status_code=e.status, headers=headers)
            except Busy as e:
                response = JSONResponse({"detail": str(e)}, status_code=503, headers={"Retry-After": "1"})
            except ClientDisconnect:  # not a server error: no traceback, counted apart (nginx's 499)
                log.info("%s: the client disconnected before sending the whole request", path)
                response = JSONResponse({"detail": "client disconnected"}, status_code=499)
            except Exception:
                log.exception("%s failed", path)
                response = JSONResponse({"detail": "internal error; see the server log"}, status_code=500)
            service.metrics.requests[(path, response.status_code)] += 1
            if response.status_code == 200:
                service.metrics.latency.observe(time.perf_counter() - start)
            return response

        return Route(path, endpoint, methods=["POST"])

    async def health(request):
        service.metrics.requests[("/health", 200)] += 1
        return JSONResponse(dict(service.health(), engine=cfg.engine))

    async def metrics(request):
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @asynccontextmanager
    async def lifespan(app):
        service.batcher.start()
        yield
        await service.batcher.stop()

    app = Starlette(routes=[scoring("/score", service.score), scoring("/get_reward", service.get_reward),
                            scoring("/compare", service.compare),
                            Route("/health", health), Route("/metrics", metrics)], lifespan=lifespan)
    app.state.service = service
    return app


def serve(scorer: Scorer, host: str = "127.0.0.1", port: int = 8000, cfg: ServerConfig | None = None,
          log_level: str = "info") -> None:
    """Run the server until interrupted."""
    import uvicorn

    cfg = cfg or ServerConfig()
    uvicorn.run(create_app(scorer, cfg), host=host, port=port, log_level=log_level, **uvicorn_timeouts(cfg))


def uvicorn_timeouts(cfg: ServerConfig) -> dict:
    """uvicorn's idle keep-alive timeout and graceful-shutdown deadline from ``cfg``."""
    return {"timeout_keep_alive": cfg.keep_alive_s, "timeout_graceful_shutdown": cfg.shutdown_timeout_s}
