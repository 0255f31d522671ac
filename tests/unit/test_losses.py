import math

import torch

from rewardkit.losses import bradley_terry, get_pairwise_loss, log_exp


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
