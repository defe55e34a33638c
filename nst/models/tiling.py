"""Feed-forward stylisation of any size in bounded memory: tiles blended without seams, the
statistics that span the whole image computed once for it.

A network runs on overlapping tiles of `tile` x `tile` pixels, each with `halo` pixels of the
image around it as context (so the network's padding falls outside the tile, cropped off
after); each output tile is weighted by a feather (a ramp from the tile's border to `overlap` pixels in, flat inside; 1 at the image's
own borders) and the weighted sum is divided by the summed weights, so neighbouring tiles
cross-fade over their overlap and no tile border shows.

Tiles alone would change the result: every instance normalisation (johnson's layers, AdaIN's
content normalisation) would normalise each tile by its own mean and variance, so tiles would
differ in colour and contrast. `frozen_statistics` therefore runs the network once on a
reference view of the whole image (the image itself when it fits, else the image resized to
the reference's pixel budget), records each nn.InstanceNorm2d's per-channel mean and variance
there, and makes every tile use them: the normalisation of the whole image, not of the tile.
With the full image as reference the tiled result equals the untiled one up to the networks'
padding at tile borders (which the feather hides); with a smaller reference the statistics are
those of the downscaled image, an approximation measured in the tests and the benchmark.
A style (adain, stytr) is encoded once, at its own size, whatever the tiling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError

#: run(y, x, h, w) -> the stylised h x w tile of the image at (y, x), 1x3xhxw
Stylise = Callable[[int, int, int, int], torch.Tensor]
#: the overlap of neighbouring tiles, and the context each tile is run with beyond its own
#: pixels (cropped off after), in pixels, when none is given
OVERLAP, HALO = 16, 32
#: the pixels of the reference view whose statistics every tile uses (an image up to this
#: size is its own reference: exact statistics)
REFERENCE = 1024 * 1024


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: tiles of `tile` that cover [0, length), neighbours sharing at
    least `overlap` pixels, the last tile flush with the end."""
    if tile >= length:
        return [0]
    step = tile - overlap
    out = list(range(0, length - tile, step))
    return [*out, length - tile]


def feather(length: int, overlap: int, first: bool, last: bool) -> torch.Tensor:
    """1-D weights of one tile: rising over `overlap` pixels from a border shared with another
    tile (never 0: every pixel keeps some weight), flat at an image border."""
    w = torch.ones(length)
    ramp = torch.linspace(1.0 / (overlap + 1), 1.0, overlap + 2)[1:-1] if overlap else None
    if ramp is not None and not first:
        w[: len(ramp)] = ramp
    if ramp is not None and not last:
        w[-len(ramp) :] = ramp.flip(0)
    return w


def stylize_tiled(
    run: Stylise, hw: Sequence[int], tile: int, overlap: int, halo: int = 0
) -> torch.Tensor:
    """run(y, x, h, w) -> the stylised region at (y, x), over the tiles of an image of size
    `hw`: each tile run with `halo` pixels of context on every side (less at the image's
    borders) and cropped back, the tiles blended with feathers over their overlap; returns the
    1x3xHxW result on the CPU in float32."""
    check_tile(tile, overlap)
    h, w = hw
    out = torch.zeros(1, 3, h, w)
    total = torch.zeros(1, 1, h, w)
    ys, xs = starts(h, tile, overlap), starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    for i, y in enumerate(ys):
        wy = feather(th, min(overlap, th // 2), i == 0, i == len(ys) - 1)
        y0, y1 = max(0, y - halo), min(h, y + th + halo)
        for j, x in enumerate(xs):
            wx = feather(tw, min(overlap, tw // 2), j == 0, j == len(xs) - 1)
            x0, x1 = max(0, x - halo), min(w, x + tw + halo)
            region = run(y0, x0, y1 - y0, x1 - x0).float().cpu()
            piece = region[..., y - y0 : y - y0 + th, x - x0 : x - x0 + tw]
            weight = (wy[:, None] * wx[None, :]).view(1, 1, th, tw)
            out[..., y : y + th, x : x + tw] += piece * weight
            total[..., y : y + th, x : x + tw] += weight
    return out / total


def check_tile(tile: int, overlap: int) -> None:
    if overlap < 0 or tile <= 2 * overlap:
        raise NstError(
            f"tile {tile} must exceed twice the overlap {overlap}: use a larger --tile "
            "or a smaller --tile-overlap"
        )


def crop(image: torch.Tensor, y: int, x: int, h: int, w: int) -> torch.Tensor:
    return image[..., y : y + h, x : x + w]


def reference_view(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """`image` itself when it has at most `pixels` pixels, else resized (aspect kept) to about
    that many: the view whose statistics stand for the whole image's."""
    h, w = image.shape[-2:]
    if h * w <= pixels:
        return image
    scale = (pixels / (h * w)) ** 0.5
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True)


@contextmanager
def frozen_statistics(model: nn.Module, reference: Callable[[], object]) -> Iterator[None]:
    """Within the block, every nn.InstanceNorm2d of `model` normalises with the per-channel mean
    and variance it saw while `reference()` ran (the module docstring), not with its input's."""
    norms = [m for m in model.modules() if isinstance(m, nn.InstanceNorm2d)]
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].float()
        stats[module] = (
            x.mean(dim=(2, 3), keepdim=True),
            x.var(dim=(2, 3), keepdim=True, unbiased=False),
        )

    hooks = [m.register_forward_pre_hook(record) for m in norms]
    try:
        with torch.no_grad():
            reference()
    finally:
        for h in hooks:
            h.remove()
    originals = {m: m.forward for m in norms}
    for m in norms:
        m.forward = _frozen(m, *stats[m])  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        for m, forward in originals.items():
            m.forward = forward  # type: ignore[method-assign]


def _frozen(
    m: nn.InstanceNorm2d, mean: torch.Tensor, var: torch.Tensor
) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(x: torch.Tensor) -> torch.Tensor:
        y = (x - mean.to(x.dtype)) / torch.sqrt(var.to(x.dtype) + m.eps)
        if m.affine:
            y = y * m.weight.view(1, -1, 1, 1) + m.bias.view(1, -1, 1, 1)
        return y

    return forward


def stylize_in_tiles(
    model: nn.Module,
    image: torch.Tensor,
    whole: Callable[[torch.Tensor], object],
    run: Stylise,
    tiling: tuple[int, int, int],
) -> torch.Tensor:
    """`image` stylised in tiles (tile, overlap, halo) by run(y, x, h, w), with the statistics
    that whole(view) gives on the reference view of the whole image (module docstring)."""
    tile, overlap, halo = tiling
    check_tile(tile, overlap)
    reference = reference_view(image, max(REFERENCE, tile**2))
    with torch.no_grad(), frozen_statistics(model, lambda: whole(reference)):
        return stylize_tiled(run, image.shape[-2:], tile, overlap, halo)
