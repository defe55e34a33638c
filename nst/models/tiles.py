"""Covering an image with overlapping tiles and blending their results without seams
(numpy only: `nst apply` of an ONNX graph tiles without importing torch).

A network runs on overlapping tiles of `tile` x `tile` pixels, each with `halo` pixels of the
image around it as context (so the network's padding falls outside the tile, cropped off
after); each output tile is weighted by a feather (a ramp from the tile's border to `overlap`
pixels in, flat inside; 1 at the image's own borders) and the weighted sum is divided by the
summed weights, so neighbouring tiles cross-fade over their overlap and no tile border shows.
What a network computes over the whole image is another matter: nst.models.tiling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nst import NstError

#: run(y, x, h, w) -> the stylised h x w region of the image at (y, x), 1x3xhxw (an array or
#: a tensor: anything np.asarray reads)
Stylise = Callable[[int, int, int, int], Any]
#: the overlap of neighbouring tiles, and the context each tile is run with beyond its own
#: pixels (cropped off after), in pixels, when none is given
OVERLAP, HALO = 16, 32
#: the pixels of the reference view whose statistics every tile uses (an image up to this
#: size is its own reference: exact statistics; nst.models.tiling)
REFERENCE = 1024 * 1024


def starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts along one axis: tiles of `tile` that cover [0, length), neighbours sharing at
    least `overlap` pixels, the last tile flush with the end."""
    if tile >= length:
        return [0]
    step = tile - overlap
    out = list(range(0, length - tile, step))
    return [*out, length - tile]


def feather(length: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """1-D weights of one tile: rising over `overlap` pixels from a border shared with another
    tile (never 0: every pixel keeps some weight), flat at an image border."""
    w = np.ones(length, dtype=np.float32)
    ramp = np.linspace(1.0 / (overlap + 1), 1.0, overlap + 2, dtype=np.float32)[1:-1]
    if overlap and not first:
        w[: len(ramp)] = ramp
    if overlap and not last:
        w[-len(ramp) :] = ramp[::-1]
    return w


def reference_size(hw: Sequence[int], tile: int) -> tuple[int, int]:
    """The size (h, w) of the view whose statistics stand for an image of size `hw` run in
    tiles of `tile` (nst.models.tiling): the image's own up to REFERENCE pixels (or a tile's),
    else the aspect kept at about that many."""
    h, w = hw
    pixels = max(REFERENCE, tile**2)
    if h * w <= pixels:
        return h, w
    scale = (pixels / (h * w)) ** 0.5
    return max(1, round(h * scale)), max(1, round(w * scale))


def check_tile(tile: int, overlap: int) -> None:
    if overlap < 0 or tile <= 2 * overlap:
        raise NstError(
            f"tile {tile} must exceed twice the overlap {overlap}: use a larger --tile "
            "or a smaller --tile-overlap"
        )


def crop(image: Any, y: int, x: int, h: int, w: int) -> Any:
    """The h x w region at (y, x) of an N x C x H x W array or tensor."""
    return image[..., y : y + h, x : x + w]


def blend(run: Stylise, hw: Sequence[int], tile: int, overlap: int, halo: int = 0) -> np.ndarray:
    """run(y, x, h, w) over the tiles of an image of size `hw` (module docstring): each tile
    run with `halo` pixels of context on every side (less at the image's borders) and cropped
    back, the tiles blended with feathers over their overlap; the 1x3xHxW result, float32."""
    check_tile(tile, overlap)
    h, w = hw
    out = np.zeros((1, 3, h, w), dtype=np.float32)
    total = np.zeros((1, 1, h, w), dtype=np.float32)
    ys, xs = starts(h, tile, overlap), starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    for i, y in enumerate(ys):
        wy = feather(th, min(overlap, th // 2), i == 0, i == len(ys) - 1)
        y0, y1 = max(0, y - halo), min(h, y + th + halo)
        for j, x in enumerate(xs):
            wx = feather(tw, min(overlap, tw // 2), j == 0, j == len(xs) - 1)
            x0, x1 = max(0, x - halo), min(w, x + tw + halo)
            region = np.asarray(run(y0, x0, y1 - y0, x1 - x0), dtype=np.float32)
            piece = region[..., y - y0 : y - y0 + th, x - x0 : x - x0 + tw]
            weight = (wy[:, None] * wx[None, :])[None, None]
            out[..., y : y + th, x : x + tw] += piece * weight
            total[..., y : y + th, x : x + tw] += weight
    out /= total
    return out
