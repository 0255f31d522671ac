"""Shared by the export and interop tests: tiny rewardkit model directories and their exports."""

from __future__ import annotations

from pathlib import Path

import torch

from ..conftest import ARCH_TOKENIZER, load_test_tokenizer, tiny_config

TEXT_PROMPTS = ["\n\nHuman: How do I bake bread?\n\nAssistant:", "Q: name a colour\nA:",
                "\n\nHuman: Tell me a long story about a dragon, a knight and a very old castle.\n\nAssistant:"]
TEXT_RESPONSES = [" Mix flour, water, yeast and salt, knead, let it rise, then bake.", " Blue",
                  " Once upon a time."]
CHAT_PROMPTS = [[{"role": "user", "content": "How do I make tea?"}],
                [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]]
CHAT_RESPONSES = [[{"role": "assistant", "content": "Boil water and steep the leaves for three minutes."}],
                  [{"role": "assistant", "content": "4"}]]


def make_rewardkit_dir(tokenizer_dirs, arch: str, out: Path, head_scale: float = 50.0, spec=None) -> Path:
    """A saved rewardkit model (pad token added, rewardkit.json) with a random tiny backbone. The head is scaled
    up so that scores are O(1): reading the wrong token then moves a score far more than the 1e-4 tolerance."""
    from rewardkit.models.reward_model import ModelMeta, model_from_config

    tok = load_test_tokenizer(tokenizer_dirs, ARCH_TOKENIZER[arch])
    kind = "encoder" if arch == "bert" else "decoder"
    torch.manual_seed(0)
    model = model_from_config(tiny_config(arch, len(tok)), kind, tok, spec)
    with torch.no_grad():
        model._head().weight.mul_(head_scale)
        if not model.extras.empty:  # learned attribute weights: make them unequal
            model.extras.attribute_logits.copy_(torch.linspace(-1.0, 1.0, len(model.extras.attribute_logits)))
    meta = ModelMeta(kind=kind, pooling="cls" if kind == "encoder" else "last",
                     score_token="[CLS]" if kind == "encoder" else tok.eos_token,
                     score_token_id=None if kind == "encoder" else tok.eos_token_id, base_model=f"tiny-{arch}")
    model.save_pretrained(out, tok, meta)
    return out


def verl_text(tok, chat: list[dict]) -> str:
    """What verl's reward loop sends vLLM's ``/classify`` for one rollout (``RewardLoopWorker.
    _preprocess_reward_inputs``, verl main): the reward model's chat template without a generation prompt, a
    leading BOS cut off; vLLM tokenizes it with special tokens on (its default)."""
    text = tok.apply_chat_template(chat, add_generation_prompt=False, tokenize=False)
    return text[len(tok.bos_token):] if tok.bos_token and text.startswith(tok.bos_token) else text
