"""The image transformation network of Johnson, Alahi & Fei-Fei (2016), "Perceptual losses
for real-time style transfer and super-resolution", with Ulyanov, Vedaldi & Lempitsky's (2016)
instance normalisation in place of batch normalisation.

With w the base width (Johnson: 32), every convolution reflection-padded by k // 2:

    conv 9x9, w,  stride 1 -> IN -> ReLU
    conv 3x3, 2w, stride 2 -> IN -> ReLU
    conv 3x3, 4w, stride 2 -> IN -> ReLU
    5 x residual block: x + IN(conv 3x3(ReLU(IN(conv 3x3(x)))))       (4w channels)
    nearest x2 upsample -> conv 3x3, 2w -> IN -> ReLU
    nearest x2 upsample -> conv 3x3, w  -> IN -> ReLU
    conv 9x9, 3 -> output layer (nst.models.decoder.OutputLayer)

IN is any normalisation layer factory `norm(channels)` (the default: affine instance norm;
nst.models.cin passes conditional instance norm, Dumoulin et al. 2017).

Upsampling is nearest neighbour followed by a convolution, not a transposed convolution,
which avoids checkerboard artefacts (Odena, Dumoulin & Olah, 2016). Instance norm is affine
(a learned per-channel scale and shift), as in Ulyanov et al.

Sizes: the two stride-2 stages need sides divisible by 4 to come back to the input size, so
the input is padded at the bottom and right to P = max(MIN_SIDE, 4 * ceil(s / 4)) per side s
(reflection where the padding is shorter than the side, else edge replication) and the
output cropped back to H x W: any input size works and the output size is the input size.
The output layer (`output`): pytorch/examples' network is linear and its images are clamped to
[0, 1] when saved ("linear": the clamp at inference only); "sigmoid" (the default, measured
better on the quick comparison: nst.models.decoder) squashes into (0, 1) with non-vanishing
gradients everywhere.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nst.images import pad_to_multiple
from nst.models.decoder import OutputLayer
from nst.models.padding import ReflectionPad2d
from nst.models.registry import register

#: the smallest padded side: the 9x9 convolution's reflection padding (4) must be shorter
#: than the side, and the side after both stride-2 convolutions (2) longer than 1
MIN_SIDE = 8
RESIDUAL_BLOCKS = 5
#: channels -> a normalisation layer
Norm = Callable[[int], nn.Module]


def instance_norm(channels: int) -> nn.Module:
    """Ulyanov et al.'s instance norm with a learned per-channel scale and shift."""
    return nn.InstanceNorm2d(channels, affine=True)


class ConvLayer(nn.Sequential):
    """Reflection padding by k // 2, then a k x k convolution (spatial size / stride)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__(ReflectionPad2d(kernel // 2), nn.Conv2d(cin, cout, kernel, stride))


def conv_norm_relu(
    cin: int, cout: int, kernel: int, stride: int = 1, norm: Norm = instance_norm
) -> nn.Sequential:
    return nn.Sequential(ConvLayer(cin, cout, kernel, stride), norm(cout), nn.ReLU())


class ResidualBlock(nn.Module):
    """y = x + IN(conv(ReLU(IN(conv(x))))), the block of He et al. 2016 as Johnson used it."""

    def __init__(self, channels: int, norm: Norm = instance_norm):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3),
            norm(channels),
            nn.ReLU(),
            ConvLayer(channels, channels, 3),
            norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleConv(nn.Sequential):
    """Nearest-neighbour x2 upsampling, then conv -> IN -> ReLU."""

    def __init__(self, cin: int, cout: int, norm: Norm = instance_norm):
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"), conv_norm_relu(cin, cout, 3, norm=norm)
        )


class JohnsonNet(nn.Module):
    """Johnson et al.'s transformation network with base width `width` (module docstring)."""

    method = "johnson"

    def __init__(self, width: int = 32, output: str = "sigmoid", norm: Norm = instance_norm):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.width, self.output = width, output
        w = width
        self.encoder = nn.Sequential(
            conv_norm_relu(3, w, 9, norm=norm),
            conv_norm_relu(w, 2 * w, 3, 2, norm=norm),
            conv_norm_relu(2 * w, 4 * w, 3, 2, norm=norm),
        )
        self.residuals = nn.Sequential(
            *(ResidualBlock(4 * w, norm) for _ in range(RESIDUAL_BLOCKS))
        )
        self.decoder = nn.Sequential(UpsampleConv(4 * w, 2 * w, norm), UpsampleConv(2 * w, w, norm))
        self.head = ConvLayer(w, 3, 9)
        self.output_layer = OutputLayer(output)

    @property
    def options(self) -> dict[str, int | str]:
        """The factory options that rebuild this network: get_model("johnson", **options)."""
        return {"width": self.width, "output": self.output}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.head(self.decoder(self.residuals(self.encoder(pad_to_multiple(x, 4, MIN_SIDE)))))
        return self.output_layer(y[..., :h, :w])


@register("johnson")
def johnson(width: int = 32, output: str = "sigmoid") -> JohnsonNet:
    return JohnsonNet(width=width, output=output)
