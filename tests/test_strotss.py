"""STROTSS (nst.optimize.strotss): its parts on constructed inputs, and a small run that takes
the style's distribution while keeping the photo's layout."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from nst import NstError
from nst.config import VGG_HYPERCOLUMN, StrotssConfig
from nst.losses import cosine_cost, euclidean_cost, positions, relaxed_emd
from nst.methods.stylizer import Stylizer
from nst.models.registry import get_method
from nst.optimize.strotss import (
    compose,
    decompose,
    hypercolumns,
    strotss,
    strotss_loss,
)
from nst.perceptual import loss_backbone


def test_laplacian_pyramid_is_exactly_inverted() -> None:
    x = torch.rand(1, 3, 37, 50, generator=torch.Generator().manual_seed(0))
    pyramid = decompose(x, 5)
    assert len(pyramid) == 6 and pyramid[-1].shape[-2:] == (1, 1)  # 37x50 halved five times
    assert torch.allclose(compose(pyramid), x, atol=1e-6)


def test_hypercolumns_sample_every_map_at_the_same_place() -> None:
    """At pixel centres the pixels are read exactly; a map at half the resolution is read at
    the same relative place (its own pixel, when the position is one of its pixels' centres
    in the upsampled grid)."""
    image = torch.rand(1, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    same = torch.rand(1, 4, 8, 10, generator=torch.Generator().manual_seed(2))
    coarse = torch.arange(20.0).view(1, 1, 4, 5)
    index = torch.tensor([0, 13, 79])
    cols = hypercolumns(image, {"same": same, "coarse": coarse}, index)
    assert cols.shape == (1, 3, 3 + 4 + 1)
    flat = positions(image)[0, index]
    assert torch.allclose(cols[0, :, :3], flat)
    assert torch.allclose(cols[0, :, 3:7], positions(same)[0, index])
    # bilinear at the same relative place: the mean of a 2x2 block's corner for pixel 0, a
    # value between the coarse map's neighbours inside the image
    assert 0.0 <= float(cols[0, 0, 7]) <= 1.0 and 0.0 <= float(cols[0, 2, 7]) <= 19.0


def test_relaxed_emd_takes_another_cost() -> None:
    a = torch.rand(1, 6, 3, generator=torch.Generator().manual_seed(3))
    b = torch.rand(1, 9, 3, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(relaxed_emd(a, b), relaxed_emd(a, b, cost=cosine_cost))
    d = euclidean_cost(a, b)
    exact = ((a[0, :, None] - b[0, None]) ** 2).sum(-1).clamp(1e-5, 1e5).div(3).sqrt()
    assert torch.allclose(d[0], exact, atol=1e-5)
    assert float(relaxed_emd(a, a, cost=euclidean_cost)) < 1e-2  # sqrt of the 1e-5 floor
    assert float(relaxed_emd(a, b, cost=euclidean_cost)) > 0.05


def test_strotss_loss_is_zero_content_for_the_content_and_finite() -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(1, 32, 11, generator=gen).requires_grad_(True)
    s = torch.rand(1, 40, 11, generator=gen)
    terms = strotss_loss(x, x.detach(), s, alpha=16.0, moment_weight=1.0)
    assert float(terms["content"].detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["style"].detach()) > 0
    terms["total"].backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_config_defaults_are_the_papers_and_bad_values_are_one_line() -> None:
    cfg = StrotssConfig(device="cpu")
    assert cfg.backbone == "vgg16" and cfg.layers == VGG_HYPERCOLUMN
    assert cfg.sizes == (64, 128, 256, 512) and cfg.steps == 250 and cfg.positions == 1024
    lite = StrotssConfig.from_dict({"backbone": "efficientnet_lite0", "size": 256, "scales": 3})
    assert lite.layers[0] == "stem" and lite.sizes == (64, 128, 256)
    assert StrotssConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(NstError, match="unknown strotss config key"):
        StrotssConfig.from_dict({"beta": 1})
    with pytest.raises(NstError, match="steps must be at least 1"):
        StrotssConfig.from_dict({"steps": 0})


def test_registered_as_an_optimisation_method() -> None:
    entry = get_method("strotss")
    assert entry.kind == "optimisation" and entry.takes_style and not entry.trained
    assert entry.config_class() is StrotssConfig and entry.runner() is strotss


@pytest.fixture(scope="module")
def small() -> StrotssConfig:
    return StrotssConfig.from_dict(
        {
            "backbone": "efficientnet_lite0",
            "size": 64,
            "scales": 2,
            "steps": 15,
            "positions": 256,
            "style_positions": 512,
            "content_weight": 4.0,
            "device": "cpu",
        }
    )


def test_a_small_run_takes_the_style_and_keeps_the_layout(
    small: StrotssConfig, tiny_pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    """Its loss falls at each scale; the result is the content's size, in [0, 1], closer
    to the stripes' colour distribution than the photo is, and still correlated with the
    photo's layout; the same seed gives the same bytes, another seed other ones."""
    content, style = tiny_pair
    content = torch.nn.functional.interpolate(content, size=(48, 64), mode="bilinear")
    result = strotss(small, content, style)
    assert result.image.shape == (1, 3, 48, 64) and result.steps == 30
    assert float(result.image.min()) >= 0.0 and float(result.image.max()) <= 1.0
    history = result.history["total"]  # the style term alone may rise while the content is met
    assert history[14] < 0.8 * history[0] and history[29] < 0.9 * history[15], history
    backbone = loss_backbone(small)

    def columns(image: torch.Tensor) -> torch.Tensor:  # every position's hypercolumn
        feats = backbone.features(image, small.layers)
        return hypercolumns(image, feats, torch.arange(image.shape[-2] * image.shape[-1]))

    with torch.no_grad():
        target = columns(torch.nn.functional.interpolate(style, size=(48, 64)))
        assert relaxed_emd(columns(result.image), target) < relaxed_emd(columns(content), target)
    luma = result.image.mean(1).flatten()
    assert float(torch.corrcoef(torch.stack([luma, content.mean(1).flatten()]))[0, 1]) > 0.3
    again = strotss(small, content, style)
    assert torch.equal(result.image, again.image)
    other = strotss(StrotssConfig.from_dict({**small.to_dict(), "seed": 1}), content, style)
    assert not torch.equal(result.image, other.image)


def test_the_stylizer_runs_it_as_the_method_does(
    small: StrotssConfig, tiny_pair: tuple[torch.Tensor, torch.Tensor]
) -> None:
    short = StrotssConfig.from_dict({**small.to_dict(), "steps": 3})
    stylizer = Stylizer.from_config(short, "strotss", "strotss")
    assert stylizer.method == "strotss" and stylizer.networks[0].backbone == "efficientnet_lite0"
    out = stylizer.stylize(*tiny_pair)
    assert torch.equal(out.image, strotss(short, *tiny_pair).image) and out.seconds > 0


def test_the_command_writes_the_image_and_an_mlflow_run(
    tmp_path: Path, tiny_pair: tuple[torch.Tensor, torch.Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    from nst.cli import main
    from nst.images import save_image

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    save_image(tiny_pair[0], content)
    save_image(tiny_pair[1], style)
    uri, out = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "out.png"
    argv = ["strotss", "--content", str(content), "--style", str(style), "--out", str(out)]
    small = ["--backbone", "efficientnet_lite0", "--size", "32", "--scales", "1", "--steps", "3"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, *small, "--tracking-uri", uri]) == 0
    assert out.is_file() and "wrote" in capsys.readouterr().out
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("nst").experiment_id])
    assert run.data.params["scales"] == "1" and run.data.params["layers"].startswith("stem,")
    assert run.data.tags["nst.method"] == "strotss" and run.data.metrics["steps"] == 3
    paths = {a.path for a in client.list_artifacts(run.info.run_id, "images")}
    assert "images/result.png" in paths
    assert main([*argv, *small, "--scales", "0", "--no-track"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "nst strotss: error: scales must be at least 1, got 0"
