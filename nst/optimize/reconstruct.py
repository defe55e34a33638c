"""What one layer "sees": reconstruct an image from a single layer's features or Gram matrix.

Following Mahendran & Vedaldi (2015) and Gatys et al. (2016, figure 1), start from seeded
uniform noise x_0 and minimise, for one layer l with features F^l,

    content: L(x) = ||F^l(x) - F^l(a)||^2 / ||F^l(a)||^2
    style:   L(x) = ||G^l(x) - G^l(a)||^2 / ||G^l(a)||^2,   G = F F^T / (C H W)

with Adam on the pixels, clamped to [0, 1] after each step: the transfer loop with one term. Content reconstructions from
shallow layers are near-perfect and grow abstract with depth; style reconstructions keep
colours and textures at a scale that grows with depth, and lose the spatial layout.
The losses are relative (divided by the target's energy) so one learning rate suits all layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from PIL import Image, ImageDraw

from nst import NstError
from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.images import fit_size, save_image, to_image
from nst.optimize.loop import stylize_stage

Mode = Literal["content", "style"]

#: grid layout: tiles separated by GAP px, each under a LABEL px band with its name
GAP, LABEL = 4, 16


def reconstruct(
    backbone: Backbone,
    image: torch.Tensor,
    layer: str,
    mode: Mode = "content",
    steps: int = 200,
    size: int = 128,
    seed: int = 0,
    lr: float = 0.05,
    losses: list[float] | None = None,
) -> torch.Tensor:
    """Optimise seeded noise to match `layer`'s features (content) or Gram matrix (style) of
    `image` (1x3xHxW in [0, 1]); returns the 1x3xhxw reconstruction at the fitted size.
    `losses`, if given, receives the loss of every step.

    It is the transfer loop itself (nst.optimize.loop) with one term switched on: content and
    style image are both `image`, the start is the loop's seeded noise, Adam's steps are
    projected to [0, 1]. Adam's step does not depend on the loss's scale, so the loop's losses
    behave as the relative ones above."""
    if mode not in ("content", "style"):
        raise NstError(f"mode {mode!r}: use content or style")
    if steps < 1 or size < 1:
        raise NstError(f"steps and size must be at least 1, got steps={steps} size={size}")
    backbone.check_layers([layer])
    alpha, beta = (1.0, 0.0) if mode == "content" else (0.0, 1.0)
    config = TransferConfig(
        backbone=backbone.name,
        content_layers=(layer,),
        style_layers=(layer,),
        alpha=alpha,
        beta=beta,
        gamma=0.0,
        optimizer="adam",
        lr=lr,
        init="noise",
        steps=steps,
        size=size,
        seed=seed,
        device=str(next(backbone.parameters()).device),
    )
    image = image.float()
    result = stylize_stage(config, image, image, backbone=backbone)
    if losses is not None:
        losses.extend(result.history["total"])
    return result.image


def grid_shape(tiles: int) -> tuple[int, int]:
    """(rows, columns) of a near-square grid holding `tiles` tiles."""
    cols = math.ceil(math.sqrt(tiles))
    return math.ceil(tiles / cols), cols


def grid_size(tiles: int, tile_hw: tuple[int, int]) -> tuple[int, int]:
    """(width, height) in pixels of the grid image."""
    rows, cols = grid_shape(tiles)
    h, w = tile_hw
    return cols * (w + GAP) + GAP, rows * (h + LABEL + GAP) + GAP


def compose_grid(images: Sequence[torch.Tensor], labels: Sequence[str]) -> Image.Image:
    """One labelled image grid (white background), tiles in reading order."""
    h, w = images[0].shape[-2:]
    rows, cols = grid_shape(len(images))
    canvas = Image.new("RGB", grid_size(len(images), (h, w)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        r, c = divmod(i, cols)
        x0, y0 = GAP + c * (w + GAP), GAP + r * (h + LABEL + GAP)
        draw.text((x0 + 2, y0 + 2), label, fill="black")
        canvas.paste(to_image(img), (x0, y0 + LABEL))
    return canvas


def reconstruction_grid(
    backbone: Backbone,
    image: torch.Tensor,
    layers: Sequence[str],
    out: str | Path,
    mode: Mode = "content",
    steps: int = 200,
    size: int = 128,
    seed: int = 0,
    lr: float = 0.05,
) -> Path:
    """Reconstruct `image` from each layer alone and write one PNG: the (fitted) original
    first, then one labelled tile per layer, e.g. "relu3_1 (content)". Returns the path."""
    if not layers:
        raise NstError("name at least one layer to reconstruct")
    backbone.check_layers(list(layers))
    original = fit_size(image.float(), size, backbone.size_multiple)
    tiles, labels = [original], ["original"]
    for layer in layers:
        tiles.append(reconstruct(backbone, image, layer, mode, steps, size, seed, lr))
        labels.append(f"{layer} ({mode})")
    return save_image(compose_grid(tiles, labels), out)
