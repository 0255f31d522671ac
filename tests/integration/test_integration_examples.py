"""The runnable integration files under examples/integrations/, exercised where they can run offline on CPU:

* ``trl_grpo.py``: the script's own trainer (a real ``GRPOTrainer`` with the ``Scorer`` as its reward function)
  takes one step; the rewards TRL computed equal ``Scorer.score`` on the same completions.
* ``openrlhf_remote_rm.sh``: its ``rewardkit serve`` line parses with our CLI, and OpenRLHF's remote-RM request
  (the body ``remote_rm_fn`` posts, to the path of its ``--remote_rm_url``) gets OpenRLHF's reply shape back.
* ``verl_reward_model.yaml``: see the tests at the end of the file.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import pytest
import torch

import rewardkit

from ..conftest import REPO, load_test_tokenizer, record_grpo_rewards, tiny_config
from .export_helpers import make_rewardkit_dir

EXAMPLES = REPO / "examples" / "integrations"


def _example_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def qwen2_export(tokenizer_dirs, tmp_path_factory):
    from rewardkit.export import export_model

    tmp = tmp_path_factory.mktemp("export")
    export_model(make_rewardkit_dir(tokenizer_dirs, "qwen2", tmp / "model"), tmp / "export")
    return tmp / "export"


def test_trl_grpo_example_rewards_equal_rewardkit_scores(tokenizer_dirs, qwen2_export, tmp_path):
    pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[interop]')")
    from transformers import LlamaForCausalLM

    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    torch.manual_seed(0)
    cfg = tiny_config("llama", len(tok))
    cfg.eos_token_id, cfg.pad_token_id = tok.eos_token_id, tok.pad_token_id or tok.eos_token_id
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "policy")
    tok.save_pretrained(tmp_path / "policy")
    prompts = [[{"role": "user", "content": "How do I make tea?"}], [{"role": "user", "content": "Say hi."}]]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts * 2))
    example = _example_module("trl_grpo")
    args = example.parse_args(["--policy", str(tmp_path / "policy"), "--reward-model", str(qwen2_export),
                               "--prompts", str(tmp_path / "prompts.jsonl"), "--output-dir", str(tmp_path / "grpo"),
                               "--max-steps", "1", "--batch-size", "4", "--num-generations", "4",
                               "--max-completion-length", "6", "--cpu"])
    trainer = example.build_trainer(args)
    seen = record_grpo_rewards(trainer)
    trainer.train()
    assert isinstance(trainer.reward_funcs[0], rewardkit.Scorer)
    ours = rewardkit.load_model(qwen2_export).score(seen["prompts"], seen["completions"])
    assert seen["rewards"] == pytest.approx(ours, abs=1e-4)
    assert len({round(x, 4) for x in ours}) > 1  # distinct completions, distinct rewards
    logged = next(h for h in trainer.state.log_history if any(k.startswith("rewards/") for k in h))
    mean_key = next(k for k in logged if k.startswith("rewards/") and k.endswith("/mean"))
    assert math.isclose(logged[mean_key], sum(ours) / len(ours), abs_tol=1e-4)


def _script_command(script: str, program: str) -> list[str]:
    """The words of the first command in a bash script that starts with ``program`` (continuations joined,
    environment assignments before it dropped)."""
    text = re.sub(r"\\\n", " ", script)
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words = words[1:]
        if words[: len(program.split())] == program.split():
            return [w.rstrip("&") for w in words if w != "&"]
    raise AssertionError(f"no `{program}` command in the script")


def test_openrlhf_example_serves_the_remote_rm_protocol_at_its_url(tiny_model_dir, tmp_path):
    from rewardkit.cli import build_parser
    from rewardkit.serve.scorer import Scorer
    from rewardkit.serve.server import ServerConfig

    from ..unit.test_score_batch import save_rewardkit_model
    from .test_server import Running

    script = (EXAMPLES / "openrlhf_remote_rm.sh").read_text()
    model = save_rewardkit_model(tiny_model_dir("llama"), tmp_path / "rk")
    env = {"RM": str(model), "RM_PORT": "5000"}
    serve = [re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), m.group(0)), w)
             for w in _script_command(script, "rewardkit serve")]
    args = build_parser().parse_args(serve[1:])  # the line is valid for our CLI, as written
    assert (args.command, args.engine, args.model, args.port) == ("serve", "rewardkit", str(model), 5000)
    train = _script_command(script, "python -m openrlhf.cli.train_ppo_ray")
    url = train[train.index("--remote_rm_url") + 1]
    assert re.fullmatch(r"http://127\.0\.0\.1:\$RM_PORT/get_reward", url), url
    scorer = Scorer.from_pretrained(model)
    prompts = ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:"]
    responses = [" Hello! How can I help?", " 4."]
    queries = [p + r for p, r in zip(prompts, responses, strict=True)]
    with Running(scorer, ServerConfig(api_key="", max_items=args.max_items)) as server:
        # openrlhf/utils/remote_rm_utils.py: requests.post(url, json={"query": queries}) -> response["rewards"]
        status, body = server.post(url.rsplit("$RM_PORT", 1)[1], {"query": queries}, token=None)
    assert status == 200
    assert body["rewards"] == pytest.approx(scorer.score(prompts, responses), abs=1e-4)


def _verl_reward_section() -> dict:
    import yaml

    cfg = yaml.safe_load((EXAMPLES / "verl_reward_model.yaml").read_text())
    assert cfg["defaults"] == ["ppo_trainer", "_self_"]  # composed over verl's own trainer config
    return cfg["reward"]["reward_model"]


def _resolve(value: str, rm: Path) -> str:
    return value.replace("${oc.env:RM}", str(rm))


def test_verl_example_points_vllm_at_the_export_and_its_chat_tokenizer(qwen2_export):
    rm = _verl_reward_section()
    assert rm["enable"] is True and rm["rollout"]["name"] == "vllm"
    assert _resolve(rm["model_path"], qwen2_export) == str(qwen2_export)
    serving = json.loads((qwen2_export / "rewardkit.json").read_text())["export"]["serving"]
    assert serving["problem_type"] == "regression" and serving["chat_template"]
    # the tokenizer verl makes vLLM load is the one the export wrote for chat text with special tokens on
    tokenizer = _resolve(rm["rollout"]["engine_kwargs"]["vllm"]["tokenizer"], qwen2_export)
    assert tokenizer == str(qwen2_export / serving["chat_tokenizer"]) and Path(tokenizer, "tokenizer.json").exists()
    assert "--tokenizer PATH/chat_tokenizer" in (qwen2_export / "README.md").read_text()  # the card says so too


def test_verl_request_through_the_configured_tokenizer_scores_like_rewardkit(qwen2_export):
    """verl's request replayed offline: its text (export_helpers.verl_text), tokenized as vLLM does (special tokens
    on) by the tokenizer the config names, read at the last token by the exported sequence classifier (what
    vLLM computes: tests/slow/test_vllm_parity.py). The root tokenizer is the counter-check: one EOS too many."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .export_helpers import CHAT_PROMPTS, CHAT_RESPONSES, verl_text

    rm = _verl_reward_section()
    vllm_tok = AutoTokenizer.from_pretrained(_resolve(rm["rollout"]["engine_kwargs"]["vllm"]["tokenizer"], qwen2_export))
    rm_tok = AutoTokenizer.from_pretrained(_resolve(rm["model_path"], qwen2_export))  # verl's reward_model_tokenizer
    model = AutoModelForSequenceClassification.from_pretrained(qwen2_export, dtype=torch.float32).eval()
    want = rewardkit.load_model(qwen2_export).score(CHAT_PROMPTS, CHAT_RESPONSES)

    def rewards(tok):
        with torch.no_grad():
            return [model(**tok(verl_text(rm_tok, p + r), return_tensors="pt")).logits[0, 0].item()
                    for p, r in zip(CHAT_PROMPTS, CHAT_RESPONSES, strict=True)]

    assert rewards(vllm_tok) == pytest.approx(want, abs=1e-4)
    assert all(abs(a - b) > 1e-2 for a, b in zip(rewards(rm_tok), want, strict=True))
