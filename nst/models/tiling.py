"""Feed-forward stylisation of any size in bounded memory: the network run on tiles
(nst.models.tiles: halo, overlap, feathers), what spans the whole image computed once for it.

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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nst.models.tiles import blend, check_tile, reference_size


def stylize_tiled(
    run: Callable[[int, int, int, int], torch.Tensor],
    hw: Sequence[int],
    tile: int,
    overlap: int,
    halo: int = 0,
) -> torch.Tensor:
    """nst.models.tiles.blend of a network's tiles: the 1x3xHxW result on the CPU, float32."""

    def region(*box: int) -> np.ndarray:
        return run(*box).float().cpu().numpy()

    return torch.from_numpy(blend(region, hw, tile, overlap, halo))


def reference_view(image: torch.Tensor, tile: int) -> torch.Tensor:
    """The view whose statistics stand for the whole image's when it runs in tiles of `tile`
    (nst.models.tiles.reference_size): `image` itself, or resized (bilinear, antialiased)."""
    size = reference_size(image.shape[-2:], tile)
    if size == tuple(image.shape[-2:]):
        return image
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
    run: Callable[[int, int, int, int], torch.Tensor],
    tiling: tuple[int, int, int],
) -> torch.Tensor:
    """`image` stylised in tiles (tile, overlap, halo) by run(y, x, h, w), with the statistics
    that whole(view) gives on the reference view of the whole image (module docstring)."""
    tile, overlap, halo = tiling
    check_tile(tile, overlap)
    reference = reference_view(image, tile)
    with torch.no_grad(), frozen_statistics(model, lambda: whole(reference)):
        return stylize_tiled(run, image.shape[-2:], tile, overlap, halo)
