"""Degenerate outputs: results that are no stylisation, whatever their metrics say.

A flat grey image has the best possible tv and patch_energy and a fair ssim against a
low-contrast photo; the photo returned unchanged has ssim 1. Ranking such outputs first is
wrong, so the report names them instead of ranking them. Two tests, on images in [0, 1]:

    near-uniform     the mean over channels of the standard deviation over positions is below
                     UNIFORM_STD (a flat or almost flat image: 0.02 is about 5 grey levels)
    the photo itself the mean absolute difference to the content image, resized to the
                     result's size, is below PHOTO_MAD (a change of under 2.5% of the range:
                     a random-weights network's near-identity, not a style)

A result that passes both is a stylisation as far as this check can tell; one that fails names
the reason ("near-uniform", "the photo itself").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

UNIFORM_STD = 0.02
PHOTO_MAD = 0.025


def degenerate(result: torch.Tensor, content: torch.Tensor) -> str:
    """ "" for a stylisation, else why not: "near-uniform" or "the photo itself" (module
    docstring). `result` and `content`: 1x3xHxW (or 3xHxW) in [0, 1], any sizes."""
    r = result.detach().float().reshape(-1, *result.shape[-3:])[:1]
    if float(r.flatten(2).std(dim=2).mean()) < UNIFORM_STD:
        return "near-uniform"
    c = content.detach().float().reshape(-1, *content.shape[-3:])[:1]
    if c.shape[-2:] != r.shape[-2:]:
        c = F.interpolate(c, size=r.shape[-2:], mode="bilinear", align_corners=False)
    if float((r - c).abs().mean()) < PHOTO_MAD:
        return "the photo itself"
    return ""
