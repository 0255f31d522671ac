import pytest
import torch

from rewardkit.training.attribute_weights import combined_pair_metrics, fit_weight_logits


def test_fitted_weights_move_to_the_attribute_that_orders_the_pairs():
    g = torch.Generator().manual_seed(0)
    n = 200
    z_r = torch.randn(n, 3, generator=g)
    z_c = z_r + torch.randn(n, 3, generator=g) * torch.tensor([1.0, 3.0, 3.0])
    # attribute 0 decides the preference (small margins); 1 and 2 are loud noise with large mean differences
    z_c[:, 0] = z_r[:, 0] + torch.rand(n, generator=g) * 0.2 + 0.01
    z_c[:, 1] += 0.3
    uniform = combined_pair_metrics(z_c, z_r, torch.full((3,), 1 / 3))
    logits, scale = fit_weight_logits(z_c, z_r, steps=300, lr=0.05)
    fitted = combined_pair_metrics(z_c, z_r, logits.softmax(0))
    assert uniform["accuracy"] < 0.8 and fitted["accuracy"] > 0.95
    assert logits.softmax(0).argmax() == 0 and scale > 1.0


def test_fit_starts_from_uniform_weights_and_rejects_mismatched_shapes():
    z = torch.zeros(4, 3)
    logits, scale = fit_weight_logits(z, z, steps=0)
    assert logits.tolist() == [0.0, 0.0, 0.0] and scale == 1.0
    with pytest.raises(ValueError, match=r"\[n, K\]"):
        fit_weight_logits(torch.zeros(4, 3), torch.zeros(4, 2))
