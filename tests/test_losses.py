import pytest
import torch

from nst.backbones import get_backbone
from nst.config import TransferConfig
from nst.losses import (
    content_loss,
    gram,
    style_layer_loss,
    total_variation,
    weighted_sum,
)
from nst.optimize.loss import TransferLoss


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


@pytest.mark.parametrize("tv", ["l1", "l2"])
def test_the_objective_is_alpha_content_plus_beta_style_plus_gamma_tv(tv):
    """What the optimiser minimises (nst.optimize.loss.TransferLoss): each term is the loss
    function of its features against fixed targets, and the total their weighted sum."""
    cfg = TransferConfig(
        weights="random",
        content_layers=("relu2_1",),
        style_layers=("relu1_1", "relu2_1"),
        alpha=2.0,
        beta=300.0,
        gamma=7.0,
        tv=tv,
    )
    net = get_backbone("vgg19", weights="random")
    gen = torch.Generator().manual_seed(0)
    content, style, x = (torch.rand(1, 3, 24, 24, generator=gen) for _ in range(3))
    terms = TransferLoss(net, cfg, content, style, torch.float32)(x)
    layers = ["relu1_1", "relu2_1"]
    with torch.no_grad():
        fx, fc, fs = (net.features(t, layers) for t in (x, content, style))
    expected = {
        "content": content_loss(fx["relu2_1"], fc["relu2_1"]),
        "style": (
            style_layer_loss(fx["relu1_1"], gram(fs["relu1_1"]))
            + style_layer_loss(fx["relu2_1"], gram(fs["relu2_1"]))
        )
        / 2,
        "tv": total_variation(x, tv),
    }
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5), name
    total = 2.0 * terms["content"] + 300.0 * terms["style"] + 7.0 * terms["tv"]
    assert terms["total"].item() == pytest.approx(total.item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(
        2.0 * expected["content"].item()
        + 300.0 * expected["style"].item()
        + 7.0 * expected["tv"].item(),
        rel=1e-5,
    )
    # gamma 0: the TV term is reported (nst.perceptual) and contributes nothing
    no_tv = TransferLoss(net, cfg.replace(gamma=0.0), content, style, torch.float32)(x)
    assert no_tv["tv"].item() == pytest.approx(expected["tv"].item(), rel=1e-6)
    assert no_tv["total"].item() == (2.0 * no_tv["content"] + 300.0 * no_tv["style"]).item()
