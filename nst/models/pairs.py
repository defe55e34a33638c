"""Stylising photos with an arbitrary-style network (adain, stytr): the style is an input.

The networks' forward is forward(content, style) (their `inputs` are ("content", "style"):
nst.models.registry.model_inputs). Photos run one at a time, each keeping its size. Colour
preservation reuses the optimisation's controls (nst.optimize.controls.color.ColorControl):
`luminance` transfers between luminance images and puts the photo's chroma back; `histogram`
recolours the style image to the photo's colour histogram before the transfer (what Huang &
Belongie do). AdaIN's controls (strength, weighted interpolation of several styles, a mask) act
in feature space (AdaINNet.transfer); for other networks several styles are interpolated in
pixel space (the weighted mean of the outputs), a mask blends the output with the photo
(m * y + (1 - m) * c, nst.optimize.controls.masks.blend), and strength < 1 is refused.
"""

from __future__ import annotations

import typing
from pathlib import Path

import torch
from torch import nn

from nst import NstError
from nst.images import load_image
from nst.models.tiles import HALO, OVERLAP, crop
from nst.models.tiling import stylize_in_tiles
from nst.optimize.controls.color import ColorControl
from nst.optimize.controls.masks import blend, load_mask

#: --color -> ColorControl mode for arbitrary-style networks (the style is an input)
PAIR_COLOR_MODES = {"none": "none", "luminance": "luminance", "histogram": "histogram"}


def check_weights(weights: list[float] | None, n: int) -> list[float]:
    w = list(weights) if weights else [1.0] * n
    if len(w) != n or any(x < 0 for x in w) or sum(w) <= 0:
        raise NstError(
            f"style weights {w}: give one non-negative weight per style ({n}) with a positive sum"
        )
    return w


def stylize_pairs(
    model: nn.Module,
    images: list[torch.Tensor],
    styles: list[torch.Tensor],
    *,
    weights: list[float] | None = None,
    strength: float = 1.0,
    masks: list[torch.Tensor] | None = None,
    color: str = "none",
    tile: int = 0,
    overlap: int = OVERLAP,
    halo: int = HALO,
) -> list[torch.Tensor]:
    """Each 1x3xHxW photo stylised by `model` with `styles` (1x3xH'xW', any sizes; module
    docstring); masks: one 1x1xHxW mask per photo, or None. Outputs keep the photos' sizes.
    `tile`: each photo in tiles of that side, what spans the whole photo computed once for it
    (nst.models.tiling: adain's style encodings and content statistics; stytr's
    StyTr.stylize_tiles: the style memory, CAPE and position embeddings)."""
    method = getattr(model, "method", "?")
    if color not in PAIR_COLOR_MODES:
        raise NstError(f"colour mode {color!r}: use one of {', '.join(PAIR_COLOR_MODES)}")
    if not styles:
        raise NstError(f"the {method} network takes the style as an input: pass --style IMAGE")
    if not 0.0 <= strength <= 1.0:
        raise NstError(f"strength must be in [0, 1], got {strength}")
    w = check_weights(weights, len(styles))
    transfer = getattr(model, "transfer", None)
    if transfer is None and strength != 1.0:
        raise NstError(f"strength applies to adain networks, not {method}")
    tiles = getattr(model, "stylize_tiles", None)
    if tile and transfer is None and tiles is None:
        raise NstError(f"--tile: the {method} network has no tiled path; drop --tile")
    param = next(model.parameters())

    def dev(x: torch.Tensor) -> torch.Tensor:
        return x.to(device=param.device, dtype=param.dtype)

    def one(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """A network without AdaIN's controls on one style (stytr: in tiles with `tile`)."""
        if tile:
            return typing.cast(torch.Tensor, tiles(content, style, (tile, overlap, halo)))  # type: ignore[misc]
        return typing.cast(torch.Tensor, model(content, style))

    results = []
    with torch.no_grad():
        for i, image in enumerate(images):
            control = ColorControl(PAIR_COLOR_MODES[color], image)
            c = dev(control.content_image())
            ss = [dev(control.style_image(s)) for s in styles]
            mask = dev(masks[i]) if masks else None
            if transfer is not None:
                y = (
                    _tiled(model, c, ss, w, strength, mask, (tile, overlap, halo))
                    if tile
                    else transfer(c, ss, w, strength, mask)
                )
            else:
                parts = [wk / sum(w) * one(c, s) for wk, s in zip(w, ss, strict=True)]
                y = sum(parts[1:], parts[0])
                y = y if mask is None else blend(y, c, mask)
            results.append(control.finish(typing.cast(torch.Tensor, y).float().cpu()))
    return results


def _tiled(
    model: nn.Module,
    content: torch.Tensor,
    styles: list[torch.Tensor],
    weights: list[float],
    strength: float,
    mask: torch.Tensor | None,
    tiling: tuple[int, int, int],
) -> torch.Tensor:
    """AdaIN over tiles: the styles encoded once, the whole photo's content statistics."""
    transfer = typing.cast(typing.Any, model).transfer
    encoded = typing.cast(typing.Any, model).encode_styles(styles)

    def run(*box: int) -> torch.Tensor:
        part = None if mask is None else crop(mask, *box)
        return transfer(crop(content, *box), styles, weights, strength, part, encoded=encoded)

    def whole(view: torch.Tensor) -> torch.Tensor:
        return transfer(view, styles, weights, encoded=encoded)

    return stylize_in_tiles(model, content, whole, run, tiling)


def stylize_pair_images(
    model: nn.Module,
    images: list[torch.Tensor],
    styles: list[Path],
    *,
    size: int | None = None,
    style_weights: list[float] | None = None,
    strength: float = 1.0,
    mask: Path | None = None,
    color: str = "none",
    tile: int = 0,
    overlap: int = OVERLAP,
) -> list[torch.Tensor]:
    """stylize_pairs with the style images (long side `size`, else their own) and the mask
    (resized to each photo) read from files."""
    style_images = [load_image(s, size=size) for s in styles]
    masks = None
    if mask is not None:
        masks = [load_mask(mask, (int(im.shape[-2]), int(im.shape[-1]))) for im in images]
    return stylize_pairs(
        model,
        images,
        style_images,
        weights=style_weights,
        strength=strength,
        masks=masks,
        color=color,
        tile=tile,
        overlap=overlap,
    )
