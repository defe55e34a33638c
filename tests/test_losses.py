import pytest
import torch

from nst.losses import (
    content_loss,
    gram,
    style_layer_loss,
    total_loss,
    total_variation,
    weighted_sum,
)


def test_gram_by_hand():
    # two channels, two positions: F = [[1, 2], [3, 4]]
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    raw = torch.tensor([[5.0, 11.0], [11.0, 25.0]])
    assert torch.equal(gram(f, normalize=False)[0], raw)
    assert torch.allclose(gram(f)[0], raw / 4)  # C*H*W = 2*1*2


def test_content_loss_is_mean_squared_difference():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    assert content_loss(a, b).item() == pytest.approx((1 + 4 + 9 + 16) / 4)


def test_style_layer_loss_both_normalisations():
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)
    target = torch.zeros(1, 2, 2)
    # gram: mean over the 4 entries of (G/4)^2
    expected = ((torch.tensor([5.0, 11.0, 11.0, 25.0]) / 4) ** 2).mean().item()
    assert style_layer_loss(f, target).item() == pytest.approx(expected)
    # gatys: sum of raw squared differences / (4 C^2 M^2) with C=2, M=2
    expected_gatys = (25 + 121 + 121 + 625) / (4 * 4 * 4)
    assert style_layer_loss(f, target, gatys=True).item() == pytest.approx(expected_gatys)


def test_style_loss_zero_for_own_gram():
    f = torch.randn(1, 3, 4, 4)
    assert style_layer_loss(f, gram(f)).item() == 0.0


def test_weighted_sum_default_is_mean():
    terms = {"a": torch.tensor(2.0), "b": torch.tensor(4.0)}
    assert weighted_sum(terms).item() == 3.0
    assert weighted_sum(terms, (1.0, 0.5)).item() == 4.0


def test_total_variation_by_hand_with_no_border_term():
    x = torch.tensor([[0.0, 1.0], [2.0, 4.0]]).reshape(1, 1, 2, 2)
    # vertical diffs: 2, 3; horizontal diffs: 1, 2 — no wrap-around or padding at the borders
    assert total_variation(x, "l1").item() == pytest.approx((2 + 3) / 2 + (1 + 2) / 2)
    assert total_variation(x, "l2").item() == pytest.approx((4 + 9) / 2 + (1 + 4) / 2)
    assert total_variation(torch.ones(1, 3, 5, 7), "l1").item() == 0.0
    with pytest.raises(ValueError, match="l1 or l2"):
        total_variation(x, "l3")


def test_total_loss_weights():
    assert (
        total_loss(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), 1, 10, 100).item()
        == 321
    )
