"""The loss of a per-style network (Johnson et al. 2016): nst.perceptual.PerceptualLoss, the
loss image optimisation minimises, with x = f(c) the network's output for a batch of content
crops c, the content targets phi_l(c) of each batch and the style targets A_l of the one style
image (resized to style_size, or the crop size), computed once:

    L = alpha * L_content(f(c), c) + beta * L_style(f(c), A) + gamma * L_tv(f(c))

Every field of the config's loss part (layers, layer weights and their normalisation, feature
transform, Gram or Gatys normalisation, pooling) means what it means in `nst transfer`.

A network for a bank of styles (cin, nst.models.cin) has the same loss with the targets of
one style per step (StyleBankLoss).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.images import load_image
from nst.perceptual import TERMS, PerceptualLoss, loss_backbone
from nst.train.config import TrainConfig
from nst.train.losses import LOSSES


@LOSSES.register("perceptual")
class NetworkPerceptualLoss:
    """The perceptual loss of a network's output batch against its input batch."""

    terms = TERMS

    def __init__(self, config: TrainConfig, loss: PerceptualLoss, style: torch.Tensor):
        self.config, self.loss, self.backbone = config, loss, loss.backbone
        loss.backbone.check_input(style, config.style_layers, "style image")
        self.style_targets = loss.style_targets(style.float())

    @classmethod
    def build(
        cls, config: TrainConfig, net: nn.Module, device: torch.device, style: torch.Tensor | None
    ) -> NetworkPerceptualLoss:
        """The loss of a per-style network: `style` is its style image."""
        if style is None:
            raise ValueError("the perceptual loss needs the style image")
        backbone = loss_backbone(config).to(device)
        return cls(config, PerceptualLoss(backbone, config), style.to(device))

    def __call__(
        self, net: Any, content: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The output of `net` on `content` and its terms (the network's style is built in)."""
        output = net(content)
        return output, self.terms_of(output, content)

    def terms_of(self, output: torch.Tensor, content: torch.Tensor) -> dict[str, torch.Tensor]:
        """{content, style, tv, total} for network output `output` of content batch `content`."""
        with torch.no_grad():
            targets = self.loss.content_targets(
                self.loss.features(content, self.config.content_layers)
            )
        return self.loss(self.loss.features(output), targets, self.style_targets, output)


@LOSSES.register("style_bank")
class StyleBankLoss(NetworkPerceptualLoss):
    """The perceptual loss of a network for a bank of S styles (Dumoulin et al. 2017): each
    step one style s is drawn uniformly, the network runs in style s and its output is judged
    against style s's targets (A_l of each bank image, computed once). The draw uses torch's
    global generator: seeded alike on every rank (the same s everywhere) and saved with
    checkpoints, so a resumed run draws what an uninterrupted one would."""

    def __init__(self, config: TrainConfig, loss: PerceptualLoss, styles: list[torch.Tensor]):
        super().__init__(config, loss, styles[0])
        self.bank = [loss.style_targets(s.float()) for s in styles]

    @classmethod
    def build(
        cls, config: TrainConfig, net: nn.Module, device: torch.device, style: torch.Tensor | None
    ) -> StyleBankLoss:
        """The bank's images are the config's `styles` folder, in the network's order."""
        size = config.style_size or config.size
        images = [
            load_image(Path(config.styles) / name, size=size).to(device)
            for name in config.style_names
        ]
        return cls(config, PerceptualLoss(loss_backbone(config).to(device), config), images)

    def __call__(
        self, net: Any, content: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s = int(torch.randint(len(self.bank), ()))
        self.style_targets = self.bank[s]
        output = net(content, style=s)
        return output, self.terms_of(output, content)
