"""The objective of image optimisation: alpha * L_content + beta * L_style + gamma * L_tv.

Targets (content features, style Grams) are computed once from the fitted images; `Objective`
evaluates a candidate image against them. `initial_image` is where the optimisation starts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nst.backbones import Backbone, get_backbone
from nst.config import TransferConfig
from nst.images import resize_tensor
from nst.losses import content_loss, style_layer_loss, total_variation, weighted_sum
from nst.optimize.controls.blend import as_styles, blended_grams
from nst.optimize.controls.gradnorm import normalize_layer_weights
from nst.optimize.controls.shifts import Jitter, average_shifts, roll, shift_averaged


def transform_features(
    feats: dict[str, torch.Tensor], kind: str, temperature: float = 1.0
) -> dict[str, torch.Tensor]:
    """The feature transform applied before every loss (targets and candidate alike).

    none:    F unchanged (the same tensors, so the losses are bit-identical to no transform).
    softmax: Wang et al., CVPR 2021, "Rethinking and Improving the Robustness of Image Style
             Transfer" (SWAG): each channel's map becomes a distribution over its M = H W
             positions,

                 S_c,p = M * exp(F_c,p / T) / sum_q exp(F_c,q / T)

             with temperature T. Peaky, low-entropy activations (ResNet-like, non-VGG
             networks) are smoothed, which is what makes their Gram statistics usable for
             style. The factor M (our choice) keeps each channel's mean at 1 whatever the image
             size, so loss weights tuned on raw features stay in range. Computed in float32
             (the sum over positions), returned in the features' dtype.
    """
    if kind == "none":
        return feats
    out: dict[str, torch.Tensor] = {}
    for layer, f in feats.items():
        flat = f.float().flatten(2) / temperature
        m = flat.shape[-1]
        out[layer] = (torch.softmax(flat, dim=-1) * m).view(f.shape).to(f.dtype)
    return out


def gatys_target(normalised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The raw-Gram target A^l of Gatys normalisation, at the size of the image optimised.

    A raw Gram matrix sums over the M_l = H_l W_l positions, so the style's, taken at the style
    image's size, is M_style / M_content times the one a result of the content's size can reach
    with the same statistics; matching it would rescale the activations, not copy the style.
    The target is therefore the style's normalised Gram G / (C_l M_style) times C_l M_content
    (the style's raw Gram rescaled by M_content / M_style): invariant to the style image's
    size, and equal to the raw Gram when both sizes agree."""
    _, c, h, w = content.shape
    return normalised * (c * h * w)


def build_backbone(config: TransferConfig) -> Backbone:
    return get_backbone(
        config.backbone, weights=config.weights, pooling=config.pooling, seed=config.seed
    )


class Objective:
    """The loss of a candidate image against fixed content and style targets."""

    def __init__(
        self,
        backbone: Backbone,
        config: TransferConfig,
        content: torch.Tensor,
        style: torch.Tensor | Sequence[torch.Tensor],
        dtype: torch.dtype,
    ):
        self.backbone, self.config, self.dtype = backbone, config, dtype
        self.layers = list(dict.fromkeys(config.content_layers + config.style_layers))
        # patch-grid artefact mitigation (nst.optimize.controls.shifts): averaged fixed shifts, per-step jitter
        self.shifts = average_shifts(config.shift_average, backbone.size_multiple)
        self.jitter, self.content = Jitter(config.jitter, config.seed), content
        self._jittered: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            c = self.extract(content)
        self.content_targets = {layer: c[layer].float() for layer in config.content_layers}
        # several styles: Gram targets mixed by config.style_blend (nst.optimize.controls.blend)
        self.style_targets = blended_grams(
            self.extract, as_styles(style), config.style_layers, config.style_blend
        )
        if config.style_normalization == "gatys":
            self.style_targets = {k: gatys_target(t, c[k]) for k, t in self.style_targets.items()}
        norm = config.layer_weight_normalization  # nst.optimize.controls.gradnorm
        self.content_weights = normalize_layer_weights(
            config.content_layer_weights, [c[k].shape[1] for k in config.content_layers], norm
        )
        self.style_weights = normalize_layer_weights(
            config.style_layer_weights, [t.shape[-1] for t in self.style_targets.values()], norm
        )

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # features stay in the compute dtype: in bf16 mode the Gram products run in bf16 too
        # (they are a quarter of a step's time otherwise); every loss is reduced in fp32
        cfg = self.config
        return shift_averaged(
            lambda z: transform_features(
                self.backbone.features(z, self.layers),
                cfg.feature_transform,
                cfg.feature_temperature,
            ),
            x.to(self.dtype),
            self.shifts,
        )

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        shift = self.jitter.current
        feats = self.extract(roll(x, shift))
        gatys = cfg.style_normalization == "gatys"
        content = weighted_sum(
            {
                k: content_loss(feats[k].float(), t)
                for k, t in self.content_targets_at(shift).items()
            },
            self.content_weights,
        )
        style = weighted_sum(
            {k: style_layer_loss(feats[k], t, gatys) for k, t in self.style_targets.items()},
            self.style_weights,
        )
        tv = total_variation(x, cfg.tv) if cfg.gamma > 0 else torch.zeros((), device=x.device)
        total = cfg.alpha * content + cfg.beta * style + cfg.gamma * tv
        return {"content": content, "style": style, "tv": tv, "total": total}

    def content_targets_at(self, shift: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Content targets for an image rolled by `shift` (jitter): from the content rolled alike."""
        if shift == (0, 0):
            return self.content_targets
        if shift not in self._jittered:
            with torch.no_grad():
                c = self.extract(roll(self.content, shift))
            self._jittered[shift] = {
                layer: c[layer].float() for layer in self.config.content_layers
            }
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
