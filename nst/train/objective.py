"""The perceptual loss of feed-forward training (Johnson et al. 2016), from nst.losses terms.

For a batch of content crops x and the network's output y = f(x), on the loss backbone phi:

    L_content = 1/|L_c| sum_{l in L_c} mean (phi_l(y) - phi_l(x))^2          (content_loss)
    L_style   = 1/|L_s| sum_{l in L_s} mean_n mean_ij (G(phi_l(y_n)) - A_l)_ij^2
                (style_layer_loss; A_l = G(phi_l(s)), the style image's Gram, computed once
                with the style image resized to style_size, or the crop size)
    L_tv      = total_variation(y)
    L         = alpha * L_content + beta * L_style + gamma * L_tv

Every term is a mean over the batch items, so the mean of per-process losses over equal
per-process batches is the loss of the whole batch (what DistributedDataParallel's gradient
averaging assumes).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nst.backbones import get_backbone
from nst.backbones.base import Backbone
from nst.losses import content_loss, gram, style_layer_loss, total_variation, weighted_sum
from nst.train.config import TrainConfig
from nst.train.losses import LOSSES

TERMS = ("content", "style", "tv", "total")


@LOSSES.register("perceptual")
class PerceptualLoss:
    """The weighted loss of the module docstring for one style image and one backbone."""

    terms = TERMS

    @classmethod
    def build(
        cls, config: TrainConfig, net: nn.Module, device: torch.device, style: torch.Tensor | None
    ) -> PerceptualLoss:
        """The loss of a per-style network: `style` is its style image."""
        if style is None:
            raise ValueError("the perceptual loss needs the style image")
        backbone = get_backbone(config.backbone, weights=config.weights).to(device)
        return cls(config, backbone, style.to(device))

    def __init__(self, config: TrainConfig, backbone: Backbone, style: torch.Tensor):
        backbone.check_layers(config.content_layers + config.style_layers)
        self.config, self.backbone = config, backbone
        self.content_layers, self.style_layers = config.content_layers, config.style_layers
        self.layers = tuple(dict.fromkeys(self.content_layers + self.style_layers))
        backbone.check_input(style, self.style_layers, "style image")
        with torch.no_grad():
            feats = backbone.features(style.float(), self.style_layers)
            self.style_grams = {layer: gram(feats[layer]).float() for layer in self.style_layers}

    def __call__(
        self, net: Any, content: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The output of `net` on `content` and its terms (the network's style is built in)."""
        output = net(content)
        return output, self.terms_of(output, content)

    def terms_of(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """{content, style, tv, total} for network output `output` of content batch `content`."""
        c, n = self.config, output.shape[0]
        with torch.no_grad():
            targets = self.backbone.features(content, self.content_layers)
        feats = self.backbone.features(output, self.layers)
        lc = weighted_sum(
            {
                layer: content_loss(feats[layer].float(), targets[layer].float())
                for layer in self.content_layers
            }
        )
        ls = weighted_sum(
            {
                layer: style_layer_loss(feats[layer], self.style_grams[layer].expand(n, -1, -1))
                for layer in self.style_layers
            }
        )
        ltv = total_variation(output.float(), c.tv)
        total = c.alpha * lc + c.beta * ls + c.gamma * ltv
        return {"content": lc, "style": ls, "tv": ltv, "total": total}
