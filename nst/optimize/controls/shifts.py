"""Patch-grid artefacts of transformer backbones: two mitigations.

A ViT sees the image through a fixed P x P patch grid, so an optimised image can lower
its loss with structure that repeats every P pixels: a visible grid. The metric measures
that periodic part (nst.metrics.artifacts); the mitigations take away the grid's fixed phase.

The metric, the patch-grid energy E_P, is nst.metrics.artifacts.patch_grid_energy.

Mitigations (TransferConfig.jitter, TransferConfig.shift_average; both 0 = off):
- jitter N: before each optimisation step draw a shift (dy, dx) uniformly in {0..N}^2
  from a generator seeded with the run's seed, and give the backbone the image rolled by
  it (the content target is computed from the content image rolled the same way, so
  content and image stay aligned). With N >= P - 1 every phase of the grid is visited.
- shift_average K: features are the mean over K fixed shifts s_k = round(k P / K),
  k = 0..K-1, applied on both axes, f(x) = 1/K sum_k f(roll(x, s_k)); targets use the
  same averaged extractor. Deterministic, K times the cost.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Shift = tuple[int, int]

Features = dict[str, torch.Tensor]


def roll(x: torch.Tensor, shift: Shift) -> torch.Tensor:
    """Circularly shift an NCHW image by (dy, dx) pixels; a no-op (same tensor) for (0, 0)."""
    return x if shift == (0, 0) else torch.roll(x, shifts=shift, dims=(-2, -1))


def average_shifts(count: int, period: int) -> list[Shift]:
    """The K fixed diagonal shifts s_k = round(k P / K) of shift averaging (K <= 1: none)."""
    if count <= 1:
        return [(0, 0)]
    return [(round(k * period / count),) * 2 for k in range(count)]  # type: ignore[misc]


def shift_averaged(
    extract: Callable[[torch.Tensor], Features], x: torch.Tensor, shifts: list[Shift]
) -> Features:
    """f(x) = 1/K sum_k f(roll(x, s_k)), layer by layer."""
    if len(shifts) == 1:
        return extract(roll(x, shifts[0]))
    total: Features = {}
    for s in shifts:
        for k, v in extract(roll(x, s)).items():
            total[k] = total[k] + v if k in total else v
    return {k: v / len(shifts) for k, v in total.items()}


class Jitter:
    """The per-step random shift of `jitter N`, drawn from its own seeded generator so that
    runs with the same seed see the same shifts (and the global RNG is left alone)."""

    def __init__(self, max_shift: int, seed: int):
        self.max_shift = max_shift
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.current: Shift = (0, 0)

    def next_step(self) -> Shift:
        """Draw the shift for the coming step (all closure calls of one step share it, which
        L-BFGS line searches need)."""
        if self.max_shift > 0:
            dy, dx = torch.randint(0, self.max_shift + 1, (2,), generator=self.generator).tolist()
            self.current = (dy, dx)
        return self.current
