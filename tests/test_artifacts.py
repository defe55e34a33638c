"""Patch-grid energy and the jitter / shift-average mitigations."""

from __future__ import annotations

import warnings

import pytest
import torch

from nst.backbones.base import RandomWeightsWarning
from nst.config import TransferConfig
from nst.metrics.artifacts import patch_grid_energy
from nst.optimize.controls.shifts import Jitter, average_shifts, roll, shift_averaged
from nst.optimize.transfer import stylize


def test_a_patch_periodic_pattern_has_high_energy_and_a_smooth_image_low() -> None:
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    grid = ((x % 16 == 0) | (y % 16 == 0)).float()  # lines every 16 px
    assert patch_grid_energy(grid.expand(3, -1, -1), 16) > 0.99
    wave = torch.sin(2 * torch.pi * x / 64)  # one period over the image: no 16-px component
    smooth = torch.stack([wave, torch.cos(2 * torch.pi * y / 64), wave * 0.5])
    assert patch_grid_energy(smooth, 16) < 0.05
    noise = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    assert patch_grid_energy(noise, 16) == pytest.approx(16 * 16 / (64 * 64), rel=0.5)  # 1/#patches
    assert patch_grid_energy(0.5 * noise + 0.5 * grid, 16) > patch_grid_energy(noise, 16) + 0.3


def test_patch_energy_crops_to_whole_patches_and_rejects_tiny_images() -> None:
    assert patch_grid_energy(torch.zeros(3, 40, 40)) == 0.0
    with pytest.raises(ValueError, match="smaller than one"):
        patch_grid_energy(torch.rand(3, 8, 8), 16)


def test_jitter_draws_seeded_shifts_within_range() -> None:
    a, b = Jitter(15, seed=3), Jitter(15, seed=3)
    draws = [a.next_step() for _ in range(50)]
    assert draws == [b.next_step() for _ in range(50)]
    assert all(0 <= v <= 15 for d in draws for v in d) and len(set(draws)) > 10
    assert Jitter(0, seed=3).next_step() == (0, 0)


def test_shift_average_of_a_shift_invariant_extractor_is_unchanged() -> None:
    x = torch.rand(1, 3, 16, 16)
    shifts = average_shifts(4, 16)
    assert shifts == [(0, 0), (4, 4), (8, 8), (12, 12)]
    out = shift_averaged(lambda z: {"mean": z.mean(dim=(2, 3))}, x, shifts)
    assert torch.allclose(out["mean"], x.mean(dim=(2, 3)))
    assert torch.equal(roll(x, (0, 0)), x) and not torch.equal(roll(x, (1, 0)), x)


def _run(**changes: object) -> torch.Tensor:
    cfg = TransferConfig(
        backbone="deit_tiny",
        weights="random",
        content_layers=("block3",),
        style_layers=("block1", "block2"),
        size=32,
        steps=3,
        init="noise",
        **changes,
    )
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    style = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return stylize(cfg, content, style).image


@pytest.mark.slow
def test_jitter_runs_are_deterministic_and_differ_from_unjittered() -> None:
    jittered = _run(jitter=8)
    assert torch.equal(jittered, _run(jitter=8))
    assert not torch.equal(jittered, _run())
    assert torch.equal(_run(shift_average=3), _run(shift_average=3))


def test_jitter_keeps_content_targets_aligned() -> None:
    # starting at the content image with no style term, the content loss is 0 whatever the shift
    content = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    cfg = TransferConfig(
        backbone="deit_tiny",
        weights="random",
        content_layers=("block3",),
        style_layers=("block1",),
        size=32,
        steps=2,
        beta=0.0,
        lr=0.0,
        jitter=15,
        seed=4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        result = stylize(cfg, content, content)
    assert max(result.history["content"]) < 1e-10
