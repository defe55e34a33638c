"""Reflection padding whose backward is deterministic on CUDA.

nn.ReflectionPad2d's CUDA backward accumulates the gradients of the mirrored border pixels with
atomic adds, so two runs can differ in the last bits, and torch.use_deterministic_algorithms
refuses it. Under that mode (nst's `deterministic` training) this layer builds the same padded
tensor from flipped slices and concatenations instead: plain copies, whose backward adds the
border gradients in a fixed order. The forward values are identical either way; everywhere
else the fused kernel runs (faster, and what ONNX export sees).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reflect(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """x reflected by `pad` at both ends of `dim` (the edge itself not repeated)."""
    n = x.shape[dim]
    head = x.narrow(dim, 1, pad).flip(dim)
    tail = x.narrow(dim, n - 1 - pad, pad).flip(dim)
    return torch.cat([head, x, tail], dim)


class ReflectionPad2d(nn.ReflectionPad2d):
    """nn.ReflectionPad2d with a deterministic CUDA backward in deterministic mode."""

    def __init__(self, padding: int):
        super().__init__(padding)
        self.pad = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad and x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return reflect(reflect(x, self.pad, -2), self.pad, -1)
        return F.pad(x, self.padding, "reflect")
