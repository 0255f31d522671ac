"""The reward server bounds the work of one request and of its queue, and times out slow clients.

A real uvicorn server on 127.0.0.1 in a thread (its SIGTERM handler only sets ``should_exit``, which the
shutdown test sets), a tiny random model, plain sockets and urllib clients; every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.serve.scorer import Scorer
from rewardkit.serve.server import ServerConfig, create_app, uvicorn_timeouts

from ..integration.test_server import Running, free_port
from ..unit.test_score_batch import save_rewardkit_model


class Server(Running):
    """Running, with the timeouts `rewardkit serve` gives uvicorn."""

    def __init__(self, scorer, cfg):
        import uvicorn

        self.port = free_port()
        self.app = create_app(scorer, cfg)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    **uvicorn_timeouts(cfg)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def metric(self, path: str, status: int) -> float:
        line = f'rewardkit_requests_total{{endpoint="{path}",status="{status}"}}'
        for row in self.get("/metrics").splitlines():
            if row.startswith(line):
                return float(row.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def scorer(tiny_model_dir, tmp_path_factory):
    return Scorer.from_pretrained(save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk")))


LARGE = [{"prompt": "Summarise.", "response": "word " * 400 + f"end {i}"} for i in range(1000)]  # ~2M characters
SMALL = [{"prompt": "Say hi.", "response": "Hi"}]


def _cfg(**kw) -> ServerConfig:
    base = {"max_items": 2000, "max_body_bytes": 64 * 1024 * 1024, "max_request_chars": 4_000_000,
            "max_queue_chars": 8_000_000, "max_wait_ms": 1.0}
    return ServerConfig(**{**base, **kw})


def _wait_in_flight(server, deadline_s: float = 60) -> None:
    """Until a request is admitted (being tokenized): the large request has really started."""
    admission = server.app.state.service.admission
    deadline = time.monotonic() + deadline_s
    while admission.in_flight == 0:
        assert time.monotonic() < deadline, "the large request never started"
        time.sleep(0.01)


def test_small_request_is_not_stuck_behind_a_large_one_being_tokenized(scorer):
    with Server(scorer, _cfg()) as server, ThreadPoolExecutor(2) as pool:
        def timed(items):
            t0 = time.perf_counter()
            status, body = server.post("/score", items, token=None)
            return status, body, t0, time.perf_counter()

        large = pool.submit(timed, LARGE)
        _wait_in_flight(server)
        time.sleep(0.2)  # well inside the large request's tokenization (seconds)
        status, body, s0, s1 = timed(SMALL)
        l_status, l_body, l0, l1 = large.result(timeout=300)
    assert status == 200 and len(body["rewards"]) == 1
    assert l_status == 200 and len(l_body["rewards"]) == len(LARGE)
    small, whole = s1 - s0, l1 - l0
    # before: the small request waited for the whole large request's tokenization (~90% of its time)
    assert s1 < l1 and small < whole / 3, (small, whole)


def test_request_over_the_character_bound_is_422_before_tokenizing(scorer):
    with Server(scorer, _cfg(max_request_chars=100_000)) as server:
        t0 = time.perf_counter()
        status, body = server.post("/score", LARGE, token=None)
        assert status == 422 and time.perf_counter() - t0 < 10
        (err,) = body["detail"]
        assert err["type"] == "too_long" and err["loc"] == ["body"] and "limit of 100000 per request" in err["msg"]
        q_status, _ = server.post("/get_reward", {"query": [r["prompt"] + r["response"] for r in LARGE]}, token=None)
        assert q_status == 422


def test_requests_past_the_queue_bound_get_503_and_retry_after(scorer):
    with Server(scorer, _cfg(max_queue_chars=2_500_000)) as server, ThreadPoolExecutor(1) as pool:
        large = pool.submit(server.post, "/score", LARGE, None)
        _wait_in_flight(server)
        import urllib.error
        import urllib.request

        req = urllib.request.Request(f"http://127.0.0.1:{server.port}/score", data=json.dumps(LARGE).encode())
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=60)
        assert info.value.code == 503 and info.value.headers["Retry-After"] == "1"
        assert "the server is busy" in json.loads(info.value.read())["detail"]
        assert large.result(timeout=300)[0] == 200
        assert server.post("/score", SMALL, token=None)[0] == 200  # admitted again once the queue drained
        assert server.app.state.service.admission.in_flight == 0


def _stalled_body(port: int) -> socket.socket:
    """A client that sends the headers and part of the body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n"
                 b"\r\n[{\"prompt\": ")
    return sock


def test_a_stalled_body_is_answered_408_and_its_socket_closed(scorer):
    with Server(scorer, _cfg(body_timeout_s=1.0)) as server:
        sock = _stalled_body(server.port)
        t0 = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):  # the server answers, then closes (bounded by the socket timeout)
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 408") and b"did not arrive within 1 s" in data
        assert time.monotonic() - t0 < 15


def test_an_idle_keep_alive_connection_is_closed(scorer):
    with Server(scorer, _cfg(keep_alive_s=1.0)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 200") and time.monotonic() - t0 < 15


def test_shutdown_finishes_within_its_deadline_with_a_stalled_client(scorer):
    server = Server(scorer, _cfg(body_timeout_s=120.0, shutdown_timeout_s=1.0))
    server.__enter__()
    sock = _stalled_body(server.port)
    try:
        time.sleep(0.3)  # the request is being read
        t0 = time.monotonic()
        server.server.should_exit = True  # what uvicorn's SIGTERM handler does
        server.thread.join(timeout=30)
        assert not server.thread.is_alive() and time.monotonic() - t0 < 15
    finally:
        sock.close()
        server.server.should_exit = True
        server.thread.join(timeout=30)


def test_client_disconnect_is_not_a_500_or_a_traceback(scorer, caplog):
    with Server(scorer, _cfg()) as server, caplog.at_level(logging.INFO, logger="rewardkit"):
        sock = _stalled_body(server.port)
        time.sleep(0.3)
        sock.close()
        deadline = time.monotonic() + 30
        while server.metric("/score", 499) < 1:
            assert time.monotonic() < deadline, server.get("/metrics")
            time.sleep(0.05)
        assert server.metric("/score", 500) == 0
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "client disconnected" in caplog.text


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: ~10 s quiet, more when loaded
def test_sigterm_stops_rewardkit_serve_within_its_deadline_with_a_stalled_client(scorer, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import urllib.error

    model_dir = tmp_path / "model"
    scorer.model.save_pretrained(model_dir, scorer.tokenizer, scorer.meta)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit", "serve", str(model_dir), "--port", str(port),
                             "--body-timeout", "300", "--shutdown-timeout", "2"], env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sock = None
    try:
        client = Running.__new__(Running)
        client.port = port
        deadline = time.monotonic() + 180
        while True:
            try:
                client.get("/health")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline and proc.poll() is None, "server did not start"
                time.sleep(0.2)
        sock = _stalled_body(port)
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)  # before: it waited for the stalled client forever
        assert time.monotonic() - t0 < 30
    finally:
        if sock is not None:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
