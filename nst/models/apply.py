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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst import NstError
from nst.imagefiles import image_size, output_paths
from nst.images import load_image, save_image
from nst.memory import Estimate, budget, describe, estimate, refusal
from nst.models.io import load_model
from nst.models.pairs import stylize_pair_images
from nst.models.registry import model_inputs
from nst.models.tiles import HALO, OVERLAP, REFERENCE, crop
from nst.models.tiling import stylize_in_tiles
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
    image = control.content_image()

    def net(x: torch.Tensor) -> torch.Tensor:
        return model(x.to(device=param.device, dtype=param.dtype))

    y = stylize_in_tiles(model, image, net, lambda *box: net(crop(image, *box)), tiling)
    return control.finish(y)


#: the tile sides `--tile auto` tries, largest first
TILES = (2048, 1536, 1024, 768, 512, 384, 256, 128)


def memory_kind(meta: dict[str, Any]) -> tuple[str, float]:
    """nst.memory's kind of applying a checkpoint, and the scale of its per-pixel cost."""
    method, options = str(meta.get("method")), meta.get("options") or {}
    if method == "johnson":
        return "apply:johnson", float(options.get("width", 32)) / 32
    if method == "adain":
        return f"apply:adain:{options.get('encoder')}:{options.get('layer')}", 1.0
    if method == "stytr":
        return f"apply:stytr:{options.get('encoder')}", 1.0
    return f"apply:{method}", 1.0


def predicted(meta: dict[str, Any], megapixels: float, tile: int) -> Estimate | None:
    """The peak of stylising one image of `megapixels`, whole (tile 0) or in tiles: the
    largest pass is then the reference view or a tile with its halo, the image kept whole."""
    kind, scale = memory_kind(meta)
    if not tile:
        return estimate(kind, megapixels, scale=scale)
    pass_mp = max(min(megapixels, REFERENCE / 1e6), (tile + 2 * HALO) ** 2 / 1e6)
    return estimate(kind, pass_mp, megapixels, scale=scale)


def choose_tile(meta: dict[str, Any], megapixels: float, budget: float) -> int:
    """`--tile auto`: 0 when the whole image fits `budget` MiB, else the largest tile that does
    (the smallest one when none does: the check then refuses it)."""
    whole = predicted(meta, megapixels, 0)
    if whole is None or whole.mib <= budget:  # a kind not calibrated is never tiled here
        return 0
    for tile in TILES:
        found = predicted(meta, megapixels, tile)
        if found is not None and found.mib <= budget:
            return tile
    return TILES[-1]


def fit_hint(meta: dict[str, Any], megapixels: float, limit: float) -> str:
    """What would fit `limit` MiB when an image does not: a tile size, or a smaller image."""
    best = choose_tile(meta, megapixels, limit)
    tiled = predicted(meta, megapixels, best) if best else None
    if tiled is not None and tiled.mib <= limit:
        return f"--tile {best} would fit"
    whole = predicted(meta, megapixels, 0)
    fits = whole.largest_mp(limit) if whole is not None else 0.0
    return f"an image of {fits:.2f} MP would fit" if fits > 0.001 else "no size would fit"


def fitted_tile(
    meta: dict[str, Any], megapixels: float, tile: int | str, limit: float, source: str
) -> tuple[int, Estimate | None]:
    """The tile side one image of `megapixels` runs in (`auto`: choose_tile) and its predicted
    peak; an image predicted not to fit `limit` MiB (`source`: where the budget came from) is
    refused in one line naming what would fit."""
    chosen = choose_tile(meta, megapixels, limit) if tile == "auto" else int(tile)
    found = predicted(meta, megapixels, chosen)
    if found is not None and found.mib > limit:
        raise NstError(refusal(found, limit, source, fit_hint(meta, megapixels, limit)))
    return chosen, found


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
    tile: int | str = 0,
    overlap: int = OVERLAP,
    max_memory: str | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> list[Path]:
    """Stylise every content file into `out` (inputs all read first, so a bad one writes
    nothing); returns the written paths. `model_path` may also be a runs:/ or models:/ URI
    (nst.models.uri), downloaded from `tracking_uri`'s store. Arbitrary-style networks
    (adain, stytr) take `styles` and the controls of nst.models.pairs; a network for a bank of
    styles (cin) takes `styles` as names of its bank, mixed by `style_weights`; others refuse
    them."""
    with local_checkpoint(model_path, tracking_uri) as path:
        model, meta = load_model(path, resolve_device(device))
    arbitrary = "style" in model_inputs(model)
    select = getattr(model, "select", None)  # a bank of styles (cin): --style names one
    if select is not None and (mask or strength != 1.0):
        raise NstError(f"{model_path} is a cin network: --strength and --mask apply to adain")
    if select is not None and styles:
        select([str(s) for s in styles], style_weights)
    elif not arbitrary and (styles or mask or strength != 1.0 or style_weights):
        raise NstError(
            f"{model_path} is a {meta.get('method')} network with its style built in: "
            "--style, --style-weights, --strength and --mask apply to adain and stytr networks"
        )
    # the memory each image will need, from its header alone (nst.memory), before any is read
    limit, source = budget(max_memory)
    sizes = [image_size(c, size) for c in contents]
    tiles, kind = [], memory_kind(meta)[0]
    for path, (w, h) in zip(contents, sizes, strict=True):
        try:
            chosen, found = fitted_tile(meta, w * h / 1e6, tile, limit, source)
        except NstError as err:
            raise NstError(f"{path}: {err}") from None
        if dry_run:
            plan = f"tiles of {chosen}" if chosen else "whole"
            log(f"{path}: {w}x{h} px, {plan}, {describe(found, limit, source, kind)}")
        tiles.append(chosen)
    if dry_run:
        return []
    images = [load_image(c, size=size) for c in contents]
    targets = output_paths(contents, out)

    def run(batch: list[torch.Tensor], tile: int) -> list[torch.Tensor]:
        if not arbitrary:
            return apply_network(model, batch, color, batch_size, tile, overlap)
        return stylize_pair_images(
            model,
            batch,
            styles or [],
            size=size,
            style_weights=style_weights,
            strength=strength,
            mask=mask,
            color=color,
            tile=tile,
            overlap=overlap,
        )

    # untiled images share batches; a tiled one runs alone, in its own tile size
    results = (
        run(images, 0)
        if not any(tiles)
        else [run([image], t)[0] for image, t in zip(images, tiles, strict=True)]
    )
    return [
        save_image(r, t, protect=tuple(contents)) for r, t in zip(results, targets, strict=True)
    ]
