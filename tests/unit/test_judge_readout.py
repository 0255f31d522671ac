"""Judge read-outs: the logit difference of two answer tokens, and the order-averaged pairwise margin."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rewardkit.models.judge_readout import (
    logit_margin,
    order_averaged,
    position_consistency,
    token_margin,
)
from tests.conftest import tiny_config


def _tiny_causal_lm(tie: bool):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config("llama", 300)
    cfg.tie_word_embeddings = tie
    return LlamaForCausalLM(cfg).eval()


def test_token_margin_equals_the_full_lm_head_logit_difference():
    for tie in (True, False):
        lm = _tiny_causal_lm(tie)
        ids = torch.randint(0, 300, (3, 7))
        with torch.no_grad():
            out = lm(input_ids=ids, output_hidden_states=True)
            full = logit_margin(out.logits[:, -1], 17, 42)
            fast = token_margin(out.hidden_states[-1][:, -1], lm.get_output_embeddings(), 17, 42)
        torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)


def test_token_margin_adds_the_lm_head_bias_difference():
    head = nn.Linear(4, 10, bias=True)
    h = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(token_margin(h, head, 3, 8), logit_margin(head(h), 3, 8))


def test_token_margin_is_fp32_from_bf16_hidden_states():
    head = nn.Linear(4, 10, bias=False)
    assert token_margin(torch.randn(2, 4).bfloat16(), head, 1, 2).dtype == torch.float32


def test_order_averaged_pairwise_margin_is_antisymmetric():
    m_xy, m_yx = torch.randn(100) * 3 + 1.5, torch.randn(100) * 3 + 1.5  # a judge that favours position A
    forward, swapped = order_averaged(m_xy, m_yx), order_averaged(m_yx, m_xy)
    assert torch.equal(swapped.margin, -forward.margin)
    assert torch.equal(swapped.position_bias, forward.position_bias)


def test_position_bias_is_what_both_orders_share_and_drops_out_of_the_margin():
    preference, bias = torch.tensor([2.0, -1.0, 0.5]), torch.tensor([3.0, 3.0, 3.0])
    ro = order_averaged(preference + bias, -preference + bias)
    torch.testing.assert_close(ro.margin, preference)
    torch.testing.assert_close(ro.position_bias, bias)


def test_position_consistency_counts_pairs_whose_winner_survives_the_swap():
    m_xy = torch.tensor([2.0, 3.0, -1.0, 1.0])
    m_yx = torch.tensor([-1.0, 2.0, 1.0, 0.5])  # pair 0 and 2 consistent; 1 and 3 always say "A"
    assert position_consistency(m_xy, m_yx) == 0.5


def test_pairwise_judge_margin_is_antisymmetric_and_matches_the_full_lm_head(tokenizer_dirs):
    from transformers import Qwen2ForCausalLM

    from rewardkit.data.judge_template import pairwise_pieces, pieces_text
    from rewardkit.models.judge import PairwiseJudge
    from tests.conftest import load_test_tokenizer

    tok = load_test_tokenizer(tokenizer_dirs, "qwen2")
    torch.manual_seed(0)
    lm = Qwen2ForCausalLM(tiny_config("qwen2", len(tok))).eval()
    judge = PairwiseJudge(lm, tok)
    prompts, a, b = ["How do I make tea?", "2+2?"], ["Steep the leaves.", "4"], ["Go away.", "It is 5, obviously."]
    ab, ba = judge.compare(prompts, a, b), judge.compare(prompts, b, a)
    torch.testing.assert_close(ba.margin, -ab.margin)
    torch.testing.assert_close(ba.position_bias, ab.position_bias)
    # the first order's margin is logit(A) - logit(B) of the plain LM at the end of the A/B judge text
    ids = tok(pieces_text(pairwise_pieces(judge.cfg, tok, prompts[0], a[0], b[0])), return_tensors="pt").input_ids
    with torch.no_grad():
        z = lm(ids).logits[0, -1]
        m_ab, _ = judge.margins(prompts, a, b)
    assert float(m_ab[0]) == pytest.approx(float(z[judge.a_id] - z[judge.b_id]), abs=1e-4)
    loss = judge.loss(prompts, a, b)
    loss.backward()
    assert lm.model.layers[0].self_attn.q_proj.weight.grad is not None
