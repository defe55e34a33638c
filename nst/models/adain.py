"""Arbitrary style transfer with adaptive instance normalisation (Huang & Belongie, ICCV 2017,
"Arbitrary style transfer in real-time with adaptive instance normalization").

A frozen encoder f (a registered backbone truncated at one layer: VGG19 relu4_1 as in the
paper, any backbone and layer allowed), AdaIN, and a trained decoder g:

    AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y)

with mu, sigma the per-channel mean and standard deviation over the spatial positions
(sigma = sqrt(var + eps)), computed per batch item. For content c and style s:

    t = a * AdaIN(f(c), f(s)) + (1 - a) * f(c),    T(c, s, a) = g(t)

with a the strength (the paper's alpha; nst keeps `alpha` for the content loss weight), so
a = 0 is the decoder's reconstruction of the content, g(f(c)), and a = 1 the full style. Several styles s_1..s_K with weights w_k (normalised to sum 1) interpolate in feature
space, t = sum_k w_k AdaIN(f(c), f(s_k)); a mask m in [0, 1] (1 = stylise), resized to the
feature grid, gives spatial control t' = m * t + (1 - m) * f(c) (the paper's section 7.3 uses
one style per region; one mask against the content is the same with the content as the
second "style").

The decoder is the paper's at the encoder layer's stride (nst.models.decoder): VGG19 mirrored
up to that stride, its first convolution reading the encoder's channels, so it has the paper's
capacity on any encoder (for VGG19 at relu4_1 it is exactly the paper's decoder; on a 40-channel
EfficientNet-Lite stage at stride 8 it has 2.4 M parameters where the paper's has 3.5 M).
`decoder_width` scales its hidden widths; `output` picks the output layer (linear with a clamp
at inference, as the reference, or a sigmoid).

Deliberate difference: on EfficientNet-Lite the encoder layer is a stage output, a linear
bottleneck (no activation) of 24-120 channels, where relu4_1 is a post-ReLU layer of 512; AdaIN
still matches its per-channel mean and standard deviation, over fewer, signed channels. The
backbones expose stage outputs only; a post-activation tap inside a stage is not offered.

The encoder's weights are frozen and kept in eval mode (`train()` never switches it), and they
are part of the state dict, so a checkpoint is self-contained (nst.models.io rebuilds the
network with random encoder weights, then loads the saved ones).
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError
from nst.backbones import get_backbone
from nst.images import pad_to_multiple
from nst.losses import MOMENT_EPS, mean_std
from nst.models.decoder import MirrorDecoder
from nst.models.registry import register

#: the paper's encoder layer on VGG; other families default to their content preset


def adain(content: torch.Tensor, style: torch.Tensor, eps: float = MOMENT_EPS) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) * (x - mu(x)) / sigma(x) + mu(y) (module docstring)."""
    mc, sc = mean_std(content, eps)
    ms, ss = mean_std(style, eps)
    return ss * (content - mc) / sc + ms


def default_layer(encoder: str) -> str:
    """The layer the encoder is cut at when none is named (the adain entry's data)."""
    from nst.models.registry import ADAIN

    return ADAIN.encoder_layer(encoder)


class AdaINNet(nn.Module):
    """Encoder (frozen) -> AdaIN -> mirrored decoder (module docstring)."""

    method = "adain"
    #: forward's image inputs, in order (export and serving read this; johnson: ("content",))
    inputs = ("content", "style")

    def __init__(
        self,
        encoder: str = "vgg19",
        layer: str = "",
        decoder_width: float = 1.0,
        weights: str = "auto",
        output: str = "sigmoid",
    ):
        super().__init__()
        if decoder_width <= 0:
            raise NstError(f"decoder_width must be positive, got {decoder_width}")
        self.encoder_name, self.layer = encoder, layer or default_layer(encoder)
        self.decoder_width, self.output = float(decoder_width), output
        self.encoder = get_backbone(encoder, weights=weights).truncate(self.layer)
        self.encoder.freeze()
        self.multiple = self.encoder.min_side([self.layer])
        channels, stride = self.encoder.layer_info(self.layer)
        self.decoder = MirrorDecoder(channels, stride, self.decoder_width, output)
        # (x - mu(x)) / sigma(x) of AdaIN as a module, so that tiled inference can give it the
        # whole image's statistics (nst.models.tiling.frozen_statistics); no parameters
        self.normalize = nn.InstanceNorm2d(channels, eps=MOMENT_EPS)

    @property
    def options(self) -> dict[str, typing.Any]:
        """The factory options that rebuild this network (the weights come from the state)."""
        return {
            "encoder": self.encoder_name,
            "layer": self.layer,
            "decoder_width": self.decoder_width,
            "output": self.output,
        }

    def train(self, mode: bool = True) -> AdaINNet:
        super().train(mode)
        self.encoder.eval()  # frozen: batch-norm statistics (EfficientNet) never update
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x, [self.layer])[self.layer]

    def adain(self, fc: torch.Tensor, fs: torch.Tensor) -> torch.Tensor:
        """adain(fc, fs) with the content normalised by self.normalize (the same formula)."""
        ms, ss = mean_std(fs)
        return ss * self.normalize(fc) + ms

    def decode(self, t: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """g(t), cropped (or resized, for encoders that round sizes up) to hw."""
        y = self.decoder(t)
        if y.shape[-2] < hw[0] or y.shape[-1] < hw[1]:
            y = F.interpolate(y, size=hw, mode="bilinear", align_corners=False)
        return y[..., : hw[0], : hw[1]]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.multiple)

    def forward(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        strength: float = 1.0,
        extras: bool = False,
    ) -> typing.Any:
        """T(c, s, strength), Nx3xHxW in (0, 1) for content Nx3xHxW and style Nx3xH'xW' (any
        size); extras=True (training) returns {"output", "target": t}."""
        hw = (content.shape[-2], content.shape[-1])
        with torch.no_grad():
            fc, fs = self.encode(self.pad(content)), self.encode(self.pad(style))
            t = self.adain(fc, fs)
            if strength != 1.0:
                t = strength * t + (1.0 - strength) * fc
        out = self.decode(t, hw)
        return {"output": out, "target": t} if extras else out

    @torch.no_grad()
    def transfer(
        self,
        content: torch.Tensor,
        styles: list[torch.Tensor],
        weights: list[float] | None = None,
        strength: float = 1.0,
        mask: torch.Tensor | None = None,
        encoded: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The inference controls: strength trade-off, weighted interpolation of `styles` (each
        1x3xHxW, any size), and a 1x1xHxW mask in [0, 1] (module docstring). `encoded`: the
        styles' features already (encode_styles), so tiles of one image encode them once."""
        if not 0.0 <= strength <= 1.0:
            raise NstError(f"strength must be in [0, 1], got {strength}")
        if not styles:
            raise NstError("no style image: give at least one")
        w = list(weights) if weights else [1.0] * len(styles)
        if len(w) != len(styles) or any(x < 0 for x in w) or sum(w) <= 0:
            raise NstError(
                f"style weights {w}: give one non-negative weight per style ({len(styles)}) "
                "with a positive sum"
            )
        hw = (content.shape[-2], content.shape[-1])
        fc = self.encode(self.pad(content))
        fss = encoded if encoded is not None else self.encode_styles(styles)
        t = sum(
            (wk / sum(w)) * self.adain(fc, fs.expand(fc.shape[0], -1, -1, -1))
            for wk, fs in zip(w, fss, strict=True)
        )
        t = strength * typing.cast(torch.Tensor, t) + (1.0 - strength) * fc
        if mask is not None:
            m = F.interpolate(self.pad(mask.to(fc)), size=fc.shape[-2:], mode="bilinear")
            t = m * t + (1.0 - m) * fc
        return self.decode(t, hw)

    @torch.no_grad()
    def encode_styles(self, styles: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.encode(self.pad(s)) for s in styles]


@register("adain")
def adain_model(
    encoder: str = "vgg19",
    layer: str = "",
    decoder_width: float = 1.0,
    weights: str = "auto",
    output: str = "sigmoid",
) -> AdaINNet:
    return AdaINNet(encoder, layer, decoder_width, weights, output)
