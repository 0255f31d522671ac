"""Prometheus text-format metrics (exposition format 0.0.4) for the reward server, without a client library.

Every update happens on the server's event loop thread, so plain counters need no locks.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    n: int = 0

    def __post_init__(self):
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += value
        self.n += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        running = 0
        for le, c in zip(self.buckets, self.counts, strict=True):
            running += c
            lines.append(f'{self.name}_bucket{{le="{_fmt(le)}"}} {running}')
        lines += [f'{self.name}_bucket{{le="+Inf"}} {self.n}', f"{self.name}_sum {_fmt(self.total)}",
                  f"{self.name}_count {self.n}"]
        return lines


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass
class ServerMetrics:
    requests: Counter = field(default_factory=Counter)
    """(endpoint, status code) -> requests answered."""
    items: int = 0
    batches: int = 0
    max_batch_size: int = 0
    batch_size: Histogram = field(default_factory=lambda: Histogram(
        "rewardkit_batch_size", "Sequences per model forward (dynamic batching merges concurrent requests).",
        (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)))
    batch_tokens: Histogram = field(default_factory=lambda: Histogram(
        "rewardkit_batch_tokens", "Token positions computed (rows x row length, padding included) per model forward.",
        (64, 256, 1024, 4096, 16384, 65536)))
    latency: Histogram = field(default_factory=lambda: Histogram(
        "rewardkit_request_latency_seconds", "Time from request arrival to response, scoring endpoints.",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)))
    queue_depth: int = 0

    def observe_batch(self, size: int, padded_tokens: int) -> None:
        self.batches += 1
        self.max_batch_size = max(self.max_batch_size, size)
        self.batch_size.observe(size)
        self.batch_tokens.observe(padded_tokens)

    def render(self) -> str:
        lines = ["# HELP rewardkit_requests_total Requests answered, by endpoint and HTTP status.",
                 "# TYPE rewardkit_requests_total counter"]
        for (endpoint, status), n in sorted(self.requests.items()):
            lines.append(f'rewardkit_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
        lines += ["# HELP rewardkit_items_scored_total Sequences scored.", "# TYPE rewardkit_items_scored_total counter",
                  f"rewardkit_items_scored_total {self.items}",
                  "# HELP rewardkit_batches_total Model forwards.", "# TYPE rewardkit_batches_total counter",
                  f"rewardkit_batches_total {self.batches}",
                  "# HELP rewardkit_batch_size_max Largest batch so far.", "# TYPE rewardkit_batch_size_max gauge",
                  f"rewardkit_batch_size_max {self.max_batch_size}",
                  "# HELP rewardkit_queue_depth Sequences waiting for a batch.", "# TYPE rewardkit_queue_depth gauge",
                  f"rewardkit_queue_depth {self.queue_depth}"]
        for h in (self.batch_size, self.batch_tokens, self.latency):
            lines += h.render()
        return "\n".join(lines) + "\n"
