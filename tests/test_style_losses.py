"""The distribution-matching style losses and STROTSS's content loss on constructed inputs:
what each is zero for, what it ignores, and exact transport computed by brute force."""

from __future__ import annotations

import itertools

import pytest
import torch

from nst import NstError
from nst.config import TransferConfig
from nst.losses import (
    cosine_cost,
    gram,
    mean_covariance_loss,
    moment_loss,
    positions,
    relaxed_emd,
    self_similarity_loss,
    sliced_wasserstein,
    style_layer_loss,
)
from nst.optimize import stylize
from nst.train.config import TrainConfig


def gram_loss(f: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return style_layer_loss(f, gram(s))


STYLE_LOSSES = {
    "gram": gram_loss,
    "moments": moment_loss,
    "sliced_wasserstein": sliced_wasserstein,
    "relaxed_emd": relaxed_emd,
    "mean_covariance": mean_covariance_loss,  # STROTSS's moment term (nst.optimize.strotss)
}


def features(seed: int, c: int = 8, h: int = 5, w: int = 6) -> torch.Tensor:
    return torch.rand(1, c, h, w, generator=torch.Generator().manual_seed(seed))


def permuted(f: torch.Tensor, seed: int) -> torch.Tensor:
    """The same set of position vectors in another spatial order."""
    n, c, h, w = f.shape
    order = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return f.reshape(n, c, -1)[..., order].reshape(n, c, h, w)


@pytest.mark.parametrize("name", STYLE_LOSSES)
def test_zero_for_the_same_distribution_and_blind_to_positions(name: str) -> None:
    loss = STYLE_LOSSES[name]
    f, s = features(0), features(1) ** 3  # another distribution (and other directions)
    assert float(loss(f, f)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(permuted(f, 3), f)) == pytest.approx(0.0, abs=1e-6)  # same set, moved
    assert float(loss(f, s)) > 1e-5
    assert float(loss(permuted(f, 5), s)) == pytest.approx(float(loss(f, s)), rel=1e-5)


@pytest.mark.parametrize("name", STYLE_LOSSES)
def test_gradients_are_finite(name: str) -> None:
    f = features(0).requires_grad_(True)
    STYLE_LOSSES[name](f, features(1)).backward()
    assert f.grad is not None and bool(torch.isfinite(f.grad).all())
    assert float(f.grad.abs().sum()) > 0


def test_sliced_wasserstein_of_one_channel_is_the_exact_w2() -> None:
    """With C = 1 every direction is +-1, so each slice is the two sets themselves: the exact
    squared 2-Wasserstein distance, the cheapest of all matchings (brute force over 6!)."""
    a, b = features(0, c=1, h=2, w=3), features(1, c=1, h=2, w=3)
    xs, ys = a.flatten().tolist(), b.flatten().tolist()
    exact = min(
        sum((x - ys[j]) ** 2 for x, j in zip(xs, perm, strict=True)) / len(xs)
        for perm in itertools.permutations(range(len(ys)))
    )
    assert float(sliced_wasserstein(a, b, projections=16)) == pytest.approx(exact, rel=1e-5)


def test_sliced_wasserstein_is_seeded_and_takes_another_size() -> None:
    f, s = features(0), features(1, h=9, w=7)
    assert torch.equal(sliced_wasserstein(f, s, seed=4), sliced_wasserstein(f, s, seed=4))
    assert float(sliced_wasserstein(f, s, seed=4)) != float(sliced_wasserstein(f, s, seed=5))
    # the same distribution at twice the size: close to zero
    tiled = f.repeat(1, 1, 2, 2)
    assert float(sliced_wasserstein(f, tiled)) < 0.05 * float(sliced_wasserstein(f, s))


def test_relaxed_emd_is_at_most_the_exact_emd() -> None:
    """Exact EMD between two uniform sets of 6 vectors = the cheapest perfect matching under
    the cosine cost (brute force over 6!); the relaxation drops a constraint, so it is lower."""
    for seed in range(5):
        a, b = features(seed, c=4, h=2, w=3), features(seed + 10, c=4, h=2, w=3)
        cost = cosine_cost(positions(a), positions(b))[0]
        exact = min(
            sum(float(cost[i, j]) for i, j in enumerate(perm)) / 6
            for perm in itertools.permutations(range(6))
        )
        relaxed = float(relaxed_emd(a, b))
        assert 0 <= relaxed <= exact + 1e-6, (seed, relaxed, exact)


def test_self_similarity_ignores_scale_and_keeps_layout() -> None:
    c = features(0)
    assert float(self_similarity_loss(c, c)) == pytest.approx(0.0, abs=1e-7)
    assert float(self_similarity_loss(3.0 * c, c)) == pytest.approx(0.0, abs=1e-6)  # scale
    shuffled = float(self_similarity_loss(permuted(c, 1), c))
    assert shuffled > 10 * float(self_similarity_loss(c + 0.01 * features(2), c))
    x = c.clone().requires_grad_(True)
    self_similarity_loss(x + 0.1 * features(3), c).backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def small_config(**changes: object) -> TransferConfig:
    """Lite0 (pretrained everywhere), 32 px, 20 Adam steps of image optimisation."""
    base = {
        "backbone": "efficientnet_lite0",
        "weights": "imagenet",
        "size": 32,
        "steps": 20,
        "optimizer": "adam",
        "lr": 0.2,
        "device": "cpu",
    }
    return TransferConfig.from_dict({**base, **changes})


#: relaxed EMD is max(forward, backward): near a tie of the two sides a gradient step on the
#: larger raises the other, and alone it stalls in pixel space (measured: docs/methods.md
#: "The style-losses comparison"); STROTSS adds the terms that make it work
MINIMISED = ("gram", "moments", "sliced_wasserstein")


@pytest.mark.parametrize("name", MINIMISED)
def test_transfer_minimises_each_style_loss(
    name: str, tiny_pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """alpha 0: only the chosen style term; it falls over the steps from the photo."""
    cfg = small_config(style_loss=name, alpha=0.0, beta=1.0)
    style = stylize(cfg, *tiny_pair).history["style"]
    assert style[-1] < 0.97 * style[0], style


def test_sampled_positions_are_seeded_and_fixed_within_a_step(
    tiny_pair: tuple[torch.Tensor, torch.Tensor],
) -> None:
    """max_positions below the maps' positions: the same seed gives the same image; within an
    optimisation step every evaluation sees one sample (L-BFGS's line search minimises one
    function), the next step another."""
    from nst.optimize.loss import TransferLoss
    from nst.perceptual import loss_backbone

    cfg = small_config(style_loss="relaxed_emd", max_positions=16, steps=3)
    assert torch.equal(stylize(cfg, *tiny_pair).image, stylize(cfg, *tiny_pair).image)
    objective = TransferLoss(loss_backbone(cfg), cfg, *tiny_pair, torch.float32)
    x = tiny_pair[0] * 0.5
    objective.next_step()
    first, again = float(objective(x)["style"]), float(objective(x)["style"])
    objective.next_step()
    assert first == again and float(objective(x)["style"]) != first


def test_self_similarity_content_loss_keeps_the_photos_layout(
    tiny_pair: tuple[torch.Tensor, torch.Tensor],
) -> None:
    cfg = small_config(content_loss="self_similarity", init="noise", alpha=1.0, beta=0.0)
    history = stylize(cfg, *tiny_pair).history["content"]
    assert history[-1] < 0.9 * history[0], history


def test_loss_choices_are_checked_in_one_line(tiny_pair: tuple[torch.Tensor, ...]) -> None:
    with pytest.raises(NstError, match="style_loss 'swd' is not registered; use one of gram"):
        small_config(style_loss="swd")
    with pytest.raises(NstError, match="style_normalization gatys rescales Gram matrices"):
        small_config(style_loss="moments", style_normalization="gatys")
    content, style = tiny_pair
    with pytest.raises(NstError, match="matches one style's distribution: give one style image"):
        stylize(small_config(style_loss="sliced_wasserstein"), content, [style, 1 - style])
    with pytest.raises(NstError, match="style_loss is not read by the adain loss"):
        TrainConfig(method="adain", style_loss="moments")
    assert TrainConfig(method="johnson", style_loss="sliced_wasserstein").style_loss == (
        "sliced_wasserstein"
    )
