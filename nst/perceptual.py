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

from typing import Any

import torch

from nst.backbones.base import Backbone
from nst.losses import (
    content_loss,
    gatys_target,
    gram,
    normalize_layer_weights,
    style_layer_loss,
    total_variation,
    transform_features,
    weighted_sum,
)

TERMS = ("content", "style", "tv", "total")
Features = dict[str, torch.Tensor]


class PerceptualLoss:
    """The loss of the module docstring on `backbone`, its settings the config's loss part."""

    terms = TERMS

    def __init__(self, backbone: Backbone, config: Any, dtype: torch.dtype = torch.float32):
        backbone.check_layers(config.content_layers + config.style_layers)
        self.backbone, self.config, self.dtype = backbone, config, dtype
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))
        self._weights: dict[tuple[float, ...], tuple[float, ...]] = {}

    def features(self, x: torch.Tensor, layers: tuple[str, ...] = ()) -> Features:
        """T phi_l(x) of `layers` (default: every loss layer), in the compute dtype: in bf16
        mode the Gram products run in bf16 too; every loss is reduced in fp32."""
        cfg = self.config
        feats = self.backbone.features(x.to(self.dtype), list(layers or self.layers))
        return transform_features(feats, cfg.feature_transform, cfg.feature_temperature)

    def content_targets(self, feats: Features) -> Features:
        return {layer: feats[layer].float() for layer in self.config.content_layers}

    def style_targets(self, style: torch.Tensor) -> Features:
        """The normalised Gram targets A_l of one style image, no gradient (several styles
        are blended by nst.optimize.controls.blend.blended_grams, with these features)."""
        with torch.no_grad():
            feats = self.features(style, self.config.style_layers)
        return {layer: gram(feats[layer].float()) for layer in self.config.style_layers}

    def __call__(
        self,
        feats: Features,
        content_targets: Features,
        style_targets: Features,
        image: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """{content, style, tv, total} of the candidate `image` whose features are `feats`."""
        cfg, n = self.config, image.shape[0]
        gatys = cfg.style_normalization == "gatys"
        content = weighted_sum(
            {k: content_loss(feats[k].float(), t) for k, t in content_targets.items()},
            self.layer_weights(cfg.content_layer_weights, content_targets),
        )
        style = weighted_sum(
            {
                k: style_layer_loss(
                    feats[k], (gatys_target(t, feats[k]) if gatys else t).expand(n, -1, -1), gatys
                )
                for k, t in style_targets.items()
            },
            self.layer_weights(cfg.style_layer_weights, style_targets),
        )
        tv = total_variation(image.float(), cfg.tv)
        total = cfg.alpha * content + cfg.beta * style + cfg.gamma * tv
        return {"content": content, "style": style, "tv": tv, "total": total}

    def layer_weights(self, weights: tuple[float, ...], targets: Features) -> tuple[float, ...]:
        """w_l after the normalisation, from each target's channel count C_l (cached)."""
        channels = tuple(t.shape[1] if t.ndim == 4 else t.shape[-1] for t in targets.values())
        key = (*weights, -1, *channels)
        if key not in self._weights:
            mode = self.config.layer_weight_normalization
            self._weights[key] = normalize_layer_weights(weights, channels, mode)
        return self._weights[key]
