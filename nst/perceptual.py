"""The perceptual loss: one definition for image optimisation (nst.optimize: the pixels of x
are optimised) and for training a per-style network (nst.train: x = f(c) for a batch of
photos c). On the loss backbone's features phi_l, with T the feature transform:

    L_content = sum_{l in L_c} w^c_l  mean (T phi_l(x) - T phi_l(c))^2        content_loss
    L_style   = sum_{l in L_s} w^s_l  E_l(T phi_l(x), A_l)                    style_layer_loss
    L_tv      = total_variation(x)
    L         = alpha L_content + beta L_style + gamma L_tv

w the layer weights after their normalisation (nst.losses.normalize_layer_weights; none given:
1/L each), A_l the style target: the style image's normalised Gram (several styles: their
blend, nst.optimize.controls.blend), under Gatys normalisation rescaled to the raw Gram at x's
size (nst.losses.gatys_target), and E_l the mean squared Gram difference (gram) or Gatys et
al.'s 1/(4 N^2 M^2)-scaled sum (gatys). Every symbol is a field of the config's loss part
(nst.parts.LossPart), with one meaning in `nst transfer`, `nst train` and the studies.

L_tv is computed (and reported) whatever gamma is; it enters the total only through gamma.
Every term is a mean over the batch items, so the mean of per-process losses over equal
per-process batches is the loss of the whole batch (what DistributedDataParallel assumes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nst.backbones import get_backbone
from nst.backbones.base import Backbone
from nst.losses import (
    content_loss,
    gatys_target,
    gram,
    mean_std,
    normalize_layer_weights,
    positions,
    relaxed_emd,
    self_similarity_loss,
    sliced_wasserstein,
    style_layer_loss,
    total_variation,
    transform_features,
    weighted_sum,
)
from nst.parts import CONTENT_LOSSES, STYLE_LOSSES

TERMS = ("content", "style", "tv", "total")
Features = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StyleLoss:
    """A style representation: `target(F_s, loss)` of the style's features, once and without
    gradient (N x . x C, channels last: a statistic or a set of positions), and `loss(F,
    target, loss)` of a result's features F against it (`loss`: the PerceptualLoss, for its
    config and its seeded position samples). `blends`: targets of several styles mix by
    weight (statistics do; a set of positions does not)."""

    target: Callable[[torch.Tensor, Any], torch.Tensor]
    loss: Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
    blends: bool = True


def _gram_loss(f: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
    gatys = ctx.config.style_normalization == "gatys"
    target = gatys_target(t, f) if gatys else t
    return style_layer_loss(f, target.expand(f.shape[0], -1, -1), gatys)


def _moments(f: torch.Tensor, ctx: Any = None) -> torch.Tensor:
    """N x 2 x C: each channel's mean and standard deviation over positions."""
    mu, sigma = mean_std(f.float())
    n, c = mu.shape[:2]
    return torch.cat([mu.view(n, 1, c), sigma.view(n, 1, c)], dim=1)


def _moments_loss(f: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
    """nst.losses.moment_loss against a precomputed target."""
    d = _moments(f) - t.expand(f.shape[0], -1, -1)
    return (d[:, 0] ** 2).mean() + (d[:, 1] ** 2).mean()


def _sliced_wasserstein(f: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
    cfg = ctx.config
    return sliced_wasserstein(f, t.expand(f.shape[0], -1, -1), cfg.projections, cfg.seed)


def _relaxed_emd(f: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
    (sample,) = ctx.sample(f)
    return relaxed_emd(sample, t.expand(f.shape[0], -1, -1))


for _name, _loss in {
    "gram": StyleLoss(lambda f, ctx: gram(f.float()), _gram_loss),
    "moments": StyleLoss(_moments, _moments_loss),
    "sliced_wasserstein": StyleLoss(
        lambda f, ctx: positions(f.float()), _sliced_wasserstein, blends=False
    ),
    "relaxed_emd": StyleLoss(lambda f, ctx: ctx.sample(f.float())[0], _relaxed_emd, blends=False),
}.items():
    STYLE_LOSSES.add(_name, _loss)


def _self_similarity(f: torch.Tensor, t: torch.Tensor, ctx: Any) -> torch.Tensor:
    fx, fc = ctx.sample(f, t)  # the same positions of both
    return self_similarity_loss(fx, fc)


CONTENT_LOSSES.add("mse", lambda f, t, ctx: content_loss(f.float(), t))
CONTENT_LOSSES.add("self_similarity", _self_similarity)


def loss_backbone(config: Any) -> Backbone:
    """The loss network of a config's loss part: its backbone, weights and pooling, random
    weights seeded with the run's seed."""
    return get_backbone(
        config.backbone, weights=config.weights, pooling=config.pooling, seed=config.seed
    )


class PerceptualLoss:
    """The loss of the module docstring on `backbone`, its settings the config's loss part."""

    terms = TERMS

    def __init__(self, backbone: Backbone, config: Any, dtype: torch.dtype = torch.float32):
        backbone.check_layers(config.content_layers + config.style_layers)
        self.backbone, self.config, self.dtype = backbone, config, dtype
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        self.style_loss: StyleLoss = STYLE_LOSSES.get(config.style_loss)
        self.content_loss = CONTENT_LOSSES.get(config.content_loss)
        # position samples (relaxed_emd, self_similarity): a new seeded draw per call, as
        # STROTSS draws new positions every step, the same sequence in every run of one seed;
        # after new_sample(), one draw per step instead (image optimisation)
        self._draws = torch.Generator().manual_seed(int(config.seed))
        self._step_seed: int | None = None
        self._gen = self._draws

    def features(self, x: torch.Tensor, layers: tuple[str, ...] = ()) -> Features:
        """T phi_l(x) of `layers` (default: every loss layer), in the compute dtype: in bf16
        mode the Gram products run in bf16 too; every loss is reduced in fp32."""
        cfg = self.config
        feats = self.backbone.features(x.to(self.dtype), list(layers or self.layers))
        return transform_features(feats, cfg.feature_transform, cfg.feature_temperature)

    def content_targets(self, feats: Features) -> Features:
        return {layer: feats[layer].float() for layer in self.config.content_layers}

    def style_target(self, feats: torch.Tensor) -> torch.Tensor:
        """The style loss's target of one layer's features of a style image (no gradient)."""
        with torch.no_grad():
            return self.style_loss.target(feats, self)

    def style_targets(self, style: torch.Tensor) -> Features:
        """The targets A_l of one style image (several styles are blended by
        nst.optimize.controls.blend.blended_targets, with style_target)."""
        with torch.no_grad():
            feats = self.features(style, self.config.style_layers)
        return {layer: self.style_target(feats[layer]) for layer in self.config.style_layers}

    def new_sample(self) -> None:
        """Fix the positions until the next call: every evaluation until then (L-BFGS's line
        search evaluates several times per step) sees the same sample, so one step minimises
        one function. Image optimisation calls it once per step."""
        self._step_seed = int(torch.randint(2**62, (1,), generator=self._draws))

    def sample(self, *maps: torch.Tensor) -> list[torch.Tensor]:
        """The same seeded sample of at most max_positions positions of each map (N x M x C
        sets; all of them when there are fewer)."""
        sets = [positions(m) for m in maps]
        m, count = sets[0].shape[1], int(self.config.max_positions)
        if m <= count:
            return sets
        index = torch.randperm(m, generator=self._gen)[:count].to(sets[0].device)
        return [s[:, index] for s in sets]

    def __call__(
        self,
        feats: Features,
        content_targets: Features,
        style_targets: Features,
        image: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """{content, style, tv, total} of the candidate `image` whose features are `feats`."""
        cfg = self.config
        if self._step_seed is not None:  # the step's sample, the same for each evaluation
            self._gen = torch.Generator().manual_seed(self._step_seed)
        content = weighted_sum(
            {k: self.content_loss(feats[k], t, self) for k, t in content_targets.items()},
            self.layer_weights(cfg.content_layer_weights, content_targets),
        )
        style = weighted_sum(
            {k: self.style_loss.loss(feats[k], t, self) for k, t in style_targets.items()},
            self.layer_weights(cfg.style_layer_weights, style_targets),
        )
        tv = total_variation(image.float(), cfg.tv)
        total = cfg.alpha * content + cfg.beta * style + cfg.gamma * tv
        return {"content": content, "style": style, "tv": tv, "total": total}

    def layer_weights(self, weights: tuple[float, ...], targets: Features) -> tuple[float, ...]:
        """w_l after the normalisation, from each target's channel count C_l."""
        channels = tuple(t.shape[1] if t.ndim == 4 else t.shape[-1] for t in targets.values())
        return normalize_layer_weights(weights, channels, self.config.layer_weight_normalization)
