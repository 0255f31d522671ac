"""Step losses against hand-worked values and a per-step reference loop."""

import math

import pytest
import torch

from rewardkit.losses import step_bce, step_ce, step_selection

# two solutions, three step slots: labels 1 right, 0 wrong, -1 unlabelled / padding
LABELS = torch.tensor([[1, 0, 1], [1, -1, -1]])
LOGITS = torch.tensor([[2.0, 1.0, -1.0], [0.0, 5.0, 5.0]])


def _bce(z, y):
    p = 1 / (1 + math.exp(-z))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_step_bce_is_the_mean_over_labelled_steps_worked_by_hand():
    want = (_bce(2.0, 1) + _bce(1.0, 0) + _bce(-1.0, 1) + _bce(0.0, 1)) / 4
    assert step_bce(LOGITS, LABELS).item() == pytest.approx(want, abs=1e-6)


def test_unlabelled_steps_get_no_gradient():
    z = LOGITS.clone().requires_grad_()
    step_bce(z, LABELS).backward()
    assert z.grad[1, 1] == 0 and z.grad[1, 2] == 0 and (z.grad[0] != 0).all()


@pytest.mark.parametrize("target, kept", [
    ("all", [[1, 1, 1], [1, 0, 0]]),
    ("last", [[0, 0, 1], [1, 0, 0]]),
    ("until_first_error", [[1, 1, 0], [1, 0, 0]]),
])
def test_step_selection(target, kept):
    assert step_selection(LABELS, target).long().tolist() == kept


def test_last_and_until_first_error_worked_by_hand():
    assert step_bce(LOGITS, LABELS, "last").item() == pytest.approx((_bce(-1.0, 1) + _bce(0.0, 1)) / 2, abs=1e-6)
    want = (_bce(2.0, 1) + _bce(1.0, 0) + _bce(0.0, 1)) / 3
    assert step_bce(LOGITS, LABELS, "until_first_error").item() == pytest.approx(want, abs=1e-6)


def test_class_weights_divide_by_the_summed_weights():
    w = torch.tensor([3.0, 1.0])  # [wrong, right]
    want = (_bce(2.0, 1) + 3 * _bce(1.0, 0) + _bce(-1.0, 1) + _bce(0.0, 1)) / 6
    assert step_bce(LOGITS, LABELS, class_weights=w).item() == pytest.approx(want, abs=1e-6)


def test_step_ce_equals_step_bce_on_the_logit_difference():
    torch.manual_seed(0)
    z2 = torch.randn(2, 3, 2)
    w = torch.tensor([2.0, 1.0])
    for target in ("all", "last", "until_first_error"):
        a = step_ce(z2, LABELS, target, w)
        b = step_bce(z2[..., 1] - z2[..., 0], LABELS, target, w)
        assert a.item() == pytest.approx(b.item(), abs=1e-6)


def test_step_bce_matches_a_per_step_loop():
    torch.manual_seed(1)
    z = torch.randn(5, 7) * 3
    y = torch.randint(-1, 2, (5, 7))
    terms = [_bce(float(z[n, s]), int(y[n, s])) for n in range(5) for s in range(7) if y[n, s] >= 0]
    assert step_bce(z, y).item() == pytest.approx(sum(terms) / len(terms), abs=1e-5)


def test_no_labelled_step_gives_zero_with_a_graph():
    z = torch.zeros(1, 2, requires_grad=True)
    loss = step_bce(z, torch.tensor([[-1, -1]]))
    loss.backward()
    assert loss.item() == 0.0


def test_unknown_target_is_refused():
    with pytest.raises(ValueError, match="step_target"):
        step_selection(LABELS, "first")
