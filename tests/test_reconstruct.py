"""Single-layer reconstructions and the `nst reconstruct` grid."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import InputTooSmall, RandomWeightsWarning
from nst.cli import main
from nst.images import save_image
from nst.optimize.reconstruct import grid_size, reconstruct, reconstruction_grid


@pytest.fixture(scope="module")
def deit_tiny():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return get_backbone("deit_tiny", weights="random")


@pytest.mark.parametrize("mode", ["content", "style"])
def test_reconstruction_loss_falls(deit_tiny, mode: str) -> None:  # type: ignore[no-untyped-def]
    img = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    losses: list[float] = []
    out = reconstruct(deit_tiny, img, "block1", mode, steps=8, size=32, seed=0, losses=losses)  # type: ignore[arg-type]
    assert out.shape == (1, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]


def test_grid_png_has_one_tile_per_layer_plus_the_original(deit_tiny, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    img = torch.rand(1, 3, 32, 32)
    path = reconstruction_grid(
        deit_tiny, img, ["block0", "block2", "block4"], tmp_path / "g.png", steps=2, size=32
    )
    assert Image.open(path).size == grid_size(4, (32, 32)) == (2 * 36 + 4, 2 * 52 + 4)
    with pytest.raises(NstError, match="no layer"):
        reconstruction_grid(deit_tiny, img, ["relu1_1"], tmp_path / "h.png", steps=1, size=32)


def test_cli_writes_a_grid_and_reports_bad_layers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = save_image(torch.rand(1, 3, 32, 32), tmp_path / "in.png")
    out = tmp_path / "grid.png"
    argv = [
        "reconstruct",
        "--image",
        str(src),
        "--backbone",
        "deit_tiny",
        "--weights",
        "random",
        "--mode",
        "style",
        "--steps",
        "2",
        "--size",
        "32",
        "--out",
        str(out),
    ]
    assert main([*argv, "--layer", "block0,block1"]) == 0
    assert Image.open(out).size == grid_size(3, (32, 32))
    assert main([*argv, "--layer", "relu1_1"]) == 2
    assert "deit_tiny has no layer(s) relu1_1" in capsys.readouterr().err


def test_an_image_too_small_for_the_layer_is_a_one_line_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        vgg = get_backbone("vgg19", weights="random")
    panorama = torch.rand(1, 3, 12, 4000)  # 48x1 px at size 48; relu3_1 is 2 poolings deep
    with pytest.raises(InputTooSmall, match="48x1 px .* at least 4 px .* relu3_1"):
        reconstruct(vgg, panorama, "relu3_1", steps=1, size=48)
    assert reconstruct(vgg, panorama, "relu1_1", steps=1, size=48).shape == (1, 3, 1, 48)
