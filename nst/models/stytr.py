"""StyTr2 (Deng et al., CVPR 2022, "StyTr^2: image style transfer with transformers") on
pretrained ViT encoders adapted with LoRA.

The paper trains two transformer encoders from scratch (content and style, 160k iterations).
Here both are timm ViT/DeiT models from the backbone registry (`encoder`, pretrained when
weights exist, otherwise seeded random weights with the registry's loud warning), frozen, and
adapted with LoRA through peft (nst.models.lora: targets, rank and alpha configurable; timm's
fused `qkv` means one rank-r update covers q, k and v together). The rest is trained:

    F_c = E_c(c), F_s = E_s(s)           patch tokens of the last block, N x D x h x w
                                         (h = H / P, w = W / P, P = 16: the 16x token grid)
    CAPE  P_c = up(conv1x1(avgpool_18(F_c)))   content-aware positional encoding (paper eq. 4:
                                         average-pool the content tokens to 18 x 18, a learned
                                         1x1 convolution, bilinear interpolation back to h x w)
    3 x decoder layer (post-norm):       q = k = X + P_c;  X = LN(X + SelfAttn(q, k, X))
                                         X = LN(X + CrossAttn(X + P_c, F_s, F_s))
                                         X = LN(X + FFN(X))            X starts as F_c
    CNN decoder: log2(P) stages of conv3x3 -> ReLU -> nearest x2 -> conv3x3 -> ReLU, then a
                 conv3x3 to RGB and a sigmoid: the token grid back to H x W, in (0, 1)

Content tokens attend to style tokens in the cross-attention; the style tokens carry no
positional encoding (as in the paper's code: pos = None for the style memory).

Sizes: StyTr2 itself only produces square 256 px outputs. Here any H x W works: sides that
are multiples of P run as they are (the ViT interpolates its position embeddings,
dynamic_img_size), other sides are reflect-padded at the bottom/right to the next multiple and
the output cropped back to H x W. The style image may have another size than the content.

Training needs the two identity images as well (nst.train.arbitrary): forward(c, s,
extras=True) runs the pairs (c, s), (c, c), (s, s) as one batch of 3N.

Export: `merge_lora()` folds the adapters into the encoders' weights (in place; the merged
network computes the same function and has no peft modules). Checkpoints always hold the
unmerged network, which is what get_model builds.
"""

from __future__ import annotations

import math
import typing

import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import Backbone
from nst.models.lora import LORA_TARGETS, add_lora, merge_lora
from nst.models.registry import register

CAPE_POOL = 18  # the paper's pooled grid


class CAPE(nn.Module):
    """Content-aware positional encoding: P_c = up(conv1x1(avgpool_18(F_c)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(CAPE_POOL)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        pos = self.proj(self.pool(f))
        return F.interpolate(pos, size=f.shape[-2:], mode="bilinear", align_corners=False)


class DecoderLayer(nn.Module):
    """Self-attention over content tokens, cross-attention to the style tokens, FFN; post-norm."""

    def __init__(self, dim: int, heads: int, ffn: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Linear(ffn, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        q = x + pos
        x = self.norm1(x + self.self_attn(q, q, x, need_weights=False)[0])
        x = self.norm2(x + self.cross_attn(x + pos, memory, memory, need_weights=False)[0])
        return self.norm3(x + self.ffn(x))


class CNNDecoder(nn.Sequential):
    """Token grid (D channels, stride P) -> RGB image in (0, 1) (module docstring)."""

    def __init__(self, dim: int, patch: int, width: float = 1.0):
        stages = int(round(math.log2(patch)))
        if 2**stages != patch:
            raise NstError(f"patch size {patch} is not a power of two")
        modules: list[nn.Module] = []
        cin = dim
        for i in range(stages):
            cout = max(4, round(256 * width / 2**i))
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3), nn.ReLU(),
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.ReflectionPad2d(1), nn.Conv2d(cout, cout, 3), nn.ReLU()]  # fmt: skip
            cin = cout
        modules += [nn.ReflectionPad2d(1), nn.Conv2d(cin, 3, 3), nn.Sigmoid()]
        super().__init__(*modules)


def vit_encoder(name: str, weights: str, rank: int, alpha: float, targets: list[str]) -> Backbone:
    backbone = get_backbone(name, weights=weights)
    if not hasattr(backbone, "num_prefix_tokens"):
        raise NstError(f"stytr encoder {name!r} is not a ViT/DeiT backbone (deit_*, vit_*)")
    add_lora(typing.cast(typing.Any, backbone).model, rank, alpha, targets)
    return backbone


class StyTr(nn.Module):
    """Content and style ViT encoders with LoRA, CAPE, transformer decoder, CNN decoder."""

    method = "stytr"
    #: forward's image inputs, in order (export and serving read this; johnson: ("content",))
    inputs = ("content", "style")

    def __init__(
        self,
        encoder: str = "deit_small",
        lora_rank: int = 8,
        lora_alpha: float = 16.0,
        lora_targets: tuple[str, ...] | list[str] = LORA_TARGETS,
        decoder_layers: int = 3,
        decoder_width: float = 1.0,
        weights: str = "auto",
    ):
        super().__init__()
        if decoder_layers < 1 or decoder_width <= 0:
            raise NstError("decoder_layers must be at least 1 and decoder_width positive")
        self.encoder_name, self.lora_rank, self.lora_alpha = encoder, lora_rank, float(lora_alpha)
        self.lora_targets = list(lora_targets)
        self.decoder_layers, self.decoder_width = decoder_layers, float(decoder_width)
        build = (encoder, weights, lora_rank, self.lora_alpha, self.lora_targets)
        self.content_encoder, self.style_encoder = vit_encoder(*build), vit_encoder(*build)
        vit = typing.cast(typing.Any, self.content_encoder).model
        dim, heads = int(vit.embed_dim), int(vit.blocks[0].attn.num_heads)
        self.patch = int(self.content_encoder.size_multiple)
        self.last = self.content_encoder.layer_names[len(vit.blocks) - 1]
        self.cape = CAPE(dim)
        self.transformer = nn.ModuleList(
            DecoderLayer(dim, heads, 4 * dim) for _ in range(decoder_layers)
        )
        self.decoder = CNNDecoder(dim, self.patch, self.decoder_width)
        self.merged = False

    @property
    def options(self) -> dict[str, typing.Any]:
        """The factory options that rebuild this network (the weights come from the state)."""
        return {"encoder": self.encoder_name, "lora_rank": self.lora_rank,
                "lora_alpha": self.lora_alpha, "lora_targets": list(self.lora_targets),
                "decoder_layers": self.decoder_layers,
                "decoder_width": self.decoder_width}  # fmt: skip

    def train(self, mode: bool = True) -> StyTr:
        super().train(mode)
        self.content_encoder.eval()
        self.style_encoder.eval()
        return self

    def merge_lora(self) -> StyTr:
        """Fold the LoRA adapters into the encoders (in place), for export."""
        for enc in (self.content_encoder, self.style_encoder):
            merge_lora(typing.cast(typing.Any, enc).model)
        self.merged = True
        return self

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = -h % self.patch, -w % self.patch
        if not (ph or pw):
            return x
        mode = "reflect" if ph < h and pw < w else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)

    def stylise(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h, w = content.shape[-2:]
        fc = self.content_encoder.features(self.pad(content), [self.last])[self.last]
        fs = self.style_encoder.features(self.pad(style), [self.last])[self.last]
        n, d, gh, gw = fc.shape
        pos = self.cape(fc).flatten(2).transpose(1, 2)
        x, memory = fc.flatten(2).transpose(1, 2), fs.flatten(2).transpose(1, 2)
        for layer in self.transformer:
            x = layer(x, memory, pos)
        grid = x.transpose(1, 2).reshape(n, d, gh, gw)
        return self.decoder(grid)[..., :h, :w]

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, extras: bool = False
    ) -> typing.Any:
        """The stylised content, Nx3xHxW in (0, 1); extras=True (training, content and style
        of the same size) returns {"output", "identity_c", "identity_s"} from one 3N batch."""
        if not extras:
            return self.stylise(content, style)
        n = content.shape[0]
        out = self.stylise(torch.cat([content, content, style]), torch.cat([style, content, style]))
        return {"output": out[:n], "identity_c": out[n : 2 * n], "identity_s": out[2 * n :]}


@register("stytr")
def stytr(
    encoder: str = "deit_small",
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    lora_targets: tuple[str, ...] | list[str] = LORA_TARGETS,
    decoder_layers: int = 3,
    decoder_width: float = 1.0,
    weights: str = "auto",
) -> StyTr:
    return StyTr(encoder, lora_rank, lora_alpha, lora_targets, decoder_layers, decoder_width,
                 weights)  # fmt: skip
