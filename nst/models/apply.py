"""Stylising photos with a trained network: batches of equal-sized images, colour controls.

Images of different sizes cannot share a batch, so the inputs are grouped by their size
(after the optional resize to long side `size`) and each group runs in batches of
`batch_size`; the outputs keep each input's size. Colour preservation reuses the
optimisation's controls (nst.optimize.controls.color.ColorControl):

    luminance  the network sees the photo's luminance Y as grey RGB; the output's Y is then
               combined with the photo's I and Q chroma (combine_luma_chroma)
    histogram  each RGB channel of the output is histogram-matched to the photo's
               (ColorControl's "histogram_post": the style is inside the network, so there
               is no style image to recolour beforehand)
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from nst import NstError
from nst.imagefiles import output_paths
from nst.images import load_image, save_image
from nst.models.io import load_model
from nst.models.pairs import stylize_pair_images
from nst.models.registry import model_inputs
from nst.models.tiling import (
    HALO,
    OVERLAP,
    REFERENCE,
    check_tile,
    crop,
    frozen_statistics,
    reference_view,
    stylize_tiled,
)
from nst.models.uri import local_checkpoint
from nst.optimize.controls.color import ColorControl
from nst.runtime import resolve_device

#: --color of `nst apply` -> the ColorControl mode that implements it
COLOR_MODES = {"none": "none", "luminance": "luminance", "histogram": "histogram_post"}


def apply_network(
    model: nn.Module,
    images: list[torch.Tensor],
    color: str = "none",
    batch_size: int = 4,
    tile: int = 0,
    overlap: int = OVERLAP,
    halo: int = HALO,
) -> list[torch.Tensor]:
    """Each 1x3xHxW image in [0, 1] stylised by `model` (same sizes), colour-controlled; with
    `tile`, each image in tiles of that side with the whole image's statistics
    (nst.models.tiling), one at a time."""
    if color not in COLOR_MODES:
        raise NstError(f"colour mode {color!r}: use one of {', '.join(COLOR_MODES)}")
    param = next(model.parameters())
    controls = [ColorControl(COLOR_MODES[color], image) for image in images]
    if tile:
        return [_tiled(model, c, (tile, overlap, halo), param) for c in controls]
    groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, image in enumerate(images):
        groups[tuple(image.shape[-2:])].append(i)
    results: list[torch.Tensor | None] = [None] * len(images)
    with torch.no_grad():
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                batch = torch.cat([controls[i].content_image() for i in chunk])
                out = model(batch.to(device=param.device, dtype=param.dtype)).float().cpu()
                for i, y in zip(chunk, out, strict=True):
                    results[i] = controls[i].finish(y.unsqueeze(0))
    return [r for r in results if r is not None]


def _tiled(
    model: nn.Module, control: ColorControl, tiling: tuple[int, int, int], param: torch.Tensor
) -> torch.Tensor:
    tile, overlap, halo = tiling
    image = control.content_image()

    def net(x: torch.Tensor) -> torch.Tensor:
        return model(x.to(device=param.device, dtype=param.dtype))

    check_tile(tile, overlap)
    with (
        torch.no_grad(),
        frozen_statistics(model, lambda: net(reference_view(image, max(REFERENCE, tile**2)))),
    ):
        y = stylize_tiled(
            lambda *box: net(crop(image, *box)), image.shape[-2:], tile, overlap, halo
        )
    return control.finish(y)


def stylize_files(
    model_path: str | Path,
    contents: list[Path],
    out: Path,
    *,
    size: int | None = None,
    color: str = "none",
    batch_size: int = 4,
    device: str = "auto",
    tracking_uri: str | None = None,
    styles: list[Path] | None = None,
    style_weights: list[float] | None = None,
    strength: float = 1.0,
    mask: Path | None = None,
    tile: int = 0,
    overlap: int = OVERLAP,
) -> list[Path]:
    """Stylise every content file into `out` (inputs all read first, so a bad one writes
    nothing); returns the written paths. `model_path` may also be a runs:/ or models:/ URI
    (nst.models.uri), downloaded from `tracking_uri`'s store. Arbitrary-style networks
    (adain, stytr) take `styles` and the controls of nst.models.pairs; others refuse them."""
    with local_checkpoint(model_path, tracking_uri) as path:
        model, meta = load_model(path, resolve_device(device))
    arbitrary = "style" in model_inputs(model)
    if not arbitrary and (styles or mask or strength != 1.0 or style_weights):
        raise NstError(
            f"{model_path} is a {meta.get('method')} network with its style built in: "
            "--style, --style-weights, --strength and --mask apply to adain and stytr networks"
        )
    images = [load_image(c, size=size) for c in contents]
    targets = output_paths(contents, out)
    if arbitrary:
        results = stylize_pair_images(
            model,
            images,
            styles or [],
            size=size,
            style_weights=style_weights,
            strength=strength,
            mask=mask,
            color=color,
            tile=tile,
            overlap=overlap,
        )
    else:
        results = apply_network(model, images, color, batch_size, tile, overlap)
    return [
        save_image(r, t, protect=tuple(contents)) for r, t in zip(results, targets, strict=True)
    ]
