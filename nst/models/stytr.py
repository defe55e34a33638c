"""StyTr2 (Deng et al., CVPR 2022, "StyTr^2: image style transfer with transformers") on
pretrained ViT encoders adapted with LoRA.

The paper trains two transformer encoders from scratch (content and style, 3 layers each,
160k iterations). Here both are timm ViT/DeiT models from the backbone registry (`encoder`,
pretrained when weights exist, otherwise seeded random weights with the registry's loud
warning), frozen, and adapted with LoRA through peft (nst.models.lora: targets, rank and alpha
configurable; timm's fused `qkv` means one rank-r update covers q, k and v together). The rest
is trained, and follows the released code (diyiiyiii/StyTR-2, models/transformer.py):

    F_c = E_c(c), F_s = E_s(s)          patch tokens of the last block, N x D x h x w
                                        (h = H / P, w = W / P)
    CAPE  P_c = up(conv1x1(avgpool_g(F_c)))   content-aware positional encoding (paper eq. 4):
                                        average-pool the content tokens to g x g, a learned
                                        1x1 convolution, bilinear interpolation back to h x w
    3 x decoder layer (post-norm, dropout 0.1 after each attention and in the FFN):
        X = LN(X + Attn(q = X + P_c, k = F_s, v = F_s))
        X = LN(X + Attn(q = X + P_c, k = F_s, v = F_s))
        X = LN(X + FFN(X))                                       X starts as F_c
    X = LN(X)                           the decoder's final LayerNorm
    CNN decoder: the paper's (the AdaIN decoder, nst.models.decoder's VGG19 mirror from
                 stride 8), after a nearest upsampling of the grid to stride 8 when P > 8

Both attentions of a decoder layer read the style tokens: the released layer's first attention
(named self_attn there) takes its keys and values from the memory, not from the content; the
style tokens carry no positional encoding (pos = None for the style memory there).

Deliberate differences, and why:
- Token grid: DeiT's pretrained patch embedding has P = 16, so a 256 px crop gives 16 x 16
  tokens where the paper's P = 8 gives 32 x 32; a finer grid would need a new patch embedding
  trained from scratch, which is what the pretrained encoders are here to avoid. The grid is
  upsampled (nearest) to the paper's 32 x 32 before its decoder; mirroring one more VGG19
  stage instead (4 convolutions of 512) learned far slower (20-step style loss 298 -> 298
  against 301 -> 159 with the upsampling, deit_tiny, 64 px).
- CAPE's pooled grid: the paper pools its 32 x 32 grid to 18 x 18 (CAPE_POOL); on a grid of
  P = 16 that would be larger than the token grid, so nst pools to g = 18 * 8 / P (9 for P = 16):
  each pooled cell covers the same image area as the paper's.
- Encoders: the last block of a pretrained 12-block ViT (with its own learned position
  embeddings), not 3 layers trained from scratch with CAPE added to the content encoder.

Sizes: StyTr2 itself only produces square 256 px outputs. Here any H x W works: sides that
are multiples of P run as they are (the ViT interpolates its position embeddings,
dynamic_img_size), other sides are reflect-padded at the bottom/right to the next multiple and
the output cropped back to H x W. The style image may have another size than the content.

Large images: `stylize_tiles` runs the content in tiles (nst.models.tiling) with the style
memory computed once, CAPE's pooled map from a view of the whole content, and each tile's ViT
position embeddings and CAPE sampled at its place in the whole image; the content encoder's
self-attention then spans a tile and its halo, not the image (the one approximation).

Training needs the two identity images as well (nst.train.arbitrary): forward(c, s,
extras=True) runs the pairs (c, s), (c, c), (s, s) as one batch of 3N.

Export: `merge_lora()` folds the adapters into the encoders' weights (in place; the merged
network computes the same function and has no peft modules). Checkpoints always hold the
unmerged network, which is what get_model builds.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import Backbone
from nst.images import pad_to_multiple
from nst.models.decoder import MirrorDecoder
from nst.models.lora import LORA_TARGETS, add_lora, merge_lora
from nst.models.registry import register
from nst.models.tiles import check_tile, crop
from nst.models.tiling import reference_view, stylize_tiled

#: the paper's pooled grid, on its patch-8 token grid; with patch P: CAPE_POOL * 8 / P
CAPE_POOL, PAPER_PATCH = 18, 8
DROPOUT = 0.1  # the released decoder layer's


class CAPE(nn.Module):
    """Content-aware positional encoding: P_c = up(conv1x1(avgpool_g(F_c))), g = 18 * 8 / P."""

    def __init__(self, dim: int, patch: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(max(1, round(CAPE_POOL * PAPER_PATCH / patch)))
        self.proj = nn.Conv2d(dim, dim, 1)

    def pooled(self, f: torch.Tensor) -> torch.Tensor:
        """conv1x1(avgpool_g(F_c)): the g x g map the encoding is interpolated from."""
        return self.proj(self.pool(f))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            self.pooled(f), size=f.shape[-2:], mode="bilinear", align_corners=False
        )

    @staticmethod
    def sample(pooled: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The encoding at the positions `where` (patch_centres) of the image `pooled` was
        computed on: the same bilinear interpolation as forward's, at any patch of it."""
        return F.grid_sample(
            pooled, where.expand(len(pooled), -1, -1, -1), "bilinear", "border", align_corners=False
        )


def patch_centres(
    at: tuple[int, int], grid: tuple[int, int], patch: int, frame: tuple[int, int]
) -> torch.Tensor:
    """The centres of a grid of patches whose first pixel is `at` (y, x) in an image of
    `frame` (H, W) pixels, as grid_sample's coordinates (1 x h x w x 2, x then y, -1 and 1 the
    image's outer edges: align_corners=False). Over the whole image (at 0, 0, grid frame / P)
    these are exactly the points F.interpolate(align_corners=False) reads to resize a map to
    the grid, which is what makes a tile's positions those of the whole image."""
    ys = (at[0] + patch * (torch.arange(grid[0]) + 0.5)) / frame[0] * 2 - 1
    xs = (at[1] + patch * (torch.arange(grid[1]) + 0.5)) / frame[1] * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1)[None]


@contextmanager
def framed_positions(vit: typing.Any, where: torch.Tensor) -> Iterator[None]:
    """Within the block, the timm ViT `vit` adds to its patch tokens the absolute position
    embeddings at `where` (patch_centres) of the whole image, bicubic as timm resamples them
    (dynamic_img_size), instead of its embeddings stretched over its own input. The prefix
    tokens (class, distillation) are handled as timm's _pos_embed does."""
    grid = vit.patch_embed.grid_size
    prefix = 0 if vit.no_embed_class else vit.num_prefix_tokens

    def pos_embed(x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        table = vit.pos_embed[:, prefix:].reshape(1, grid[0], grid[1], c).permute(0, 3, 1, 2)
        at = F.grid_sample(table.float(), where, "bicubic", "border", align_corners=False)
        spatial = at.flatten(2).transpose(1, 2).to(x.dtype)
        tokens = [t.expand(n, -1, -1) for t in (vit.cls_token, vit.reg_token) if t is not None]
        x = x.reshape(n, h * w, c)
        if vit.no_embed_class:
            return vit.pos_drop(torch.cat([*tokens, x + spatial], dim=1))
        return vit.pos_drop(
            torch.cat([*tokens, x], dim=1) + torch.cat([vit.pos_embed[:, :prefix], spatial], dim=1)
        )

    vit._pos_embed = pos_embed
    try:
        yield
    finally:
        del vit._pos_embed


class DecoderLayer(nn.Module):
    """Two attentions of the content queries to the style tokens, then an FFN; post-norm."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float = DROPOUT):
        super().__init__()
        self.attn1 = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.attn2 = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim)
        )
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop1(self.attn1(x + pos, memory, memory, need_weights=False)[0]))
        x = self.norm2(x + self.drop2(self.attn2(x + pos, memory, memory, need_weights=False)[0]))
        return self.norm3(x + self.drop3(self.ffn(x)))


def vit_encoder(
    name: str, weights: str, rank: int, lora_alpha: float, targets: list[str]
) -> Backbone:
    backbone = get_backbone(name, weights=weights)
    if not backbone.patch_size:  # a map of positions, not patch tokens
        raise NstError(f"stytr encoder {name!r} is not a ViT/DeiT backbone (deit_*, vit_*)")
    add_lora(typing.cast(typing.Any, backbone).model, rank, lora_alpha, targets)
    return backbone


class StyTr(nn.Module):
    """Content and style ViT encoders with LoRA, CAPE, transformer decoder, CNN decoder."""

    method = "stytr"
    #: the ONNX export's antialiased Resize of the position embeddings needs opset 18
    onnx_opset = 18
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
        output: str = "sigmoid",
    ):
        super().__init__()
        if decoder_layers < 1 or decoder_width <= 0:
            raise NstError("decoder_layers must be at least 1 and decoder_width positive")
        self.encoder_name, self.lora_rank, self.lora_alpha = encoder, lora_rank, float(lora_alpha)
        self.lora_targets = list(lora_targets)
        self.decoder_layers, self.decoder_width = decoder_layers, float(decoder_width)
        self.output = output
        build = (encoder, weights, lora_rank, self.lora_alpha, self.lora_targets)
        self.content_encoder, self.style_encoder = vit_encoder(*build), vit_encoder(*build)
        vit = typing.cast(typing.Any, self.content_encoder).model
        dim, heads = int(vit.embed_dim), int(vit.blocks[0].attn.num_heads)
        self.patch = int(self.content_encoder.size_multiple)
        self.last = self.content_encoder.layer_names[len(vit.blocks) - 1]
        self.cape = CAPE(dim, self.patch)
        self.transformer = nn.ModuleList(
            DecoderLayer(dim, heads, 4 * dim) for _ in range(decoder_layers)
        )
        self.norm = nn.LayerNorm(dim)
        # the token grid, upsampled to the paper's patch-8 grid, into the paper's decoder
        up = (
            [nn.Upsample(scale_factor=self.patch // PAPER_PATCH)]
            if self.patch > PAPER_PATCH
            else []
        )
        decoder = MirrorDecoder(dim, min(self.patch, PAPER_PATCH), self.decoder_width, output)
        self.decoder = nn.Sequential(*up, *decoder)
        self.merged = False

    @property
    def options(self) -> dict[str, typing.Any]:
        """The factory options that rebuild this network (the weights come from the state)."""
        return {
            "encoder": self.encoder_name,
            "lora_rank": self.lora_rank,
            "lora_alpha": self.lora_alpha,
            "lora_targets": list(self.lora_targets),
            "decoder_layers": self.decoder_layers,
            "decoder_width": self.decoder_width,
            "output": self.output,
        }

    def train(self, mode: bool = True) -> StyTr:
        super().train(mode)
        self.content_encoder.eval()
        self.style_encoder.eval()
        return self

    def traceable(self) -> StyTr:
        """A merged copy with the export-only rewrites (nst.models.export): CAPE's adaptive
        pooling as matrices, the decoder's attention with -1 sequence lengths."""
        from nst.models.export import MatrixAttention, MatrixPool

        net: typing.Any = copy.deepcopy(self)
        if not net.merged:
            net.merge_lora()
        net.cape.pool = MatrixPool(int(net.cape.pool.output_size))
        for layer in net.transformer:
            layer.attn1 = MatrixAttention(layer.attn1)
            layer.attn2 = MatrixAttention(layer.attn2)
        return typing.cast(StyTr, net)

    def merge_lora(self) -> StyTr:
        """Fold the LoRA adapters into the encoders (in place), for export."""
        for enc in (self.content_encoder, self.style_encoder):
            merge_lora(typing.cast(typing.Any, enc).model)
        self.merged = True
        return self

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.patch)

    def content_tokens(self, content: torch.Tensor) -> torch.Tensor:
        """F_c: the content encoder's last patch-token map, N x D x h x w."""
        return self.content_encoder.features(self.pad(content), [self.last])[self.last]

    def style_tokens(self, style: torch.Tensor) -> torch.Tensor:
        """The style memory the decoder attends to: F_s as N x M x D tokens."""
        fs = self.style_encoder.features(self.pad(style), [self.last])[self.last]
        return fs.flatten(2).transpose(1, 2)

    def decode(self, fc: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The transformer decoder and the CNN decoder: tokens F_c (N x D x h x w) with their
        CAPE (N x D x h x w), attending to `memory` -> an image of h x w patches."""
        n, d, gh, gw = fc.shape
        x, pos = fc.flatten(2).transpose(1, 2), pos.flatten(2).transpose(1, 2)
        for layer in self.transformer:
            x = layer(x, memory, pos)
        x = self.norm(x)
        return self.decoder(x.transpose(1, 2).reshape(n, d, gh, gw))

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h, w = content.shape[-2:]
        fc = self.content_tokens(content)
        return self.decode(fc, self.style_tokens(style), self.cape(fc))[..., :h, :w]

    def stylize_tiles(
        self, content: torch.Tensor, style: torch.Tensor, tiling: tuple[int, int, int]
    ) -> torch.Tensor:
        """`content` stylised in tiles (tile, overlap, halo; nst.models.tiling) with what spans
        the whole image computed for the whole image: the style memory once, CAPE's pooled map
        from the reference view of the whole content, and every tile's ViT position embeddings
        and CAPE sampled at the tile's own patch centres in the whole image's frame (so a tile
        sees the positions it has in the image, not those of an image of its own). What tiles
        cannot keep: the content encoder's self-attention spans a tile and its halo, not the
        whole image (the difference is measured in tests/test_tiling.py)."""
        tile, overlap, halo = tiling
        check_tile(tile, overlap)
        h, w = content.shape[-2:]
        frame = (-(-h // self.patch) * self.patch, -(-w // self.patch) * self.patch)
        vit = typing.cast(typing.Any, self.content_encoder).model
        memory = self.style_tokens(style)
        pooled = self.cape.pooled(self.content_tokens(reference_view(content, tile)))

        def run(y: int, x: int, th: int, tw: int) -> torch.Tensor:
            grid = (-(-th // self.patch), -(-tw // self.patch))
            where = patch_centres((y, x), grid, self.patch, frame).to(content.device)
            with framed_positions(vit, where):
                fc = self.content_tokens(crop(content, y, x, th, tw))
            return self.decode(fc, memory, self.cape.sample(pooled, where))[..., :th, :tw]

        with torch.no_grad():
            return stylize_tiled(run, (h, w), tile, overlap, halo)

    def forward(
        self, content: torch.Tensor, style: torch.Tensor, extras: bool = False
    ) -> typing.Any:
        """The stylised content, Nx3xHxW in (0, 1); extras=True (training, content and style
        of the same size) returns {"output", "identity_c", "identity_s"} from one 3N batch."""
        if not extras:
            return self.stylize(content, style)
        n = content.shape[0]
        out = self.stylize(torch.cat([content, content, style]), torch.cat([style, content, style]))
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
    output: str = "sigmoid",
) -> StyTr:
    return StyTr(
        encoder, lora_rank, lora_alpha, lora_targets, decoder_layers, decoder_width, weights, output
    )
