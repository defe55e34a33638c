"""Patch-grid artefacts of transformer backbones, measured (the mitigations: nst.optimize.controls.shifts).

Split an image x (C x H x W, H and W multiples of P) into its (H/P)(W/P) patches
and average them into one mean patch m (C x P x P). The patch-periodic component of x is m
tiled over the image; by Parseval it is exactly the part of the spectrum on the lattice of
the patch frequency and its harmonics, (u, v) in {(a H/P, b W/P)}. The patch-grid energy is

    E_P(x) = sum_c ||m_c - mean(m_c)||^2 * (H W / P^2) / sum_c ||x_c - mean(x_c)||^2

the share of the image's variance that repeats with period P (in [0, 1]). Random noise
scores about P^2 / (H W) (one over the number of patches); a pure P-periodic pattern
scores 1.
"""

from __future__ import annotations

import torch


def patch_grid_energy(image: torch.Tensor, patch: int = 16) -> float:
    """E_P: the share of an image's variance that repeats every `patch` pixels (see above).

    image: CxHxW or 1xCxHxW; sides that are not multiples of `patch` are cropped to the
    largest multiple (bottom/right), so the metric always uses whole patches.
    """
    x = image.detach().float()
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"patch_grid_energy takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    c, h, w = x.shape
    gh, gw = h // patch, w // patch
    if gh < 1 or gw < 1:
        raise ValueError(f"image {h}x{w} is smaller than one {patch}px patch")
    x = x[:, : gh * patch, : gw * patch]
    x = x - x.mean(dim=(1, 2), keepdim=True)
    total = float((x**2).sum())
    if total == 0.0:
        return 0.0
    mean_patch = x.reshape(c, gh, patch, gw, patch).mean(dim=(1, 3))  # C x P x P
    mean_patch = mean_patch - mean_patch.mean(dim=(1, 2), keepdim=True)
    periodic = float((mean_patch**2).sum()) * gh * gw
    return periodic / total
