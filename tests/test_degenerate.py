"""nst.metrics.degenerate: a flat image and the photo itself are named, a stylisation is not."""

from __future__ import annotations

import torch

from nst.metrics.degenerate import degenerate


def test_flat_and_unchanged_outputs_are_named_and_a_stylisation_is_not() -> None:
    gen = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 48, 64, generator=gen)
    grey = torch.full((1, 3, 48, 64), 0.5) + 0.005 * torch.randn(1, 3, 48, 64, generator=gen)
    assert degenerate(grey, photo) == "near-uniform"
    nearly = (photo + 0.01 * torch.randn(1, 3, 48, 64, generator=gen)).clamp(0, 1)
    assert degenerate(nearly, photo) == "the photo itself"
    # the photo at another size (the comparison's results are at the evaluation size)
    big = torch.nn.functional.interpolate(photo, size=(96, 128), mode="bilinear")
    assert degenerate(big, photo) == "the photo itself"
    stripes = (torch.arange(64) // 4 % 2).float().expand(1, 3, 48, 64)
    styled = 0.5 * photo + 0.5 * stripes
    assert degenerate(styled, photo) == ""
