"""TRL's GRPOTrainer with an exported rewardkit directory as its reward model: one step on CPU with a tiny
random policy; the rewards TRL computes and logs equal ``rewardkit.load_model(dir).score`` on the same
completions."""

from __future__ import annotations

import math

import pytest
import torch

import rewardkit
from rewardkit.export import export_model, score_token_tokenizer

from ..conftest import load_test_tokenizer, record_grpo_rewards, tiny_config
from .export_helpers import make_rewardkit_dir

trl = pytest.importorskip("trl", reason="TRL is not installed (pip install -e '.[interop]')")
datasets = pytest.importorskip("datasets")


def tiny_policy(tokenizer):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config("llama", len(tokenizer))
    cfg.eos_token_id = tokenizer.eos_token_id
    cfg.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return LlamaForCausalLM(cfg)


def run_one_grpo_step(tmp_path, policy_tok, prompts, reward_dir, reward_tok=None):
    """One GRPO step; returns (prompts, completions, rewards TRL computed, TRL's logged metrics)."""
    from trl import GRPOConfig, GRPOTrainer

    if policy_tok.pad_token is None:
        policy_tok.pad_token = policy_tok.eos_token
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), per_device_train_batch_size=4, num_generations=4,
                      max_completion_length=6, max_steps=1, logging_steps=1, report_to=[], use_cpu=True,
                      bf16=False, save_strategy="no", seed=0)
    trainer = GRPOTrainer(model=tiny_policy(policy_tok), reward_funcs=str(reward_dir), args=args,
                          train_dataset=datasets.Dataset.from_dict({"prompt": prompts}), processing_class=policy_tok,
                          reward_processing_classes=[reward_tok] if reward_tok is not None else None)
    seen = record_grpo_rewards(trainer)
    trainer.train()
    logged = next(h for h in trainer.state.log_history if any(k.startswith("rewards/") for k in h))
    return seen, logged


def check(seen, logged, scorer):
    assert len(seen["rewards"]) == 4
    ours = scorer.score(seen["prompts"], seen["completions"])
    diff = max(abs(a - b) for a, b in zip(seen["rewards"], ours, strict=True))
    assert diff <= 1e-4, f"TRL {seen['rewards']} vs rewardkit {ours}"
    mean_key = next(k for k in logged if k.startswith("rewards/") and k.endswith("/mean"))
    assert math.isclose(logged[mean_key], sum(ours) / len(ours), abs_tol=1e-4)
    assert len(set(round(x, 4) for x in ours)) > 1  # distinct completions, distinct rewards: not a constant


def test_grpo_conversational_rewards_equal_rewardkit_scores(tokenizer_dirs, tmp_path):
    """Chat prompts: TRL renders prompt + completion with the exported (trimmed) chat template and tokenizes
    it with add_special_tokens=False; that ends at <|im_end|>, our score token. No extra code needed."""
    out = tmp_path / "export"
    export_model(make_rewardkit_dir(tokenizer_dirs, "qwen2", tmp_path / "model"), out)
    prompts = [[{"role": "user", "content": "How do I make tea?"}], [{"role": "user", "content": "Say hi."}]] * 2
    seen, logged = run_one_grpo_step(tmp_path, load_test_tokenizer(tokenizer_dirs, "qwen2"), prompts, out)
    assert isinstance(seen["completions"][0], list)  # conversational completions
    check(seen, logged, rewardkit.load_model(out))


def test_grpo_plain_text_rewards_equal_rewardkit_scores_with_score_token_tokenizer(tokenizer_dirs, tmp_path):
    """Plain-text prompts: TRL passes add_special_tokens=False, so the score token is appended by the
    tokenizer from ``score_token_tokenizer`` (documented in the model card)."""
    out = tmp_path / "export"
    export_model(make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model"), out)
    prompts = ["\n\nHuman: How do I make tea?\n\nAssistant: ", "Question: what is 2+2?\nAnswer: "] * 2
    seen, logged = run_one_grpo_step(tmp_path, load_test_tokenizer(tokenizer_dirs, "gpt2"), prompts, out,
                                     reward_tok=score_token_tokenizer(out))
    check(seen, logged, rewardkit.load_model(out))


def test_plain_exported_tokenizer_with_add_special_tokens_false_misses_the_score_token(tokenizer_dirs, tmp_path):
    """Why plain-text TRL needs score_token_tokenizer: what TRL calls drops the EOS; ours keeps it."""
    from transformers import AutoTokenizer

    out = tmp_path / "export"
    export_model(make_rewardkit_dir(tokenizer_dirs, "gpt2", tmp_path / "model"), out)
    texts = ["Q: hi\nA: hello", "Q: 2+2?\nA: four, of course"]
    plain = AutoTokenizer.from_pretrained(out)
    ours = score_token_tokenizer(out)
    eos = plain.eos_token_id
    kwargs = dict(text=texts, return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False)
    assert all(row[-1] != eos for row in plain(texts, add_special_tokens=False)["input_ids"])
    got = ours(**kwargs)
    want = plain(texts, add_special_tokens=True)["input_ids"]
    for i, w in enumerate(want):
        assert got["input_ids"][i, : len(w)].tolist() == w and got["attention_mask"][i].sum() == len(w)
