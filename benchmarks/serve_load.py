"""The reward server under load on loopback: many concurrent clients, a bounded number of requests.

Starts ``rewardkit serve`` in a subprocess, sends ``--requests`` POST /score requests (1 to ``--max-items``
items each, mixed lengths: real hh-rlhf prompts with responses cut to random lengths) from ``--clients``
threads with keep-alive connections, and compares with offline batch scoring of the same items in this
process (``Scorer.score_encoded``, the `rewardkit score` path). Prints errors, throughput of both and their
ratio, p50/p99 latency, the largest reward difference, and the server's batch sizes from /metrics.

    python benchmarks/serve_load.py                          # runs/quickstart/model if present
    python benchmarks/serve_load.py --clients 64 --requests 192 --max-items 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from score_vs_transformers import load_records, model_dir  # noqa: E402


def make_requests(n_requests: int, max_items: int, seed: int) -> list[list[dict]]:
    rng = random.Random(seed)
    records = load_records(400)
    out = []
    for _ in range(n_requests):
        items = []
        for _ in range(rng.randint(1, max_items)):
            r = rng.choice(records)
            words = rng.choice([r["chosen"], r["rejected"]]).split(" ")
            cut = rng.randint(min(3, len(words)), len(words))
            items.append({"prompt": r["prompt"], "response": " ".join(words[:cut]) or "ok"})
        out.append(items)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path, port: int, max_wait_ms: float, max_tokens: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit", "serve", str(path), "--port", str(port),
                             "--max-wait-ms", str(max_wait_ms), "--max-tokens", str(max_tokens)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=dict(os.environ, REWARDKIT_API_KEY=""))
    deadline = time.time() + 300
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.2)


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(port: int, requests: list[list[dict]], clients: int):
    results: list = [None] * len(requests)
    next_index = iter(range(len(requests)))
    lock = threading.Lock()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            body = json.dumps(requests[i])
            t = time.perf_counter()
            try:
                conn.request("POST", "/score", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = json.loads(resp.read())
                results[i] = (resp.status, time.perf_counter() - t, data.get("rewards"))
            except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:
                results[i] = (repr(e), time.perf_counter() - t, None)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return results, time.perf_counter() - start


def metric(text: str, name: str) -> float:
    return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=192)
    ap.add_argument("--max-items", type=int, default=4, help="items per request: uniform in 1..max-items")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=4096, help="token budget per model batch (server and offline; the CPU default)")
    args = ap.parse_args()
    import transformers

    from rewardkit.serve.scorer import Scorer, scoring_batches

    transformers.utils.logging.set_verbosity_error()
    requests = make_requests(args.requests, args.max_items, args.seed)
    flat = [it for req in requests for it in req]
    with tempfile.TemporaryDirectory() as t:
        path = model_dir(Path(t))
        scorer = Scorer.from_pretrained(path, max_tokens=args.max_tokens)
        start, cpu = time.perf_counter(), time.process_time()
        seqs = [scorer.encode(it["prompt"], it["response"]) for it in flat]
        offline = scorer.score_encoded(seqs)
        offline_s, offline_cpu = time.perf_counter() - start, time.process_time() - cpu
        offline_slots = sum(b.num_slots for _, b in scoring_batches(
            scorer.model, seqs, scorer.tokenizer.pad_token_id, scorer.max_tokens, scorer.max_batch))
        del scorer
        port = free_port()
        proc = start_server(path, port, args.max_wait_ms, args.max_tokens)
        try:
            cpu_before = process_cpu(proc.pid)
            results, served_s = run_clients(port, requests, args.clients)
            served_cpu = process_cpu(proc.pid) - cpu_before
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    errors = [r for r in results if r[0] != 200]
    latencies = sorted(r[1] for r in results)
    served = [x for r in results if r[0] == 200 for x in r[2]]
    diff = max(abs(a - b) for a, b in zip(served, offline, strict=True)) if not errors else float("nan")
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(f"{len(requests)} requests, {len(flat)} items, {args.clients} concurrent clients, "
          f"max wait {args.max_wait_ms} ms")
    print(f"errors: {len(errors)}" + (f" (first: {errors[0][0]})" if errors else ""))
    print(f"offline batch scoring: {len(flat) / offline_s:8.1f} items/s ({offline_s:.1f} s)")
    print(f"server under load:     {len(flat) / served_s:8.1f} items/s ({served_s:.1f} s); "
          f"ratio {offline_s / served_s:.2f}x of offline")
    print(f"token positions computed (padding included): offline {offline_slots}, server "
          f"{metric(metrics, 'rewardkit_batch_tokens_sum'):.0f}; real tokens {sum(len(q.input_ids) for q in seqs)}")
    print(f"CPU seconds: offline {offline_cpu:.1f}, server process {served_cpu:.1f} (model, HTTP, JSON, tokenizing)")
    print(f"latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; max |server - offline| reward {diff:.2e}")
    print(f"model batches {metric(metrics, 'rewardkit_batches_total'):.0f}, mean batch size "
          f"{metric(metrics, 'rewardkit_batch_size_sum') / metric(metrics, 'rewardkit_batch_size_count'):.1f}, "
          f"largest {metric(metrics, 'rewardkit_batch_size_max'):.0f}")


if __name__ == "__main__":
    main()
