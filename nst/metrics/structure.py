"""Content preservation: does the result keep the content image's structure?

All three compare luma, Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, nst.images.luma),
because style transfer is expected to change colours; structure lives in luminance.

SSIM (Wang, Bovik, Sheikh & Simoncelli, 2004). With Gaussian-weighted local means mu,
variances sigma^2 and covariance sigma_xy (11 x 11 window, sigma 1.5),

    SSIM(x, y) = mean over windows of (2 mu_x mu_y + C1)(2 sigma_xy + C2)
                                      / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2)),

C1 = (0.01)^2, C2 = (0.03)^2 for data range 1. In [-1, 1]; 1 iff x = y; higher is better.

MS-SSIM (Wang, Simoncelli & Bovik, 2003) multiplies the contrast-structure term at each of
S dyadic scales, raised to weights beta_s, with the luminance term at the coarsest:
MS-SSIM = l_S^beta_S prod_s cs_s^beta_s. The standard S = 5 (betas 0.0448, 0.2856, 0.3001,
0.2363, 0.1333) needs images of at least ~176 px on the short side, so S is the largest
number of scales that the image supports (`ms_ssim_scales`) and the first S betas are
renormalised to sum to 1 (so identical images still score 1). Values computed with different
S are not comparable: evaluate a study at one size. Negative cs terms are clipped at 0
(torchmetrics normalize="relu") so the product is defined; the range is then [0, 1].

Edge F1. Canny edges (sigma 1.5, default hysteresis thresholds on [0, 1] luma) of result
and content; an edge pixel counts as matched when the other map has an edge within a
tolerance of r = max(1, round(0.0075 * diagonal)) pixels (the BSDS benchmark's tolerance,
Martin, Fowlkes & Malik 2004; done with a disk dilation rather than bipartite matching):

    P = |E_r  and  dilate(E_c, r)| / |E_r|,   R = |E_c  and  dilate(E_r, r)| / |E_c|,
    F1 = 2 P R / (P + R)        (1 when neither image has edges, 0 when only one has).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from skimage.feature import canny
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    structural_similarity_index_measure,
)

from nst.images import luma

MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
KERNEL = 11
CANNY_SIGMA = 1.5


def ssim(result: torch.Tensor, content: torch.Tensor) -> float:
    """SSIM of the two images' luma (see the module docstring). In [-1, 1], higher is better."""
    value = structural_similarity_index_measure(
        luma(result.double()), luma(content.double()), data_range=1.0, kernel_size=KERNEL, sigma=1.5
    )
    return float(value)  # type: ignore[arg-type]


def ms_ssim_scales(height: int, width: int) -> int:
    """The most scales (<= 5) an image supports: the coarsest level, side / 2^(S-1), must hold
    an 11 px window, and torchmetrics' own size check must pass."""
    side = min(height, width)
    for s in range(len(MS_SSIM_BETAS), 1, -1):
        if (
            side >= 2**s
            and side // max(1, s - 1) ** 2 > KERNEL - 1
            and side / 2 ** (s - 1) >= KERNEL
        ):
            return s
    return 1


def ms_ssim(result: torch.Tensor, content: torch.Tensor) -> float:
    """MS-SSIM of the two images' luma with as many scales as the size allows. In [0, 1]."""
    scales = ms_ssim_scales(*result.shape[-2:])
    total = sum(MS_SSIM_BETAS[:scales])
    betas = tuple(b / total for b in MS_SSIM_BETAS[:scales])
    value = multiscale_structural_similarity_index_measure(
        luma(result.double()),
        luma(content.double()),
        data_range=1.0,
        kernel_size=KERNEL,
        sigma=1.5,
        betas=betas,
        normalize="relu",
    )
    return float(value)  # type: ignore[arg-type]


def edges(image: torch.Tensor, sigma: float = CANNY_SIGMA) -> np.ndarray:
    """Canny edge map (bool HxW) of a 1x3xHxW image's luma."""
    return np.asarray(canny(luma(image.double())[0, 0].cpu().numpy(), sigma=sigma))


def edge_tolerance(height: int, width: int) -> int:
    """BSDS match tolerance: 0.75% of the image diagonal, at least one pixel."""
    return max(1, round(0.0075 * (height**2 + width**2) ** 0.5))


def edge_f1(result: torch.Tensor, content: torch.Tensor, sigma: float = CANNY_SIGMA) -> float:
    """F1 of the result's edges against the content's, with tolerance (module docstring)."""
    e_r, e_c = edges(result, sigma), edges(content, sigma)
    n_r, n_c = int(e_r.sum()), int(e_c.sum())
    if n_r == 0 and n_c == 0:
        return 1.0
    if n_r == 0 or n_c == 0:
        return 0.0
    r = edge_tolerance(*e_r.shape)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disk = yy**2 + xx**2 <= r**2
    precision = (e_r & ndimage.binary_dilation(e_c, structure=disk)).sum() / n_r
    recall = (e_c & ndimage.binary_dilation(e_r, structure=disk)).sum() / n_c
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))
