"""`rewardkit score` and the scoring adapters on tiny random models (CPU, no network)."""

import csv
import json

import pytest
import torch

from rewardkit.cli import main
from rewardkit.config import ModelConfig
from rewardkit.data.errors import DataError
from rewardkit.data.readers import Record
from rewardkit.models.reward_model import ModelMeta, build_model
from rewardkit.serve.adapters import openrlhf_reward_func
from rewardkit.serve.items import parse_single, split_query
from rewardkit.serve.scorer import Scorer

from ..conftest import HH_SAMPLE

SINGLES = [
    {"id": 0, "prompt": "\n\nHuman: How do I bake bread?\n\nAssistant:", "response": " Knead it and bake it."},
    {"id": 1, "messages": [{"role": "user", "content": "What is 2+2?"},
                           {"role": "assistant", "content": "It is 4, the sum of two and two."}]},
    {"id": 2, "prompt": "Say hi.", "response": "Hi"},
    {"id": 3, "prompt": [{"role": "user", "content": "Tell me a joke."}],
     "response": [{"role": "assistant", "content": "Why did the scarecrow win an award? He was outstanding."}]},
]


def save_rewardkit_model(src_dir, out_dir, normalization=None, max_length=128):
    """A rewardkit model directory from a tiny random HF model, as `rewardkit train` would save it."""
    model, tok, kind = build_model(ModelConfig(name=str(src_dir)))
    meta = ModelMeta(kind=kind, pooling="cls" if kind == "encoder" else "last",
                     score_token="[CLS]" if kind == "encoder" else tok.eos_token,
                     score_token_id=None if kind == "encoder" else tok.eos_token_id,
                     max_length=max_length, normalization=normalization)
    model.save_pretrained(out_dir, tok, meta)
    return out_dir


@pytest.fixture(scope="module")
def llama_model(tiny_model_dir, tmp_path_factory):
    return save_rewardkit_model(tiny_model_dir("llama"), tmp_path_factory.mktemp("rk-llama"),
                                normalization={"mean": 0.5, "std": 2.0})


@pytest.fixture(scope="module")
def scorer(llama_model):
    return Scorer.from_pretrained(llama_model)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_score_cli_adds_rewards_in_input_order_equal_to_scorer(llama_model, scorer, tmp_path):
    rows = SINGLES * 3 + [dict(r, id=10 + i) for i, r in enumerate(HH_SAMPLE)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    # a tiny token budget forces many batches, so length sorting really reorders the work
    assert main(["score", str(llama_model), str(src), "-o", str(out), "--max-tokens", "64"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    for g, r in zip(got, rows, strict=True):
        assert {k: g[k] for k in r} == r  # the input fields are kept as they were
    singles = [parse_single(Record(r, "x", 1)) for r in rows[:12]]
    expected = scorer.score([s.prompt for s in singles], [s.response for s in singles])
    assert [g["reward"] for g in got[:12]] == pytest.approx(expected, abs=1e-4)
    pairs = got[12:]
    assert all(isinstance(p["reward_chosen"], float) and isinstance(p["reward_rejected"], float) for p in pairs)
    assert "reward" not in pairs[0]


def test_score_cli_pair_rewards_match_scorer_on_split_prompt(llama_model, scorer, tmp_path):
    src = write_jsonl(tmp_path / "pairs.jsonl", HH_SAMPLE)
    out = tmp_path / "pairs.parquet"
    assert main(["score", str(llama_model), str(src), "-o", str(out)]) == 0
    import pyarrow.parquet as pq

    got = pq.read_table(out).to_pylist()
    prompt = "\n\nHuman: What is 2+2?\n\nAssistant:"
    assert got[2]["chosen"] == HH_SAMPLE[2]["chosen"]
    assert got[2]["reward_chosen"] == pytest.approx(scorer.score([prompt], [" 4."])[0], abs=1e-4)
    assert got[2]["reward_rejected"] == pytest.approx(scorer.score([prompt], [" 5."])[0], abs=1e-4)


def test_score_cli_reads_ab_judgments_and_other_field_names_through_data_overrides(llama_model, scorer, tmp_path):
    ab = write_jsonl(tmp_path / "ab.jsonl", [{"input": "Say hi.", "response_a": "Hi", "response_b": "Go away.",
                                              "winner": "model_b"}])
    out = tmp_path / "ab_out.jsonl"
    assert main(["score", str(llama_model), str(ab), "-o", str(out), "--data.format", "ab",
                 "--data.fields.prompt", "input"]) == 0
    got = json.loads(out.read_text())
    assert got["winner"] == "model_b"  # kept as it was; no mapping is needed to score
    assert [got["reward_a"], got["reward_b"]] == pytest.approx(scorer.score(["Say hi."] * 2, ["Hi", "Go away."]),
                                                               abs=1e-4)
    single = write_jsonl(tmp_path / "q.jsonl", [{"question": "Say hi.", "answer": "Hi"}])
    assert main(["score", str(llama_model), str(single), "-o", str(out), "--overwrite", "--data.fields.prompt", "question",
                 "--data.fields.response", "answer"]) == 0
    assert json.loads(out.read_text())["reward"] == pytest.approx(scorer.score(["Say hi."], ["Hi"])[0], abs=1e-4)


def test_score_cli_writes_csv_and_json_like_the_input(llama_model, tmp_path):
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["prompt", "response"])
        w.writeheader()
        w.writerows([{"prompt": "Say hi.", "response": "Hi there"}, {"prompt": "Count.", "response": "1 2 3"}])
    out = tmp_path / "out.csv"
    assert main(["score", str(llama_model), str(src), "-o", str(out)]) == 0
    got = list(csv.DictReader(open(out, newline="")))
    assert [g["prompt"] for g in got] == ["Say hi.", "Count."] and all(float(g["reward"]) == float(g["reward"])
                                                                       for g in got)
    src_json = tmp_path / "in.json"
    src_json.write_text(json.dumps(SINGLES))
    out_json = tmp_path / "out.json"
    assert main(["score", str(llama_model), str(src_json), "-o", str(out_json)]) == 0
    got_json = json.loads(out_json.read_text())
    assert [g["id"] for g in got_json] == [0, 1, 2, 3] and got_json[1]["messages"] == SINGLES[1]["messages"]


def test_score_cli_normalize_applies_stored_statistics(llama_model, tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", SINGLES)
    raw, norm = tmp_path / "raw.jsonl", tmp_path / "norm.jsonl"
    assert main(["score", str(llama_model), str(src), "-o", str(raw)]) == 0
    assert main(["score", str(llama_model), str(src), "-o", str(norm), "--normalize"]) == 0
    r = [json.loads(x)["reward"] for x in raw.read_text().splitlines()]
    n = [json.loads(x)["reward"] for x in norm.read_text().splitlines()]
    assert n == pytest.approx([(x - 0.5) / 2.0 for x in r], abs=1e-6)


def test_score_cli_names_file_line_and_field_of_a_bad_record(llama_model, tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [SINGLES[0], {"prompt": "hi", "response": 3}])
    assert main(["score", str(llama_model), str(src), "-o", str(tmp_path / "o.jsonl")]) == 2
    assert f"{src}:2: field 'response'" in capsys.readouterr().err
    out = tmp_path / "skip.jsonl"
    assert main(["score", str(llama_model), str(src), "-o", str(out), "--on-invalid", "skip"]) == 0
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert got[1]["reward"] is None and isinstance(got[0]["reward"], float)


def test_messages_record_scores_the_final_assistant_turns():
    item = parse_single(Record(SINGLES[1], "f", 1))
    assert item.prompt == [SINGLES[1]["messages"][0]] and item.response == [SINGLES[1]["messages"][1]]
    with pytest.raises(DataError, match="messages"):
        parse_single(Record({"messages": [{"role": "user", "content": "hi"}]}, "f", 3))


def test_split_query_uses_prompt_then_assistant_marker_then_whole_text():
    assert split_query("P: hi A: yo", "P: hi").how == "prompt"
    s = split_query("\n\nHuman: hi\n\nAssistant: yo", "something else")
    assert (s.prompt, s.response, s.how) == ("\n\nHuman: hi\n\nAssistant:", " yo", "assistant_marker")
    assert split_query("just text<pad><pad>", None, "<pad>") == split_query("just text", None)
    assert split_query("just text", None).how == "whole"


def test_scorer_is_a_trl_grpo_reward_function(scorer):
    """Called the way trl 1.16 `GRPOTrainer._calculate_rewards` calls a custom reward function."""
    from trl.trainer.grpo_trainer import GRPOTrainer
    from trl.trainer.utils import get_callable_name, is_async_callable

    assert get_callable_name(scorer) == "rewardkit" and not is_async_callable(scorer)
    prompts = [[{"role": "user", "content": "What is 2+2?"}], [{"role": "user", "content": "Say hi."}]]
    completions = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "Hello!"}]]
    inputs = [{"prompt": p, "completion": c, "answer": a} for p, c, a in zip(prompts, completions, ["4", "hi"], strict=True)]
    rewards = _trl_calculate_rewards(GRPOTrainer, scorer, inputs, prompts, completions)
    expected = scorer.score(prompts, completions)
    assert rewards[:, 0].tolist() == pytest.approx(expected, abs=1e-5)
    # text prompts and completions too
    text = scorer(prompts=["Q: 2+2?\nA:"], completions=[" 4"], completion_ids=[[1]], answer=["4"],
                  trainer_state=None, log_extra=None, log_metric=None)
    assert text == pytest.approx(scorer.score(["Q: 2+2?\nA:"], [" 4"]), abs=1e-6)


def _trl_calculate_rewards(trainer_cls, scorer, inputs, prompts, completions):
    """Run TRL's own `_calculate_rewards` on a minimal trainer stand-in (no model, no training)."""
    from types import SimpleNamespace

    from accelerate import Accelerator

    fake = SimpleNamespace(
        accelerator=Accelerator(cpu=True), reward_funcs=[scorer], reward_processing_classes=[None],
        reward_func_names=["rewardkit"], state=SimpleNamespace(global_step=0), environments=None, args=SimpleNamespace(report_to=[]),
        _log_completion_extra=lambda *a, **k: None, _log_metric=lambda *a, **k: None, async_loop=None)
    return trainer_cls._calculate_rewards(fake, inputs, prompts, completions, [[0]] * len(prompts))


def test_openrlhf_reward_func_returns_a_tensor_equal_to_scorer(scorer):
    fn = openrlhf_reward_func(scorer)
    prompts = ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: What is 2+2?\n\nAssistant:"]
    responses = [" Hello! How can I help?", " 4."]
    out = fn([p + r for p, r in zip(prompts, responses, strict=True)], prompts, None)
    assert isinstance(out, torch.Tensor) and out.shape == (2,)
    assert out.tolist() == pytest.approx(scorer.score(prompts, responses), abs=1e-4)


def test_openrlhf_chat_template_query_scores_like_the_messages(tiny_model_dir, tmp_path):
    """OpenRLHF sends `apply_chat_template` text; it must not be templated a second time."""
    scorer = Scorer.from_pretrained(save_rewardkit_model(tiny_model_dir("qwen2"), tmp_path / "qwen2"))
    assert scorer.renderer.has_chat_template
    prompt = [{"role": "user", "content": "What is 2+2?"}]
    response = [{"role": "assistant", "content": "It is 4."}]
    tok = scorer.tokenizer
    query = tok.apply_chat_template(prompt + response, tokenize=False)
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    out = openrlhf_reward_func(scorer)([query, query], [head, None], None)
    want = scorer.score([prompt], [response])[0]
    assert out.tolist() == pytest.approx([want, want], abs=1e-4)


def test_score_cli_shared_prompts_give_the_unshared_rewards(llama_model, tmp_path):
    """Pairs share their prompt: the default computes it once (packed rows), --no-share-prompts pads every text
    on its own row; the rewards must agree."""
    src = write_jsonl(tmp_path / "pairs.jsonl", HH_SAMPLE)
    shared, alone = tmp_path / "shared.jsonl", tmp_path / "alone.jsonl"
    assert main(["score", str(llama_model), str(src), "-o", str(shared)]) == 0
    assert main(["score", str(llama_model), str(src), "-o", str(alone), "--no-share-prompts"]) == 0
    a = [json.loads(line) for line in shared.read_text().splitlines()]
    b = [json.loads(line) for line in alone.read_text().splitlines()]
    for x, y in zip(a, b, strict=True):
        assert x["reward_chosen"] == pytest.approx(y["reward_chosen"], abs=1e-4)
        assert x["reward_rejected"] == pytest.approx(y["reward_rejected"], abs=1e-4)
    assert len({round(x["reward_chosen"], 6) for x in a}) > 1
