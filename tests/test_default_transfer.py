"""`nst transfer` with no option but the images: the auto backbone and its family's recipe give
a real stylisation offline (nst.backbones.auto, nst.backbones.registry.RECIPES)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nst.cli import main
from nst.data.embedded import write_embedded
from nst.images import load_image, resize_tensor
from nst.metrics import Evaluator


def test_default_transfer_runs_the_pretrained_network_and_takes_the_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline (no VGG file), a run that names nothing runs the pretrained EfficientNet-Lite0
    on its recipe, says so, and moves the held-out judge's (Lite2) Gram distance to the style
    well below the photo's own, while keeping the photo's structure."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ImageNet VGG19 file here
    data = tmp_path / "data"
    entries = write_embedded(data, 1, 2, seed=0)  # the astronaut, a composition, gravel
    content, style = data / entries[0]["file"], data / entries[2]["file"]
    assert style.name == "texture_gravel.png"
    out = tmp_path / "out.png"
    argv = ["transfer", "--content", str(content), "--style", str(style), "--out", str(out)]
    assert main([*argv, "--no-track", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backbone_rule"] == "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"
    assert info["weights"]["pretrained"] is True
    assert info["config"]["optimizer"] == "lbfgs" and info["config"]["size"] == 256
    result = load_image(out)
    photo = resize_tensor(load_image(content), tuple(result.shape[-2:]))
    judge = Evaluator("efficientnet_lite0")
    assert judge.held_out["backbone"] == "efficientnet_lite2"
    styled = judge.evaluate(photo, load_image(style), result).values
    unstyled = judge.evaluate(photo, load_image(style), photo).values
    # measured: 0.56 of the photo's distance (the flat generated compositions move less,
    # 0.81-0.87: their Grams hold little texture for a 100-step run to take)
    assert styled["style_gram_dist"] < 0.7 * unstyled["style_gram_dist"], (styled, unstyled)
    assert styled["ssim"] > 0.2  # the photo's structure is still there
