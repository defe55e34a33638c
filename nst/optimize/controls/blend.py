"""Several style images, mixed by weight (as neural-style's -style_blend_weights).

With style images S_1..S_n and weights b_1..b_n >= 0 (config.style_blend; empty = equal), the
style target of layer l is the weighted mean of their style loss's targets (Gram matrices, or
moments: nst.perceptual),

    A^l = sum_i b_i' A_i^l,   b_i' = b_i / sum_j b_j,

so the optimised image matches one blended texture statistic. With weights (1, 0) the target
is exactly A_1^l (0 * A_2^l adds nothing), i.e. the same run as style 1 alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from nst import NstError
from nst.perceptual import PerceptualLoss


def as_styles(style: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """One style tensor or several, as a non-empty list."""
    styles = [style] if isinstance(style, torch.Tensor) else list(style)
    if not styles:
        raise NstError("no style image given")
    return styles


def blend_weights(weights: Sequence[float], n: int) -> list[float]:
    """Normalised blend weights b_i' for n styles (equal when `weights` is empty)."""
    if not weights:
        return [1.0 / n] * n
    if len(weights) != n:
        raise NstError(
            f"style_blend has {len(weights)} weights for {n} style image(s): give one per style"
        )
    total = float(sum(weights))
    return [float(w) / total for w in weights]


def blended_targets(
    extract: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    styles: Sequence[torch.Tensor],
    layers: Sequence[str],
    weights: Sequence[float],
    loss: PerceptualLoss,
) -> dict[str, torch.Tensor]:
    """A^l = sum_i b_i' T(F_l(S_i)) for each style layer l (no gradient), T the style loss's
    target: normalised Grams (or moments), so styles of different sizes blend by their
    statistics, not their pixel counts (Gatys normalisation rescales the blend:
    nst.perceptual). A set of positions (sliced_wasserstein, relaxed_emd) does not blend:
    several styles are refused in one line."""
    if len(styles) > 1 and not loss.style_loss.blends:
        raise NstError(
            f"style_loss {loss.config.style_loss} matches one style's distribution: give one "
            "style image, or blend several with style_loss gram or moments"
        )
    b = blend_weights(weights, len(styles))
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for bi, s in zip(b, styles, strict=True):
            feats = extract(s)
            for layer in layers:
                g = bi * loss.style_target(feats[layer])
                targets[layer] = g if layer not in targets else targets[layer] + g
    return targets
