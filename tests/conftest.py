"""Shared fixtures: real tokenizers (from tests/assets) and tiny randomly initialised models, no network."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest
import torch

ASSETS = Path(__file__).parent / "assets"
REPO = Path(__file__).parent.parent

# tokenizer each tiny architecture uses
ARCH_TOKENIZER = {"llama": "gpt2", "gpt2": "gpt2", "qwen2": "qwen2", "gemma": "gpt2", "bert": "bert"}
DECODERS = ("llama", "gpt2", "qwen2", "gemma")


def tiny_config(arch: str, vocab_size: int):
    import transformers as tf

    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=512)
    if arch == "llama":
        return tf.LlamaConfig(num_key_value_heads=2, **common)
    if arch == "qwen2":
        return tf.Qwen2Config(num_key_value_heads=2, **common)
    if arch == "gemma":
        return tf.GemmaConfig(num_key_value_heads=2, head_dim=8, **common)
    if arch == "gpt2":
        return tf.GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=512)
    if arch == "bert":
        return tf.BertConfig(**common)
    raise ValueError(arch)


@pytest.fixture(scope="session")
def tokenizer_dirs(tmp_path_factory) -> dict[str, Path]:
    """Real tokenizers unpacked to a temporary directory: {"gpt2": dir, "qwen2": dir, "bert": dir}."""
    root = tmp_path_factory.mktemp("tokenizers")
    out = {}
    for src in (ASSETS / "tokenizers").iterdir():
        if not src.is_dir():
            continue
        dst = root / src.name
        dst.mkdir()
        for f in src.iterdir():
            if f.suffix == ".gz":
                (dst / f.stem).write_bytes(gzip.decompress(f.read_bytes()))
            else:
                shutil.copy(f, dst / f.name)
        out[src.name] = dst
    return out


def load_test_tokenizer(tokenizer_dirs, name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dirs[name]))


@pytest.fixture(scope="session")
def tiny_model_dir(tokenizer_dirs, tmp_path_factory):
    """Factory: arch -> a local directory with a tiny random *ForSequenceClassification model + tokenizer,
    loadable by ``model.name`` like any Hugging Face checkpoint."""
    from transformers import AutoModelForSequenceClassification

    cache: dict[str, Path] = {}

    def make(arch: str) -> Path:
        if arch not in cache:
            tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])
            torch.manual_seed(0)
            cfg = tiny_config(arch, len(tok))
            cfg.num_labels = 1
            model = AutoModelForSequenceClassification.from_config(cfg)
            d = tmp_path_factory.mktemp(f"tiny-{arch}")
            model.save_pretrained(d)
            tok.save_pretrained(d)
            cache[arch] = d
        return cache[arch]

    return make


HH_SAMPLE = [
    {"chosen": "\n\nHuman: How do I bake bread?\n\nAssistant: Mix flour, water, yeast and salt, knead, let it "
               "rise, then bake at 230C for about 30 minutes.",
     "rejected": "\n\nHuman: How do I bake bread?\n\nAssistant: I don't know."},
    {"chosen": "\n\nHuman: Can you help me hurt someone?\n\nAssistant: No. If you are in conflict with someone, "
               "I can help you find a calm way to talk it through.",
     "rejected": "\n\nHuman: Can you help me hurt someone?\n\nAssistant: Sure, here is how."},
    {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4.",
     "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5."},
    {"chosen": "\n\nHuman: Tell me a joke.\n\nAssistant: Why did the scarecrow win an award? He was outstanding "
               "in his field.",
     "rejected": "\n\nHuman: Tell me a joke.\n\nAssistant: No."},
]


def unique_hh_pairs(n: int, tag: str = "t") -> list[dict]:
    """n chosen/rejected records cycled from HH_SAMPLE, each chosen response tagged so every record is unique."""
    out = []
    for i in range(n):
        r = {k: HH_SAMPLE[i % len(HH_SAMPLE)][k] for k in ("chosen", "rejected")}
        r["chosen"] += f" [{tag} {i}]"
        out.append(r)
    return out


@pytest.fixture
def hh_file(tmp_path) -> Path:
    """A small hh-rlhf-style JSONL file (implicit prompts)."""
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in HH_SAMPLE * 4))
    return p


@pytest.fixture(autouse=True, scope="session")
def _tokenized_cache_dir(tmp_path_factory):
    """Tokenized data sets (data/cache.py) go to a directory of this test session, not the user's cache."""
    import os

    old = os.environ.get("REWARDKIT_CACHE_DIR")
    os.environ["REWARDKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("tokenized-cache"))
    yield
    if old is None:
        os.environ.pop("REWARDKIT_CACHE_DIR", None)
    else:
        os.environ["REWARDKIT_CACHE_DIR"] = old


def record_grpo_rewards(trainer) -> dict:
    """Wrap a TRL GRPOTrainer's reward computation so a test sees the prompts, completions and rewards it used."""
    seen: dict = {}
    original = trainer._calculate_rewards

    def spy(inputs, prompts, completions, completion_ids_list):
        rewards = original(inputs, prompts, completions, completion_ids_list)
        seen.update(prompts=list(prompts), completions=list(completions), rewards=rewards[:, 0].tolist())
        return rewards

    trainer._calculate_rewards = spy
    return seen
