"""The reward server over real HTTP on loopback: uvicorn in a thread, a tiny random model, urllib clients."""

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from rewardkit.serve.scorer import Scorer, score_sequences
from rewardkit.serve.server import ServerConfig, create_app

from ..unit.test_score_batch import SINGLES, save_rewardkit_model

TOKEN = "s3cret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    def __init__(self, scorer, cfg):
        import uvicorn

        self.port = free_port()
        self.app = create_app(scorer, cfg)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            assert time.time() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def post(self, path, body, token=TOKEN, raw: bytes | None = None):
        data = raw if raw is not None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=60) as r:
            return r.read().decode()


@pytest.fixture(scope="module")
def scorer(tiny_model_dir, tmp_path_factory):
    return Scorer.from_pretrained(save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk")))


@pytest.fixture(scope="module")
def server(scorer):
    # a long batching wait makes the concurrency test deterministic on a loaded machine
    cfg = ServerConfig(api_key=TOKEN, max_items=16, max_text_chars=500, max_body_bytes=4000, max_wait_ms=300)
    with Running(scorer, cfg) as running:
        yield running


def expected(scorer, items):
    from rewardkit.data.readers import Record
    from rewardkit.serve.items import parse_single

    singles = [parse_single(Record(i, "x", 1)) for i in items]
    return scorer.score([s.prompt for s in singles], [s.response for s in singles])


def test_score_endpoint_keeps_order_and_equals_scorer(server, scorer):
    items = [{k: v for k, v in s.items() if k != "id"} for s in SINGLES][::-1]
    status, body = server.post("/score", items)
    assert status == 200
    assert body["rewards"] == pytest.approx(expected(scorer, items), abs=1e-4)
    status, wrapped = server.post("/score", {"items": items})
    assert status == 200 and wrapped["rewards"] == pytest.approx(body["rewards"], abs=1e-4)


def test_get_reward_matches_openrlhf_client_shape(server, scorer):
    """The body OpenRLHF's remote_rm_fn posts, and the key its request_api_wrapper reads (`rewards`)."""
    prompts = ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:"]
    responses = [" Hello! How can I help?", " 4."]
    data = {"query": [p + r for p, r in zip(prompts, responses, strict=True)], "prompts": prompts, "labels": ["", ""]}
    status, body = server.post("/get_reward", data)
    assert status == 200 and "rewards" in body and body["scores"] == body["rewards"]
    assert body["rewards"] == pytest.approx(scorer.score(prompts, responses), abs=1e-4)
    assert body["extra_logs"]["query_split_on_prompt"] == [1.0, 1.0]
    # prompts that do not prefix the query: split at the last assistant marker, same tokens
    status, body2 = server.post("/get_reward", {"query": data["query"], "prompts": ["x", "y"], "labels": None})
    assert status == 200 and body2["rewards"] == pytest.approx(body["rewards"], abs=1e-4)


def test_missing_or_wrong_bearer_token_is_401(server):
    assert server.post("/score", SINGLES[:1], token=None)[0] == 401
    assert server.post("/get_reward", {"query": ["a b"]}, token="wrong")[0] == 401


def test_oversized_body_is_413(server):
    status, body = server.post("/score", None, raw=b"[" + b" " * 5000 + b"]")
    assert status == 413 and "limit" in body["detail"]


def test_validation_errors_are_422_naming_the_field(server):
    status, body = server.post("/score", [SINGLES[0], {"prompt": "hi", "response": 7}])
    assert status == 422 and body["detail"][0]["loc"] == ["body", "items", 1, "response"]
    status, body = server.post("/score", [{"prompt": "hi", "response": "x" * 501}])
    assert status == 422 and body["detail"][0]["loc"] == ["body", "items", 0, "response"]
    status, body = server.post("/score", [{"prompt": "a", "response": "b"}] * 17)
    assert status == 422 and body["detail"][0]["loc"] == ["body", "items"]
    status, body = server.post("/score", [{"messages": [{"role": "robot", "content": "x"}]}])
    assert status == 422 and body["detail"][0]["loc"] == ["body", "items", 0, "messages[0]", "role"]
    status, body = server.post("/get_reward", {"query": ["ok text"], "prompts": ["a", "b"]})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "prompts"]
    status, body = server.post("/score", None, raw=b"{not json")
    assert status == 422 and body["detail"][0]["loc"] == ["body"]


def test_concurrent_requests_are_batched_together_and_an_invalid_one_fails_alone(server, scorer):
    def batches_total() -> tuple[int, int]:
        text = server.get("/metrics")
        count = int(next(x for x in text.splitlines() if x.startswith("rewardkit_batches_total ")).split()[1])
        largest = int(next(x for x in text.splitlines() if x.startswith("rewardkit_batch_size_max ")).split()[1])
        return count, largest

    before, _ = batches_total()
    valid = [[{"prompt": f"Question {i}?", "response": f"Answer number {i}."}] for i in range(8)]
    bodies = valid[:4] + [[{"prompt": "bad", "response": 3}]] + valid[4:]
    with ThreadPoolExecutor(len(bodies)) as pool:
        results = list(pool.map(lambda b: server.post("/score", b), bodies))
    assert [s for s, _ in results] == [200] * 4 + [422] + [200] * 4
    ok = [b for s, b in results if s == 200]
    want = expected(scorer, [b[0] for b in valid])
    assert [b["rewards"][0] for b in ok] == pytest.approx(want, abs=1e-4)
    after, largest = batches_total()
    assert largest > 1 and after - before < 8  # 8 single-item requests took fewer than 8 forwards


def test_health_and_prometheus_metrics(server):
    assert json.loads(server.get("/health"))["status"] == "ok"
    server.post("/score", SINGLES[:2])
    text = server.get("/metrics")
    assert 'rewardkit_requests_total{endpoint="/score",status="200"}' in text
    assert "# TYPE rewardkit_batch_size histogram" in text and "rewardkit_request_latency_seconds_bucket" in text


@pytest.mark.slow  # a fresh interpreter importing torch and transformers: ~10 s quiet, more when loaded
def test_serve_cli_runs_uvicorn_with_a_bearer_token_from_the_environment(scorer, tmp_path):
    import os
    import subprocess
    import sys

    model_dir = tmp_path / "model"
    scorer.model.save_pretrained(model_dir, scorer.tokenizer, scorer.meta)
    port = free_port()
    env = dict(os.environ, REWARDKIT_API_KEY="from-env")
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit", "serve", str(model_dir), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = Running.__new__(Running)
        client.port = port
        deadline = time.time() + 120
        while True:
            try:
                assert json.loads(client.get("/health"))["status"] == "ok"
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() else ""
                time.sleep(0.2)
        assert client.post("/score", SINGLES[:2], token=None)[0] == 401
        status, body = client.post("/score", SINGLES[:2], token="from-env")
        assert status == 200 and body["rewards"] == pytest.approx(expected(scorer, SINGLES[:2]), abs=1e-4)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_completions_of_one_prompt_from_several_clients_score_as_if_alone(server, scorer):
    """GRPO-style load: each request holds G completions of one prompt and two clients send the same prompt;
    the server computes each prompt once for all its completions (packed rows) and must return the scores
    of scoring every text on its own."""
    prompts = ["\n\nHuman: Name a colour.\n\nAssistant:", "\n\nHuman: What is 3 + 4?\n\nAssistant:"]
    completions = [" Blue.", " Seven, I think.", " 7", " It is seven; three plus four.", " Green!"]
    bodies = [[{"prompt": p, "response": c} for c in completions[k:] + completions[:k]]
              for k, p in enumerate(prompts * 2)]
    def computed_tokens() -> float:
        text = server.get("/metrics")
        return float(next(x for x in text.splitlines() if x.startswith("rewardkit_batch_tokens_sum ")).split()[1])

    before = computed_tokens()
    with ThreadPoolExecutor(len(bodies)) as pool:
        results = list(pool.map(lambda b: server.post("/score", b), bodies))
    assert [s for s, _ in results] == [200] * len(bodies)
    seqs = [scorer.encode(i["prompt"], i["response"]) for b in bodies for i in b]
    assert computed_tokens() - before < sum(len(s.input_ids) for s in seqs)  # prompts were computed once
    alone = score_sequences(scorer.model, seqs, scorer.tokenizer.pad_token_id, "cpu", max_batch=1,
                            share_prompts=False)
    assert [r for _, b in results for r in b["rewards"]] == pytest.approx(alone, abs=1e-4)
    assert len(set(alone)) > len(completions)
