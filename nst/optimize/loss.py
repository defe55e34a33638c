"""The loss of image optimisation: alpha * L_content + beta * L_style + gamma * L_tv
(nst.perceptual, the loss training uses too).

Targets (content features, style Grams) are computed once from the fitted images; `TransferLoss`
evaluates a candidate image against them. `initial_image` is where the optimisation starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.images import resize_tensor
from nst.optimize.controls.blend import as_styles, blended_targets
from nst.optimize.controls.shifts import Jitter, average_shifts, roll, shift_averaged
from nst.perceptual import PerceptualLoss


class TransferLoss:
    """Image optimisation's loss of a candidate image against fixed content and style targets:
    nst.perceptual.PerceptualLoss, with the targets computed once from the fitted images and
    the patch-grid controls (shift averaging, jitter) around its feature extraction."""

    def __init__(
        self,
        backbone: Backbone,
        config: TransferConfig,
        content: torch.Tensor,
        style: torch.Tensor | Sequence[torch.Tensor],
        dtype: torch.dtype,
    ):
        self.backbone, self.config, self.dtype = backbone, config, dtype
        self.loss = PerceptualLoss(backbone, config, dtype)
        # patch-grid artefact mitigation (nst.optimize.controls.shifts): averaged fixed shifts, per-step jitter
        self.shifts = average_shifts(config.shift_average, backbone.size_multiple)
        self.jitter, self.content = Jitter(config.jitter, config.seed), content
        self._jittered: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            self.content_targets = self.loss.content_targets(self.extract(content))
        # several styles: Gram targets mixed by config.style_blend (nst.optimize.controls.blend)
        self.style_targets = blended_targets(
            self.extract,
            as_styles(style),
            config.style_layers,
            config.style_blend,
            self.loss,
        )

    def next_step(self) -> None:
        """A new optimisation step: the next jitter shift and position sample, each fixed for
        every evaluation of the step (L-BFGS's line search sees one function)."""
        self.jitter.next_step()
        self.loss.new_sample()

    @property
    def content_weights(self) -> tuple[float, ...]:
        """The content layers' weights w_l after their normalisation."""
        return self.loss.layer_weights(self.config.content_layer_weights, self.content_targets)

    @property
    def style_weights(self) -> tuple[float, ...]:
        return self.loss.layer_weights(self.config.style_layer_weights, self.style_targets)

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return shift_averaged(self.loss.features, x, self.shifts)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shift = self.jitter.current
        feats = self.extract(roll(x, shift))
        return self.loss(feats, self.content_targets_at(shift), self.style_targets, x)

    def content_targets_at(self, shift: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Content targets for an image rolled by `shift` (jitter): from the content rolled alike."""
        if shift == (0, 0):
            return self.content_targets
        if shift not in self._jittered:
            with torch.no_grad():
                self._jittered[shift] = self.loss.content_targets(
                    self.extract(roll(self.content, shift))
                )
        return self._jittered[shift]


def initial_image(
    config: TransferConfig, content: torch.Tensor, style: torch.Tensor
) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    noise = torch.rand(content.shape, generator=gen).to(content.device)
    if config.init == "content":
        return content.clone()
    if config.init == "style":
        return resize_tensor(style, tuple(content.shape[-2:])).clone()  # type: ignore[arg-type]
    if config.init == "noise":
        return noise
    return config.init_blend * content + (1.0 - config.init_blend) * noise
