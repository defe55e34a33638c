"""Style match in colour: does the result use the style image's palette?

Both metrics see an image as a set of pixels, so they are invariant to any spatial
rearrangement of the pixels (and to image size): they judge the palette, not its layout.
Colours are compared in CIE L*a*b* (D65, skimage.color.rgb2lab), where Euclidean distance
roughly follows perceived colour difference (1 unit ~ a just noticeable difference).

Chroma Hellinger. p, q are the normalised 2-D histograms of (a*, b*) over 32 x 32 bins
covering [-110, 110]^2 (the sRGB gamut lies within it; values outside are clipped to the
edge bins). The luminance L* is left out on purpose: it belongs to content. In the spirit
of HistoGAN (Afifi, Brubaker & Brown, 2021), which compares RGB-uv chroma histograms with
the Hellinger distance,

    H(p, q) = sqrt(1 - sum_i sqrt(p_i q_i))        in [0, 1], 0 iff p = q, lower is better.

Lab EMD. The Earth Mover's (Wasserstein-1) distance between the two pixel clouds in Lab
(Rubner, Tomasi & Guibas, 2000) is costly in 3-D; its sliced version (Rabin, Peyre, Delon &
Bernot, 2011) averages exact 1-D distances of projections onto unit directions theta_k,

    SW_1(X, Y) = 1/K sum_k W_1(<X, theta_k>, <Y, theta_k>),

with K = 32 fixed directions: the three Lab axes plus 29 drawn uniformly on the sphere from
a generator seeded with 0, so values are reproducible. W_1 in 1-D is computed exactly by
scipy.stats.wasserstein_distance. In Lab units, >= 0, 0 iff the projected distributions
agree, lower is better.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from skimage.color import rgb2lab

HIST_BINS = 32
HIST_RANGE = (-110.0, 110.0)
N_DIRECTIONS = 32
DIRECTION_SEED = 0


def lab_pixels(image: torch.Tensor) -> np.ndarray:
    """The pixels of a 1x3xHxW image in [0, 1] as an (H*W) x 3 array of (L*, a*, b*)."""
    rgb = image[0].detach().double().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return np.asarray(rgb2lab(rgb)).reshape(-1, 3)


def chroma_histogram(image: torch.Tensor, bins: int = HIST_BINS) -> np.ndarray:
    """Normalised bins x bins histogram of (a*, b*), summing to 1."""
    lab = np.clip(lab_pixels(image)[:, 1:], HIST_RANGE[0], HIST_RANGE[1])
    hist, _, _ = np.histogram2d(lab[:, 0], lab[:, 1], bins=bins, range=[HIST_RANGE, HIST_RANGE])
    return hist / hist.sum()


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """H(p, q) = sqrt(1 - sum sqrt(p q)) for two normalised histograms."""
    bc = float(np.sum(np.sqrt(p * q)))
    return float(np.sqrt(max(0.0, 1.0 - bc)))


def color_hellinger(result: torch.Tensor, style: torch.Tensor) -> float:
    """Hellinger distance of the a*b* chroma histograms of result and style. In [0, 1]."""
    return hellinger(chroma_histogram(result), chroma_histogram(style))


def directions(k: int = N_DIRECTIONS, seed: int = DIRECTION_SEED) -> np.ndarray:
    """k x 3 unit vectors: the three axes, then seeded uniform directions on the sphere."""
    rng = np.random.default_rng(seed)
    random = rng.standard_normal((max(0, k - 3), 3))
    random /= np.linalg.norm(random, axis=1, keepdims=True)
    return np.concatenate([np.eye(3), random])[:k]


def color_emd_lab(result: torch.Tensor, style: torch.Tensor) -> float:
    """Sliced Wasserstein-1 distance between the Lab pixel sets of result and style (Lab units)."""
    x, y = lab_pixels(result), lab_pixels(style)
    theta = directions()
    return float(np.mean([wasserstein_distance(x @ t, y @ t) for t in theta]))
