"""Gradient normalisation per loss term and normalisation of per-layer weights.

normalize_gradients (after neural-style's `-normalize_gradients`). neural-style divides the
gradient that each loss module sends back by its L1 norm, so that every term pushes with a
strength set by its weight alone, whatever the scale of its raw value. We do the same per
loss *term* in image space: with terms L_t (content, style, tv) and weights w_t (alpha, beta,
gamma) the step direction is

    g = sum_t w_t * grad_x L_t / (||grad_x L_t||_1 + eps)

computed with one backward pass per term (torch.autograd.grad, graph retained), instead of
grad_x (sum_t w_t L_t). The reported loss is still sum_t w_t L_t; g is not its gradient, so
L-BFGS's line search can stop early: prefer Adam with this option. Because every term has unit
L1 gradient, alpha : beta : gamma are now relative strengths (e.g. 1 : 10), not the 1 : 1e5 that
the raw Gram loss needs.

layer_weight_normalization: the per-layer weights w_l of the content or style sum
L = sum_l w_l E_l (empty weights mean 1/L each) become
    none:     w_l unchanged;
    sum:      w_l / sum_k w_k, so the weights are shares of one budget;
    channels: (w_l / C_l^2) / sum_k (w_k / C_k^2), with C_l channels at layer l, the 1/N_l^2
              factor of Gatys et al.'s style loss used as a layer weight by some
              implementations; renormalised to sum 1 so that beta keeps its scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

EPS = 1e-8
LAYER_NORMALIZATIONS = ("none", "sum", "channels")


def normalized_backward(
    terms: Mapping[str, torch.Tensor], weights: Mapping[str, float], x: torch.Tensor
) -> torch.Tensor:
    """Set x.grad = sum_t w_t grad_x L_t / ||grad_x L_t||_1 over terms with w_t > 0; return it."""
    active = [(name, w) for name, w in weights.items() if w > 0 and terms[name].requires_grad]
    total = torch.zeros_like(x)
    for i, (name, w) in enumerate(active):
        (grad,) = torch.autograd.grad(terms[name], x, retain_graph=i < len(active) - 1)
        total += w * grad / (grad.abs().sum() + EPS)
    x.grad = total
    return total


def normalize_layer_weights(
    weights: Sequence[float], channels: Sequence[int], mode: str
) -> tuple[float, ...]:
    """Per-layer weights after `mode` (see the module docstring); `channels` holds C_l per layer."""
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
