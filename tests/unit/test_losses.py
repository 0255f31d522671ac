import math

import pytest
import torch

from rewardkit.losses import (
    bradley_terry,
    cross_entropy,
    get_loss,
    get_pairwise_loss,
    l2_scores,
    log_exp,
    mse,
    multi_attribute_mse,
    ranking,
    reward_centering,
    rmse,
    token_level_pairwise,
)


def test_bradley_terry_matches_hand_values():
    c = torch.tensor([1.0, 0.0, -2.0])
    r = torch.tensor([0.0, 0.0, 1.0])
    # -log(sigmoid(1)) = 0.313262, -log(sigmoid(0)) = 0.693147, -log(sigmoid(-3)) = 3.048587
    expected = (0.3132617 + 0.6931472 + 3.0485874) / 3
    assert abs(bradley_terry(c, r).item() - expected) < 1e-6


def test_margin_is_subtracted_from_the_difference():
    c, r = torch.tensor([2.0]), torch.tensor([0.0])
    assert abs(bradley_terry(c, r, torch.tensor([2.0])).item() - math.log(2)) < 1e-6


def test_log_exp_equals_bradley_terry_and_stays_finite_where_the_naive_form_overflows():
    c = torch.tensor([0.0, -100.0, 3.0])
    r = torch.tensor([0.0, 100.0, 1.0])
    naive = torch.log(1 + torch.exp(r - c)).mean()
    assert math.isinf(naive.item())  # exp(200) overflows fp32
    ours = log_exp(c, r)
    assert math.isfinite(ours.item())
    assert abs(ours.item() - (math.log(2) + 200.0 + math.log1p(math.exp(-2))) / 3) < 1e-4
    assert torch.allclose(ours, bradley_terry(c, r))


def test_registry_rejects_unknown_names():
    try:
        get_pairwise_loss("hinge-ish")
    except ValueError as e:
        assert "known: bradley_terry, log_exp" in str(e)
    else:
        raise AssertionError("expected a ValueError")


# ---------------------------------------------------------------------------------------------------------
# token-level pairwise



def reference_token_level(chosen, rejected):
    """Plain per-example loop. ``chosen``/``rejected``: lists of (ids, values, response_start) of real tokens."""
    losses = []
    for (ic, vc, sc), (ir, vr, sr) in zip(chosen, rejected, strict=True):
        n = max(len(ic), len(ir))
        d = n
        for p in range(n):
            a = ic[p] if p < len(ic) else None
            b = ir[p] if p < len(ir) else None
            if a != b:
                d = p
                break
        terms = []
        for p in range(max(d, min(sc, sr)), n):
            x = vc[min(p, len(vc) - 1)] - vr[min(p, len(vr) - 1)]
            terms.append(-torch.nn.functional.logsigmoid(torch.tensor(x, dtype=torch.float64)).item())
        if terms:
            losses.append(sum(terms) / len(terms))
    return sum(losses) / len(losses) if losses else 0.0


def pad_rows(rows, side, width):
    n = len(rows)
    ids = torch.full((n, width), 7, dtype=torch.long)  # pad id 7 also occurs as a real token: masks decide
    vals = torch.randn(n, width)  # garbage on padding: it must not matter
    mask = torch.zeros((n, width), dtype=torch.long)
    for i, (ri, rv, _) in enumerate(rows):
        s = 0 if side == "right" else width - len(ri)
        ids[i, s:s + len(ri)] = torch.tensor(ri)
        vals[i, s:s + len(ri)] = torch.tensor(rv)
        mask[i, s:s + len(ri)] = 1
    return ids, vals, mask


def random_pair_batch(gen, b):
    chosen, rejected = [], []
    cases = ["identical", "chosen_prefix", "rejected_prefix", "different_lengths", "same_length", "diverge_at_start"]
    for k in range(b):
        case = cases[k % len(cases)]
        prompt = torch.randint(0, 9, (int(torch.randint(1, 5, (1,), generator=gen)),), generator=gen).tolist()
        a = torch.randint(0, 9, (int(torch.randint(1, 8, (1,), generator=gen)),), generator=gen).tolist()
        if case == "identical":
            bb = list(a)
        elif case == "chosen_prefix":
            a, bb = a, a + torch.randint(0, 9, (3,), generator=gen).tolist()
        elif case == "rejected_prefix":
            bb, a = a, a + torch.randint(0, 9, (2,), generator=gen).tolist()
        elif case == "same_length":
            bb = [(t + 1) % 9 if i == len(a) // 2 else t for i, t in enumerate(a)]
        else:
            bb = torch.randint(0, 9, (int(torch.randint(1, 8, (1,), generator=gen)),), generator=gen).tolist()
        if case == "diverge_at_start":
            prompt = []
        ci, ri = prompt + a, prompt + bb
        chosen.append((ci, torch.randn(len(ci), generator=gen).tolist(), len(prompt)))
        rejected.append((ri, torch.randn(len(ri), generator=gen).tolist(), len(prompt)))
    return chosen, rejected


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("seed", range(5))
def test_token_level_pairwise_equals_the_per_example_reference_loop(side, seed):
    gen = torch.Generator().manual_seed(seed)
    chosen, rejected = random_pair_batch(gen, 13)
    width = max(len(x[0]) for x in chosen + rejected) + 2
    ic, vc, mc = pad_rows(chosen, side, width)
    ir, vr, mr = pad_rows(rejected, side, width)
    got = token_level_pairwise(vc, vr, ic, ir, mc, mr, torch.tensor([x[2] for x in chosen]),
                               torch.tensor([x[2] for x in rejected]))
    assert abs(got.item() - reference_token_level(chosen, rejected)) < 1e-6


def test_token_level_pairwise_is_independent_of_padding_side_and_width():
    gen = torch.Generator().manual_seed(11)
    chosen, rejected = random_pair_batch(gen, 12)
    rs_c, rs_r = torch.tensor([x[2] for x in chosen]), torch.tensor([x[2] for x in rejected])
    width = max(len(x[0]) for x in chosen + rejected)
    out = []
    for side, w in (("right", width), ("left", width), ("right", width + 5), ("left", width + 3)):
        ic, vc, mc = pad_rows(chosen, side, w)
        ir, vr, mr = pad_rows(rejected, side, w)
        out.append(token_level_pairwise(vc, vr, ic, ir, mc, mr, rs_c, rs_r).item())
    assert max(out) - min(out) < 1e-6


def test_token_level_pairwise_hand_worked_prefix_and_identical_pairs():
    # chosen = [1, 2, 3], rejected = [1, 2, 3, 4, 5]: they differ from position 3, compared to position 4;
    # past the chosen end its last value (0.5) stands in. Prompt = 1 token. Second pair identical: left out.
    vc = torch.tensor([[9.0, 9.0, 0.5, 0, 0], [1.0, 2.0, 0, 0, 0]])
    vr = torch.tensor([[9.0, 9.0, 9.0, 0.5, -1.5], [1.0, 2.0, 0, 0, 0]])
    ic = torch.tensor([[1, 2, 3, 0, 0], [4, 5, 0, 0, 0]])
    ir = torch.tensor([[1, 2, 3, 4, 5], [4, 5, 0, 0, 0]])
    mc = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    mr = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    start = torch.tensor([1, 1])
    expected = (-math.log(1 / (1 + math.exp(-0.0))) - math.log(1 / (1 + math.exp(-2.0)))) / 2
    got = token_level_pairwise(vc, vr, ic, ir, mc, mr, start, start)
    assert abs(got.item() - expected) < 1e-6


def test_token_level_pairwise_of_only_identical_pairs_is_zero_and_differentiable():
    v = torch.randn(2, 4, requires_grad=True)
    ids = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    m = torch.ones(2, 4, dtype=torch.long)
    loss = token_level_pairwise(v, v, ids, ids, m, m, torch.tensor([1, 1]), torch.tensor([1, 1]))
    loss.backward()
    assert loss.item() == 0.0


# ---------------------------------------------------------------------------------------------------------
# classification, regression, ranking, regularizers


def test_cross_entropy_with_class_weights_matches_hand_values():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    labels = torch.tensor([1, 1, 0])
    l0 = math.log(2)
    l1 = -math.log(math.exp(0) / (math.exp(2) + 1))  # log(1 + e^2)
    l2 = -math.log(1 / (1 + math.e))  # log(1 + e)
    assert abs(cross_entropy(logits, labels).item() - (l0 + l1 + l2) / 3) < 1e-6
    w = torch.tensor([3.0, 1.0])
    assert abs(cross_entropy(logits, labels, w).item() - (l0 + l1 + 3 * l2) / 5) < 1e-6


def test_mse_and_rmse_match_hand_values_and_rmse_has_a_finite_gradient_at_a_perfect_fit():
    p, y = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 0.0, 1.0])
    assert abs(mse(p, y).item() - 13 / 3) < 1e-6
    assert abs(rmse(p, y).item() - math.sqrt(13 / 3)) < 1e-6
    q = y.clone().requires_grad_(True)
    rmse(q, y).backward()
    assert torch.isfinite(q.grad).all()


def test_ranking_weights_each_prompt_once_and_skips_ties():
    # prompt 1: K=3 ranks 0,1,2 -> 3 pairs; prompt 2: K=2 with a tie and a padded slot -> no pair: left out
    r = torch.tensor([[2.0, 1.0, 0.0], [0.3, 0.3, 99.0]])
    ranks = torch.tensor([[0, 1, 2], [1, 1, 0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    sp = lambda x: -math.log(1 / (1 + math.exp(-x)))  # noqa: E731
    expected = (sp(1.0) + sp(2.0) + sp(1.0)) / 3
    assert abs(ranking(r, ranks, valid).item() - expected) < 1e-6
    # prompt 2 with "soft" ties: one tied pair at d = 0 -> log 2; mean over the two prompts
    assert abs(ranking(r, ranks, valid, ties="soft").item() - (expected + math.log(2)) / 2) < 1e-6


def test_ranking_with_k_two_equals_bradley_terry():
    c, rj = torch.randn(6), torch.randn(6)
    r = torch.stack([rj, c], 1)  # the better response second: order must not matter
    ranks = torch.tensor([[1, 0]] * 6)
    got = ranking(r, ranks, torch.ones(6, 2, dtype=torch.bool))
    torch.testing.assert_close(got, bradley_terry(c, rj))


def test_ranking_rejects_unknown_tie_policy():
    with pytest.raises(ValueError, match="ties"):
        ranking(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.bool), ties="x")


def test_regularizers_match_hand_values():
    c, r = torch.tensor([1.0, -2.0]), torch.tensor([0.0, 1.0])
    assert abs(reward_centering(c, r, 0.1).item() - 0.1 * (1 + 1) / 2) < 1e-7
    assert abs(l2_scores(torch.cat([c, r]), 0.5).item() - 0.5 * (1 + 4 + 0 + 1) / 4) < 1e-7


def test_multi_attribute_mse_masks_missing_ratings_instead_of_reading_zero():
    pred = torch.tensor([[1.0, 5.0], [2.0, 0.0]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [4.0, 1.0]])
    mask = torch.tensor([[True, False], [True, True]])
    loss = multi_attribute_mse(pred, target, mask)
    assert abs(loss.item() - (1 + 4 + 1) / 3) < 1e-6
    loss.backward()
    assert pred.grad[0, 1] == 0 and torch.isfinite(pred.grad).all()


def test_every_configured_loss_name_is_in_the_registry():
    from typing import get_args, get_type_hints

    from rewardkit.config import LossConfig

    for name in get_args(get_type_hints(LossConfig)["name"]):
        assert callable(get_loss(name))
    with pytest.raises(ValueError, match="unknown loss"):
        get_loss("hinge-ish")
