"""The LM-head judge as a reward-model head: no new parameters, the LM head is the head.

``model.head: judge`` loads the backbone as a causal LM (``AutoModelForCausalLM``), renders every response into
the judge template (:mod:`rewardkit.data.judge_template`) and reads the reward at the template's last token:
``logit(yes) - logit(no)`` = ``h_last . (W[yes] - W[no])`` (:func:`~rewardkit.models.judge_readout.token_margin`).
Training moves the backbone (full or LoRA) and, with full fine-tuning, the two rows of the LM head; the same
losses as the scalar head apply (Bradley-Terry on pairs, cross-entropy on binary labels via the reward as a
logit). Saved as a causal-LM directory; vLLM serves it as a classifier (:func:`vllm_command`).
"""

from __future__ import annotations

import json
import logging

import torch
from torch import nn

from ..config import JudgeConfig
from ..data.judge_encode import JudgeEncoder, JudgeRenderer
from ..data.judge_template import (
    answer_token_ids,
    pairwise_pieces,
    pieces_text,
    pointwise_pieces,
    resolve_style,
)
from .judge_readout import token_margin

log = logging.getLogger(__name__)


class JudgeHead(nn.Module):
    """``[N, H]`` final hidden states at the answer position -> ``[N, 1]`` ``logit(pos) - logit(neg)`` (fp32).

    Holds no weights of its own: it reads the owning model's output embedding each call (so LoRA merging,
    tied embeddings and full fine-tuning all see the one LM head), kept outside the module tree so that the
    state dict has no duplicate key."""

    def __init__(self, owner: nn.Module, pos_id: int, neg_id: int, scale: float = 1.0):
        super().__init__()
        object.__setattr__(self, "_owner", owner)
        self.pos_id, self.neg_id, self.scale = pos_id, neg_id, scale

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        margin = token_margin(hidden, self._owner.get_output_embeddings(), self.pos_id, self.neg_id)[:, None]
        return margin * self.scale if self.scale != 1.0 else margin


PAIRWISE_SCALE = 0.5
"""A pairwise judge's per-sequence output: half its ``logit(A) - logit(B)``. A pair is encoded as two sequences,
(chosen shown as A) and (rejected shown as A), so the difference of their outputs is the order-averaged margin
``(m(x, y) - m(y, x)) / 2`` and their sum the position bias (:func:`~rewardkit.models.judge_readout.order_averaged`):
every pairwise path (Bradley-Terry and log-exp training, packed pairs, evaluation) then trains and measures the
order-averaged margin without a branch of its own."""


def is_pairwise(settings: dict | None) -> bool:
    return bool(settings) and settings.get("mode") == "pairwise"


def judge_head(owner: nn.Module, settings: dict) -> JudgeHead:
    """The judge head of a model whose ``rewardkit.json`` judge settings are ``settings``."""
    scale = PAIRWISE_SCALE if is_pairwise(settings) else 1.0
    return JudgeHead(owner, settings["pos_token_id"], settings["neg_token_id"], scale)


def judge_settings(cfg: JudgeConfig, tokenizer) -> dict:
    """What ``rewardkit.json`` records for a judge: the template settings, the resolved style and token ids,
    and the template's last token (the score token)."""
    pos, neg = answer_token_ids(cfg, tokenizer, "pointwise" if cfg.mode == "pointwise" else "pairwise")
    probe = pointwise_pieces(cfg, tokenizer, "Hi", "Hello") if cfg.mode == "pointwise" else \
        pairwise_pieces(cfg, tokenizer, "Hi", "Hello", "Hey")
    last = tokenizer(pieces_text(probe), add_special_tokens=False)["input_ids"][-1]
    return {**{k: getattr(cfg, k) for k in JudgeConfig.__dataclass_fields__}, "resolved_style":
            resolve_style(cfg, tokenizer), "pos_token_id": pos, "neg_token_id": neg, "score_token_id": last,
            # vLLM's classifier_from_token takes vocabulary pieces (convert_tokens_to_ids), e.g. "ĠYes" for " Yes"
            "pos_piece": tokenizer.convert_ids_to_tokens(pos), "neg_piece": tokenizer.convert_ids_to_tokens(neg)}


def judge_config_from_meta(settings: dict) -> JudgeConfig:
    return JudgeConfig(**{k: v for k, v in settings.items() if k in JudgeConfig.__dataclass_fields__})


def judge_encoders(tokenizer, settings: dict, max_length: int, truncation: str) -> tuple[JudgeRenderer, JudgeEncoder]:
    renderer = JudgeRenderer(tokenizer, judge_config_from_meta(settings))
    encoder = JudgeEncoder(tokenizer, max_length, truncation)
    encoder.score_token_id = settings["score_token_id"]
    return renderer, encoder


def load_causal_lm(path: str, gguf: str | None, trust_remote_code: bool, directory_load: bool = False):
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": torch.float32, "trust_remote_code": trust_remote_code}
    if gguf:
        kwargs["gguf_file"] = gguf
    if directory_load:
        kwargs["use_safetensors"] = True
    return AutoModelForCausalLM.from_pretrained(path, **kwargs)


def apply_judge_lora(hf, lora_cfg):
    """LoRA adapters on a causal LM; nothing else is trained (the judge has no head of its own)."""
    from peft import LoraConfig, TaskType, get_peft_model

    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=lora_cfg.r, lora_alpha=lora_cfg.alpha,
                        lora_dropout=lora_cfg.dropout, target_modules=lora_cfg.target_modules)
    model = get_peft_model(hf, config)
    log.info("LoRA judge: %d trainable parameters", sum(p.numel() for p in model.parameters() if p.requires_grad))
    return model


def vllm_command(model_dir: str, settings: dict, architecture: str) -> str:
    """The vLLM command that serves an exported pointwise judge as a one-label classifier.

    With ``method: from_2_way_softmax`` vLLM loads the causal LM as a sequence classifier whose one weight row is
    ``W[tokens[1]] - W[tokens[0]]`` (tokens given as vocabulary pieces: ``[no, yes]``), read at the last token:
    the logit is rewardkit's reward ``logit(yes) - logit(no)``; its classify output is that logit's sigmoid, so
    ``reward = log(p / (1 - p))``. Requests send the judge text (what :func:`judge_text` renders). A pairwise
    judge is served the same way with tokens ``[B, A]``: ``log(p / (1 - p))`` is ``m = logit(A) - logit(B)`` of
    one order; the order-averaged margin is ``(m(x, y) - m(y, x)) / 2``."""
    seq_cls = architecture.replace("ForCausalLM", "ForSequenceClassification")
    overrides = json.dumps({"architectures": [seq_cls], "classifier_from_token": [settings["neg_piece"],
                                                                                  settings["pos_piece"]],
                            "method": "from_2_way_softmax"}, ensure_ascii=False)
    return f"vllm serve {model_dir} --runner pooling --convert classify --hf-overrides '{overrides}'"


def judge_text(tokenizer, settings: dict, prompt, response, response_b=None) -> str:
    """The judge text as a text-in server (vLLM) must receive it: of one (prompt, response) for a pointwise
    judge; for a pairwise judge of (prompt, ``response`` shown as A, ``response_b`` shown as B): send both
    orders, ``judge_text(t, s, p, x, y)`` and ``judge_text(t, s, p, y, x)``, and average (the model card says how)."""
    cfg = judge_config_from_meta(settings)
    if is_pairwise(settings):
        if response_b is None:
            raise ValueError("a pairwise judge's text shows two responses: pass response_b")
        return pieces_text(pairwise_pieces(cfg, tokenizer, prompt, response, response_b))
    return pieces_text(pointwise_pieces(cfg, tokenizer, prompt, response))


class PairwiseJudge:
    """The pairwise judge read-out: both replies in one context, ``logit(A) - logit(B)`` in both orders.

    ``compare`` returns the order-averaged margin of ``a`` over ``b`` (antisymmetric: swapping the replies
    negates it exactly) and the position bias. ``loss`` is Bradley-Terry on that margin (chosen as ``a``), the
    training objective of benchmarks/judge_data_efficiency.py. ``hf`` is any causal LM (LoRA-wrapped or not).
    """

    def __init__(self, hf, tokenizer, cfg: JudgeConfig | None = None, max_length: int = 512):
        from ..data.judge_template import answer_token_ids

        self.hf, self.tokenizer, self.cfg = hf, tokenizer, cfg or JudgeConfig(mode="pairwise")
        self.max_length = max_length
        self.a_id, self.b_id = answer_token_ids(self.cfg, tokenizer, "pairwise")

    def _ids(self, prompt, first, second) -> list[int]:
        from ..data.judge_template import pairwise_pieces, tokenize_pieces

        return tokenize_pieces(self.tokenizer, pairwise_pieces(self.cfg, self.tokenizer, prompt, first, second),
                               self.max_length).input_ids

    def margins(self, prompts, a, b) -> tuple[torch.Tensor, torch.Tensor]:
        """(m(a shown as A), m(b shown as A)), each ``[N]`` fp32, one padded forward for both orders."""
        rows = [self._ids(p, x, y) for p, x, y in zip(prompts, a, b, strict=True)] + \
               [self._ids(p, y, x) for p, x, y in zip(prompts, a, b, strict=True)]
        width = max(map(len, rows))
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
        base = self.hf.get_base_model() if hasattr(self.hf, "get_base_model") else self.hf
        hidden = base.base_model(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
        last = hidden[torch.arange(len(rows)), mask.sum(1) - 1]
        m = token_margin(last, base.get_output_embeddings(), self.a_id, self.b_id)
        return m[:len(prompts)], m[len(prompts):]

    def compare(self, prompts, a, b):
        """:class:`~rewardkit.models.judge_readout.PairwiseReadout` of ``a`` over ``b`` for each prompt."""
        from .judge_readout import order_averaged

        with torch.no_grad():
            return order_averaged(*self.margins(prompts, a, b))

    def loss(self, prompts, chosen, rejected) -> torch.Tensor:
        from ..losses import bradley_terry
        from .judge_readout import order_averaged

        margin = order_averaged(*self.margins(prompts, chosen, rejected)).margin
        return bradley_terry(margin, torch.zeros_like(margin))
