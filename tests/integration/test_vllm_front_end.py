"""`rewardkit serve --engine vllm` holds no model of its own: the front end (tokenizer, rendering, manifest) loads
no weights, sends the same token ids as rewardkit's engine, and the server answers with rewardkit's rewards.

vLLM is not installed here (it lives in its own venv: tests/slow/test_vllm_parity.py runs the real engine), so
the vLLM ``AsyncLLM`` is stood in for by plain transformers computing the export's raw head outputs from the
token ids the server sends (what vLLM's classify pooler returns for a ``problem_type: regression`` export).
"""

import json

import pytest
import torch

from rewardkit.cli import main
from rewardkit.export import export_model
from rewardkit.models.heads import HeadSpec
from rewardkit.serve import server as server_module
from rewardkit.serve.front_end import FrontEnd, FrontEndError
from rewardkit.serve.scorer import Scorer
from rewardkit.serve.server import ServerConfig
from rewardkit.serve.vllm_engine import VllmBatcher, reward_from_outputs

from .export_helpers import CHAT_PROMPTS, CHAT_RESPONSES, TEXT_PROMPTS, TEXT_RESPONSES, make_rewardkit_dir
from .test_server import Running


@pytest.fixture(scope="module")
def export(tokenizer_dirs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("front")
    src = make_rewardkit_dir(tokenizer_dirs, "qwen2", tmp / "model")  # qwen2: a chat template, chat is checked
    export_model(src, tmp / "out", engines=("vllm",))
    return tmp / "out"


@pytest.fixture
def no_weights(monkeypatch):
    """Fail any load of model weights (transformers' model classes, safetensors, torch.load)."""
    import safetensors
    import safetensors.torch
    import transformers

    def refuse(*a, **k):
        raise AssertionError("the vLLM front end loaded model weights")

    for cls in (transformers.AutoModelForSequenceClassification, transformers.AutoModelForCausalLM,
                transformers.AutoModel):
        monkeypatch.setattr(cls, "from_pretrained", refuse)
    monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_serve_engine_vllm_builds_a_front_end_without_loading_the_model(export, no_weights, monkeypatch):
    got = {}
    monkeypatch.setattr(server_module, "serve", lambda scorer, **kw: got.update(scorer=scorer, **kw))
    assert main(["serve", str(export), "--engine", "vllm", "--port", "8123"]) == 0
    front = got["scorer"]
    assert isinstance(front, FrontEnd) and not hasattr(front, "model")
    assert got["cfg"].engine == "vllm" and got["cfg"].model_dir == str(export)


@pytest.fixture(scope="module")
def scorer(export):
    return Scorer.from_pretrained(export)


def test_front_end_encodes_like_the_scorer_without_loading_weights(export, scorer, no_weights):
    front = FrontEnd.from_export(export)
    for prompts, responses in ((TEXT_PROMPTS, TEXT_RESPONSES), (CHAT_PROMPTS, CHAT_RESPONSES)):
        for p, r in zip(prompts, responses, strict=True):
            a, b = front.encode(p, r), scorer.encode(p, r)
            assert list(a.input_ids) == list(b.input_ids) and a.score_index == b.score_index


class StandInEngine:
    """vLLM's ``AsyncLLM.encode`` for a classify request, computed by plain transformers on the export."""

    def __init__(self, directory):
        from transformers import AutoModelForSequenceClassification

        self.hf = AutoModelForSequenceClassification.from_pretrained(directory, dtype=torch.float32).eval()
        self.requests, self.extra = [], []

    async def encode(self, prompt, params, request_id):
        from types import SimpleNamespace

        assert params.task == "classify" and params.use_activation is False  # raw outputs, never a sigmoid
        ids = prompt["prompt_token_ids"]
        self.requests.append(ids)
        self.extra.append(params.extra_kwargs)
        yield SimpleNamespace(outputs=SimpleNamespace(data=self.logits(ids, params.extra_kwargs)))

    def logits(self, ids, extra_kwargs=None):
        """vLLM 0.32's model runner (``gpu_model_runner._init_model_kwargs``): segment ids are rebuilt as
        ``position >= compressed_token_type_ids``; without that key every token is segment 0."""
        start = (extra_kwargs or {}).get("compressed_token_type_ids", len(ids))
        types = (torch.arange(len(ids)) >= start).long()[None]
        kwargs = {"token_type_ids": types} if self.hf.config.model_type == "bert" else {}
        with torch.no_grad():
            return self.hf(input_ids=torch.tensor([ids]), **kwargs).logits[0]

    def shutdown(self):
        pass


@pytest.fixture
def stand_in(monkeypatch):
    engines = []

    def start(self):
        engines.append(StandInEngine(self.model_dir))
        self._engine = engines[-1]

    monkeypatch.setattr(VllmBatcher, "start", start)
    return engines


class FakeParams:
    def __init__(self, task, use_activation, extra_kwargs=None):
        self.task, self.use_activation, self.extra_kwargs = task, use_activation, extra_kwargs


@pytest.fixture
def fake_vllm_types(monkeypatch):
    """``vllm.PoolingParams`` / ``vllm.inputs.TokensPrompt`` as the batcher imports them (vLLM is not installed)."""
    import sys
    import types

    vllm = types.ModuleType("vllm")
    vllm.PoolingParams = FakeParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    vllm.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)


def test_server_on_the_vllm_path_answers_with_rewardkit_s_rewards(export, scorer, stand_in, fake_vllm_types):
    want = scorer.score(TEXT_PROMPTS, TEXT_RESPONSES) + scorer.score(CHAT_PROMPTS, CHAT_RESPONSES)
    assert max(abs(w) for w in want) > 1  # not a sigmoid's range
    items = [{"prompt": p, "response": r} for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    items += [{"messages": p + r} for p, r in zip(CHAT_PROMPTS, CHAT_RESPONSES, strict=True)]
    cfg = ServerConfig(engine="vllm", model_dir=str(export), api_key="k")
    with Running(FrontEnd.from_export(export), cfg) as running:
        status, body = running.post("/score", {"items": items}, token="k")
        assert status == 200 and body["rewards"] == pytest.approx(want, abs=1e-4)
        queries = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
        status, body = running.post("/get_reward", {"query": queries, "prompts": TEXT_PROMPTS}, token="k")
        assert status == 200 and body["rewards"] == pytest.approx(want[:3], abs=1e-4)
        assert json.loads(running.get("/health"))["engine"] == "vllm"
        status, _ = running.post("/score", {"items": items}, token="wrong")
        assert status == 401
    sent = stand_in[0].requests
    assert sent[0] == list(scorer.encode(TEXT_PROMPTS[0], TEXT_RESPONSES[0]).input_ids)


def test_encoder_on_the_vllm_path_sends_its_segment_ids_and_answers_with_rewardkit_s_rewards(
        tokenizer_dirs, tmp_path, stand_in, fake_vllm_types):
    src = make_rewardkit_dir(tokenizer_dirs, "bert", tmp_path / "model")
    export_model(src, tmp_path / "out", engines=("vllm",))
    scorer, front = Scorer.from_pretrained(tmp_path / "out"), FrontEnd.from_export(tmp_path / "out")
    want = scorer.score(TEXT_PROMPTS, TEXT_RESPONSES)
    items = [{"prompt": p, "response": r} for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    cfg = ServerConfig(engine="vllm", model_dir=str(tmp_path / "out"))
    with Running(front, cfg) as running:
        status, body = running.post("/score", {"items": items})
        assert status == 200 and body["rewards"] == pytest.approx(want, abs=1e-4)
        queries = [p + r for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
        status, body = running.post("/get_reward", {"query": queries, "prompts": TEXT_PROMPTS})
        assert status == 200 and body["rewards"] == pytest.approx(want, abs=1e-4)
    engine = stand_in[0]
    for (p, r), ids, extra in zip(zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True), engine.requests, engine.extra,
                                  strict=False):
        enc = scorer.encode(p, r)
        assert ids == list(enc.input_ids)
        # segment B starts at the response ([CLS] prompt [SEP] | response [SEP])
        assert extra == {"compressed_token_type_ids": list(enc.token_type_ids).index(1)}
        assert extra["compressed_token_type_ids"] == enc.response_start
    # the segment ids matter: all-zero ids (what vLLM assumes without them) score this model more than 10x the
    # tolerance away, so the /score check above fails when they are not sent
    zero = [float(engine.logits(list(scorer.encode(p, r).input_ids))[0])
            for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True)]
    assert max(abs(a - b) for a, b in zip(zero, want, strict=True)) > 1e-3


def test_segment_ids_vllm_cannot_express_are_refused():
    from rewardkit.data.tokenize import Encoded
    from rewardkit.serve.vllm_engine import segment_kwargs

    def seq(types):
        return Encoded(input_ids=list(range(len(types or []))), token_type_ids=types, response_start=0,
                       score_index=0, prompt_tokens=0)

    assert segment_kwargs(seq(None)) is None and segment_kwargs(seq([0, 0, 0])) is None
    assert segment_kwargs(seq([0, 0, 1, 1])) == {"compressed_token_type_ids": 2}
    with pytest.raises(ValueError, match="not zeros followed by ones"):
        segment_kwargs(seq([0, 1, 0, 1]))


def test_multi_attribute_reward_uses_the_manifest_weights(tokenizer_dirs, tmp_path):
    spec = HeadSpec(head="multi", attributes=["helpful", "honest", "harmless"], weighting="learned")
    src = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "model", spec=spec)
    export_model(src, tmp_path / "out", engines=("vllm",))
    front, scorer = FrontEnd.from_export(tmp_path / "out"), Scorer.from_pretrained(tmp_path / "out")
    engine = StandInEngine(tmp_path / "out")
    for p, r in zip(TEXT_PROMPTS, TEXT_RESPONSES, strict=True):
        with torch.no_grad():
            outputs = engine.logits(list(front.encode(p, r).input_ids)).tolist()
        assert len(outputs) == 3
        assert reward_from_outputs(outputs, front) == pytest.approx(scorer.score([p], [r])[0], abs=1e-4)


def test_heads_the_vllm_path_does_not_serve_are_refused_naming_why(tokenizer_dirs, export, tmp_path):
    src = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "mean", spec=HeadSpec(pooling="mean"))
    export_model(src, tmp_path / "mean-out", rewardkit_only=True)
    with pytest.raises(FrontEndError, match="vLLM cannot compute this model's reward.*--engine rewardkit"):
        FrontEnd.from_export(tmp_path / "mean-out")
    with pytest.raises(FrontEndError, match="no export.serving manifest"):
        FrontEnd.from_export(src)  # a training output, not an export
    with pytest.raises(FrontEndError, match="rewardkit.json: missing"):
        FrontEnd.from_export(tmp_path)
    spec = HeadSpec(head="ensemble", ensemble_size=3, ensemble_aggregate="mean", ensemble_beta=0.0)
    ens = make_rewardkit_dir(tokenizer_dirs, "llama", tmp_path / "ens", spec=spec)
    export_model(ens, tmp_path / "ens-out", engines=("vllm",))
    with pytest.raises(FrontEndError, match="does not serve an ensemble"):
        FrontEnd.from_export(tmp_path / "ens-out")
    assert main(["serve", str(export), "--engine", "vllm", "--aggregate", "min"]) == 2
