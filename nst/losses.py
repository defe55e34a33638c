"""The loss terms of neural style transfer, as pure functions of feature tensors.

Notation (Gatys, Ecker & Bethge, 2016): F^l is the C_l x M_l matrix of layer l's features of
the generated image (C_l channels, M_l = H_l * W_l positions), P^l the content image's, and
A^l the Gram matrix of the style image at layer l.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F


def gram(features: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Gram matrix G = F F^T of an NxCxHxW tensor, one CxC matrix per batch item.

    G_ij = sum_k F_ik F_jk / (C * H * W) when `normalize` (the PyTorch tutorial's convention,
    which makes the value independent of image size), or the raw sum otherwise (Gatys).
    """
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    if features.dtype == torch.float16:
        # fp16 ends at 65504, below a raw sum over the 65,536 positions of a 256 px crop:
        # the factors are scaled by 1 / sqrt(C H W) before the product, the sum after it
        flat = flat * (c * h * w) ** -0.5
        g = _product(flat)
        return g if normalize else g.float() * (c * h * w)
    g = _product(flat)
    return g / (c * h * w) if normalize else g


def _product(flat: torch.Tensor) -> torch.Tensor:
    """F F^T of N x C x M features."""
    # a 2-D mm when n == 1: on CPU its backward is 1.2x (fp32) to 2.4x (bf16) faster than bmm's
    if len(flat) == 1:
        return (flat[0] @ flat[0].T).unsqueeze(0)
    return torch.bmm(flat, flat.transpose(1, 2))


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_content = mean_ij (F_ij - P_ij)^2, the mean squared feature difference.

    Gatys use 1/2 * sum; the mean makes layers of different sizes comparable."""
    return F.mse_loss(features, target)  # fused: one pass, no temporary difference tensor


def style_layer_loss(
    features: torch.Tensor, target_gram: torch.Tensor, gatys: bool = False
) -> torch.Tensor:
    """E_l, the style loss of one layer.

    gram (default): E_l = mean_ij (G_ij - A_ij)^2 with G, A normalised by C*H*W.
    gatys:          E_l = 1 / (4 C_l^2 M_l^2) * sum_ij (G_ij - A_ij)^2 with raw Gram matrices
                    (equation 4 of Gatys et al.); `target_gram` must then be raw too.
    """
    # the Gram product runs in the features' dtype (bf16 in bf16 mode); the loss in fp32
    if not gatys:
        return F.mse_loss(gram(features).float(), target_gram)
    _, c, h, w = features.shape
    return torch.sum((gram(features, normalize=False).float() - target_gram) ** 2) / (
        4.0 * c**2 * (h * w) ** 2
    )


def weighted_sum(terms: Mapping[str, torch.Tensor], weights: Sequence[float] = ()) -> torch.Tensor:
    """sum_l w_l * E_l over layers; equal weights 1/L when `weights` is empty."""
    values = list(terms.values())
    w = list(weights) if weights else [1.0 / len(values)] * len(values)
    return sum((wi * v for wi, v in zip(w, values, strict=True)), torch.zeros_like(values[0]))


def total_variation(image: torch.Tensor, kind: str = "l2") -> torch.Tensor:
    """Total variation of an NxCxHxW image, a smoothness prior.

    l1: TV = mean |x_{i+1,j} - x_{i,j}| + mean |x_{i,j+1} - x_{i,j}|  (anisotropic)
    l2: TV = mean (x_{i+1,j} - x_{i,j})^2 + mean (x_{i,j+1} - x_{i,j})^2
    The differences only pair pixels inside the image, so there is no wrap-around or
    padding term at the borders; each mean is over the (H-1)*W or H*(W-1) differences, and a
    direction with none (a one-pixel-high or -wide image) contributes 0.
    """
    dh = image[..., 1:, :] - image[..., :-1, :]
    dw = image[..., :, 1:] - image[..., :, :-1]
    if kind == "l1":
        return _mean(dh.abs()) + _mean(dw.abs())
    if kind == "l2":
        return _mean(dh**2) + _mean(dw**2)
    raise ValueError(f"unknown TV kind {kind!r}; use l1 or l2")


def _mean(t: torch.Tensor) -> torch.Tensor:
    return t.mean() if t.numel() else t.new_zeros(())


LAYER_NORMALIZATIONS = ("none", "sum", "channels")


def normalize_layer_weights(
    weights: Sequence[float], channels: Sequence[int], mode: str
) -> tuple[float, ...]:
    """Per-layer weights w_l of a content or style sum L = sum_l w_l E_l after `mode` (empty
    weights mean 1/L each); `channels` holds C_l per layer:

        none:     w_l unchanged
        sum:      w_l / sum_k w_k, so the weights are shares of one budget
        channels: (w_l / C_l^2) / sum_k (w_k / C_k^2), the 1/N_l^2 factor of Gatys et al.'s
                  style loss used as a layer weight by some implementations, renormalised to
                  sum 1 so that beta keeps its scale
    """
    if mode not in LAYER_NORMALIZATIONS:
        raise ValueError(
            f"unknown layer weight normalisation {mode!r}; use {', '.join(LAYER_NORMALIZATIONS)}"
        )
    w = [float(v) for v in weights] or [1.0 / len(channels)] * len(channels)
    if mode == "channels":
        w = [wi / c**2 for wi, c in zip(w, channels, strict=True)]
    if mode != "none":
        s = sum(w)
        w = [wi / s for wi in w] if s > 0 else w
    return tuple(w)


def transform_features(
    feats: dict[str, torch.Tensor], kind: str, temperature: float = 1.0
) -> dict[str, torch.Tensor]:
    """The feature transform applied before every loss (targets and candidate alike).

    none:    F unchanged (the same tensors, so the losses are bit-identical to no transform).
    softmax: Wang et al., CVPR 2021, "Rethinking and Improving the Robustness of Image Style
             Transfer" (SWAG): each channel's map becomes a distribution over its M = H W
             positions,

                 S_c,p = M * exp(F_c,p / T) / sum_q exp(F_c,q / T)

             with temperature T. Peaky, low-entropy activations (ResNet-like, non-VGG
             networks) are smoothed, which is what makes their Gram statistics usable for
             style. The factor M (our choice) keeps each channel's mean at 1 whatever the image
             size, so loss weights tuned on raw features stay in range. Computed in float32
             (the sum over positions), returned in the features' dtype.
    """
    if kind == "none":
        return feats
    out: dict[str, torch.Tensor] = {}
    for layer, f in feats.items():
        flat = f.float().flatten(2) / temperature
        m = flat.shape[-1]
        out[layer] = (torch.softmax(flat, dim=-1) * m).view(f.shape).to(f.dtype)
    return out


def gatys_target(normalised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The raw-Gram target A^l of Gatys normalisation, at the size of the image optimised.

    A raw Gram matrix sums over the M_l = H_l W_l positions, so the style's, taken at the style
    image's size, is M_style / M_content times the one a result of the content's size can reach
    with the same statistics; matching it would rescale the activations, not copy the style.
    The target is therefore the style's normalised Gram G / (C_l M_style) times C_l M_content
    (the style's raw Gram rescaled by M_content / M_style): invariant to the style image's
    size, and equal to the raw Gram when both sizes agree."""
    _, c, h, w = content.shape
    return normalised * (c * h * w)


#: the variance floor of the moments (AdaIN's eps)
MOMENT_EPS = 1e-5


def mean_std(f: torch.Tensor, eps: float = MOMENT_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-item, per-channel (mu, sigma) of an NxCxHxW map, as NxCx1x1; sigma = sqrt(var + eps)."""
    n, c = f.shape[:2]
    flat = f.reshape(n, c, -1)
    var = flat.var(dim=2, unbiased=False) + eps
    return flat.mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def moment_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_ms = ||mu(F) - mu(S)||^2 + ||sigma(F) - sigma(S)||^2 (each a mean over items and
    channels): the style loss of AdaIN (Huang & Belongie 2017, eq. 13), the first two moments
    of each channel over positions (mean_std) instead of their correlations (gram)."""
    ma, sa = mean_std(features.float())
    mb, sb = mean_std(target.float())
    return F.mse_loss(ma, mb) + F.mse_loss(sa, sb)


# Style losses that match feature distributions instead of Gram matrices (issue: "Style losses
# researchers compare"). F is a layer's N x C x H x W map read as N sets of M = H W vectors
# in R^C; the style's set has M' vectors (another image size is allowed).


def positions(features: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x M x C: each position's feature vector, one row per position (a
    set N x M x C is returned as it is)."""
    if features.ndim == 3:
        return features
    n, c = features.shape[:2]
    return features.reshape(n, c, -1).transpose(1, 2)


def sliced_wasserstein(
    features: torch.Tensor, target: torch.Tensor, projections: int = 32, seed: int = 0
) -> torch.Tensor:
    """The sliced Wasserstein loss (Heitz, Vanhoey, Chambon & Belcour, CVPR 2021):

        SW(F, S) = 1/P sum_p  1/M sum_i ( sort(F v_p)_i - sort(S v_p)_i )^2

    over P unit directions v_p drawn once from a seeded Gaussian (the same for every call of
    one seed, so an optimisation follows one loss). Each term is the exact squared 2-Wasserstein
    distance between the 1-D projections of the two sets; with one channel it is the exact
    W2^2 between the sets. A target of another size M' is resampled to M sorted values by
    linear interpolation (Heitz et al. do the same). Mean over the N items."""
    c = positions(features).shape[-1]
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(c, projections, generator=gen).to(features.device)
    v = v / v.norm(dim=0, keepdim=True)
    a = torch.sort(positions(features.float()) @ v, dim=1).values  # N x M x P
    b = torch.sort(positions(target.float()) @ v, dim=1).values  # N x M' x P
    if b.shape[1] != a.shape[1]:
        b = F.interpolate(b.transpose(1, 2), size=a.shape[1], mode="linear", align_corners=True)
        b = b.transpose(1, 2)
    return ((a - b) ** 2).mean()


def cosine_cost(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C_ij = 1 - <a_i, b_j> / (|a_i| |b_j|) between the rows of N x M x C and N x M' x C."""
    a = F.normalize(a.float(), dim=-1, eps=1e-8)
    b = F.normalize(b.float(), dim=-1, eps=1e-8)
    return 1.0 - a @ b.transpose(1, 2)


def euclidean_cost(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C_ij = sqrt(|a_i - b_j|^2 / C), the Euclidean distance per channel, between the rows of
    N x M x C and N x M' x C; the squared distance clamped to [1e-5, 1e5] as STROTSS's code
    does, which keeps the square root's gradient finite where two vectors coincide."""
    d2 = torch.cdist(a.float(), b.float()) ** 2
    return torch.sqrt(d2.clamp(1e-5, 1e5) / a.shape[-1])


def relaxed_emd(
    features: torch.Tensor,
    target: torch.Tensor,
    cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = cosine_cost,
) -> torch.Tensor:
    """The relaxed earth mover's distance of STROTSS (Kolkin, Salavon & Shakhnarovich, CVPR
    2019, eq. 5), with the cost C between feature vectors (cosine by default, as the paper):

        REMD(F, S) = max( 1/M sum_i min_j C_ij ,  1/M' sum_j min_i C_ij )

    each side moves every vector to its nearest neighbour in the other set (one of the two
    constraints of the transport problem dropped), so REMD <= EMD. Mean over the N items."""
    c = cost(positions(features), positions(target))
    forward = c.min(dim=2).values.mean(dim=1)
    backward = c.min(dim=1).values.mean(dim=1)
    return torch.maximum(forward, backward).mean()


def self_similarity_loss(features: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """STROTSS's content loss (eq. 9): the result's self-similarity pattern should be the
    content's. With D the cosine-distance matrix of a set with itself (D_ij = C(f_i, f_j)),

        L = 1/M^2 sum_ij | D^X_ij / sum_i D^X_ij  -  D^C_ij / sum_i D^C_ij |

    (each column normalised by its sum), so the loss ignores the features' scale and colour
    and keeps which positions resemble which. Both maps must have the same size."""
    dx = cosine_cost(positions(features), positions(features))
    dc = cosine_cost(positions(content), positions(content))
    eps = 1e-8
    return (
        (dx / (dx.sum(dim=1, keepdim=True) + eps) - dc / (dc.sum(dim=1, keepdim=True) + eps))
        .abs()
        .mean()
    )


def mean_covariance_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """STROTSS's moment loss (Kolkin et al. 2019, eq. 8): the first two moments of the sets
    of feature vectors, the covariance instead of AdaIN's per-channel deviation,

        L_m = 1/C sum_c |mu^F_c - mu^S_c|  +  1/C^2 sum_cd |Sigma^F_cd - Sigma^S_cd|

    with mu the mean and Sigma the covariance (divided by M) over positions. It constrains the
    features' magnitude, which the cosine cost of relaxed_emd ignores. Mean over the N items."""
    a, b = positions(features.float()), positions(target.float())
    mu_a, mu_b = a.mean(dim=1, keepdim=True), b.mean(dim=1, keepdim=True)
    ca, cb = a - mu_a, b - mu_b
    sigma_a = ca.transpose(1, 2) @ ca / a.shape[1]
    sigma_b = cb.transpose(1, 2) @ cb / b.shape[1]
    return (mu_a - mu_b).abs().mean() + (sigma_a - sigma_b).abs().mean()
