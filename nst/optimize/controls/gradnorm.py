"""Gradient normalisation per loss term.

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

(The per-layer weights' normalisation, layer_weight_normalization, is part of the loss:
nst.losses.normalize_layer_weights.)
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

EPS = 1e-8


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
