"""Artistic controls: each test measures the control's effect on tiny images with random weights."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from helpers import transfer_argv
from PIL import Image

from nst import NstError
from nst.backbones import get_backbone
from nst.cli import main
from nst.config import TransferConfig
from nst.images import save_image
from nst.losses import gram, normalize_layer_weights, style_layer_loss
from nst.optimize.controls.blend import blend_weights
from nst.optimize.controls.color import (
    combine_luma_chroma,
    histogram_distance,
    match_histograms,
    rgb_to_yiq,
)
from nst.optimize.controls.frames import write_frames, write_gif
from nst.optimize.controls.gradnorm import normalized_backward
from nst.optimize.loss import TransferLoss
from nst.optimize.transfer import stylize

# shallow layers keep each step cheap; the controls do not depend on depth
FAST = TransferConfig(
    weights="random",
    size=32,
    steps=6,
    lr=0.05,
    content_layers=("relu2_2",),
    style_layers=("relu1_1", "relu2_1", "relu3_1"),
)


@pytest.fixture(scope="module")
def backbone():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_backbone("vgg19", weights="random", seed=0)


@pytest.fixture
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A colourful smooth content and a differently coloured, striped style (32x32)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    content = torch.stack([x, y, 1 - x * y]).unsqueeze(0)
    stripes = (torch.sin(x * 30 + y * 10) + 1) / 2  # continuous: histograms can be matched
    style = torch.stack([0.9 * stripes + 0.1, 0.2 + 0.1 * stripes, 0.6 * (1 - stripes)]).unsqueeze(
        0
    )
    return content, style


def chroma(x: torch.Tensor) -> torch.Tensor:
    return rgb_to_yiq(x)[:, 1:]


# ---- colour preservation ------------------------------------------------------------------


def test_luminance_transfer_keeps_content_chroma(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    plain = stylize(FAST, content, style, backbone=backbone)
    luma = stylize(FAST.replace(color="luminance"), content, style, backbone=backbone)
    assert (chroma(luma.image) - chroma(content)).abs().max() < 1e-4
    assert (chroma(plain.image) - chroma(content)).abs().max() > 1e-2  # plain transfer moves colour
    y_change = (rgb_to_yiq(luma.image)[:, 0] - rgb_to_yiq(content)[:, 0]).abs().mean()
    assert y_change > 1e-3  # the luminance was stylised


def test_combine_luma_chroma_stays_in_gamut_with_exact_chroma() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 16, 16, generator=gen), torch.rand(1, 3, 16, 16, generator=gen)
    out = combine_luma_chroma(a, b)
    assert out.min() >= -1e-6 and out.max() <= 1 + 1e-6
    assert (chroma(out) - chroma(b)).abs().max() < 1e-5


def test_match_histograms_brings_histograms_close(pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    before = histogram_distance(style, content)
    after = histogram_distance(match_histograms(style, content), content)
    assert after < 0.25 * before


def test_histogram_before_transfer_recolours_the_style(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    cfg = FAST.replace(init="style", steps=3)  # starting from the style shows which colours it had
    plain = stylize(cfg, content, style, backbone=backbone)
    matched = stylize(cfg.replace(color="histogram"), content, style, backbone=backbone)
    assert histogram_distance(matched.image, content) < 0.5 * histogram_distance(
        plain.image, content
    )


def test_histogram_after_transfer_matches_result_colours(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    cfg = FAST.replace(init="style", steps=3)
    plain = stylize(cfg, content, style, backbone=backbone)
    post = stylize(cfg.replace(color="histogram_post"), content, style, backbone=backbone)
    assert histogram_distance(post.image, content) < 0.25 * histogram_distance(plain.image, content)


# ---- several styles -----------------------------------------------------------------------


def test_blend_one_zero_equals_first_style_alone(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    other = torch.rand(1, 3, 40, 24, generator=torch.Generator().manual_seed(1))
    alone = stylize(FAST, content, style, backbone=backbone)
    blended = stylize(
        FAST.replace(style_blend=(1.0, 0.0)), content, [style, other], backbone=backbone
    )
    assert torch.equal(alone.image, blended.image)
    mixed = stylize(
        FAST.replace(style_blend=(1.0, 1.0)), content, [style, other], backbone=backbone
    )
    assert not torch.equal(alone.image, mixed.image)


def test_blend_targets_are_weighted_gram_means(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    other = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    cfg = FAST.replace(style_blend=(1.0, 3.0))
    obj = TransferLoss(backbone, cfg, content, [style, other], torch.float32)
    fa, fb = obj.extract(style), obj.extract(other)
    for layer in cfg.style_layers:
        expected = 0.25 * gram(fa[layer]) + 0.75 * gram(fb[layer])
        torch.testing.assert_close(obj.style_targets[layer], expected)


def test_blend_weight_count_must_match_styles() -> None:
    assert blend_weights((), 4) == [0.25] * 4
    with pytest.raises(NstError, match="style_blend has 3 weights for 2"):
        blend_weights((1, 2, 3), 2)
    with pytest.raises(NstError, match="style_blend"):
        TransferConfig(style_blend=(0.0, 0.0))


# ---- scale and pyramid --------------------------------------------------------------------


def test_style_scale_changes_the_style_target_size(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    seen: list[tuple[int, ...]] = []
    features = backbone.features

    def spy(x, layers):  # type: ignore[no-untyped-def]
        seen.append(tuple(x.shape[-2:]))
        return features(x, layers)

    backbone.features = spy
    try:
        stylize(FAST.replace(steps=1, style_scale=2.0), content, style, backbone=backbone)
    finally:
        del backbone.features
    # extraction order: content target, style target, then the optimised image
    assert seen[0] == (32, 32) and seen[1] == (64, 64) and seen[2] == (32, 32)


def test_pyramid_output_has_last_size_and_history_of_all_stages(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    steps: list[int] = []
    cfg = FAST.replace(pyramid=(16, 24, 40), pyramid_steps=(2, 2, 3), frame_every=1)
    result = stylize(
        cfg, content, style, callbacks=[lambda s: steps.append(s.step)], backbone=backbone
    )
    assert result.image.shape[-2:] == (40, 40)
    assert result.steps == 7 and len(result.history["total"]) == 7
    assert steps == list(range(1, 8))  # callbacks see one running count over the stages
    assert [f.shape[-1] for f in result.frames] == [16, 16, 24, 24, 40, 40, 40]
    assert result.config == cfg


def test_pyramid_stage_starts_from_upsampled_previous_result(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    images: list[torch.Tensor] = []
    inputs: list[torch.Tensor] = []
    features = backbone.features

    def spy(x, layers):  # type: ignore[no-untyped-def]
        inputs.append(x.detach().clone())
        return features(x, layers)

    backbone.features = spy
    try:
        cfg = FAST.replace(pyramid=(16, 24), pyramid_steps=(2, 1))
        stylize(
            cfg,
            content,
            style,
            callbacks=[lambda s: images.append(s.image.clone())],
            backbone=backbone,
        )
    finally:
        del backbone.features
    # stage 2 extracts its content and style targets, then evaluates its starting image
    first24 = next(i for i, x in enumerate(inputs) if x.shape[-1] == 24)
    upsampled = torch.nn.functional.interpolate(
        images[1], size=(24, 24), mode="bilinear", align_corners=False, antialias=True
    ).clamp(0, 1)
    torch.testing.assert_close(inputs[first24 + 2], upsampled)


# ---- gradient and layer-weight normalisation ----------------------------------------------


def test_normalized_backward_gives_each_term_unit_l1_gradient() -> None:
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    terms = {"a": (x**2).sum() * 1000, "b": x.sum() * 1e-3}
    g = normalized_backward(terms, {"a": 2.0, "b": 0.0}, x)
    assert float(g.abs().sum()) == pytest.approx(2.0, rel=1e-5)  # scale of 1000 removed
    assert x.grad is g


def test_normalize_gradients_changes_the_trajectory(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    plain = stylize(FAST, content, style, backbone=backbone)
    normed = stylize(
        FAST.replace(normalize_gradients=True, beta=10.0), content, style, backbone=backbone
    )
    assert all(v == v for v in normed.history["total"])
    assert normed.history["total"] != plain.history["total"]
    assert normed.history["style"][-1] < normed.history["style"][0]  # still descends the style loss


def test_layer_weight_normalization() -> None:
    assert normalize_layer_weights((1, 1, 2), (64, 128, 256), "none") == (1.0, 1.0, 2.0)
    assert normalize_layer_weights((1, 1, 2), (64, 128, 256), "sum") == (0.25, 0.25, 0.5)
    w = normalize_layer_weights((), (64, 128), "channels")
    assert sum(w) == pytest.approx(1.0) and w[0] / w[1] == pytest.approx(4.0)  # 1/C^2


def test_channel_normalisation_weights_each_layer_by_one_over_c_squared(backbone, pair) -> None:  # type: ignore[no-untyped-def]
    """channels: w_l = (w_l / C_l^2) / sum_k (w_k / C_k^2). FAST's style layers relu1_1,
    relu2_1, relu3_1 have C = 64, 128, 256, so equal weights become 16:4:1 / 21, and the style
    loss of the first step is that mix of the per-layer losses E_l (the plain run: their mean)."""
    content, style = pair
    layers = list(FAST.style_layers)
    with torch.no_grad():
        fc, fs = backbone.features(content, layers), backbone.features(style, layers)
    e = [float(style_layer_loss(fc[k], gram(fs[k]))) for k in layers]
    channels = FAST.replace(steps=1, layer_weight_normalization="channels")
    objective = TransferLoss(backbone, channels, content, style, torch.float32)
    assert objective.style_weights == pytest.approx((16 / 21, 4 / 21, 1 / 21), rel=1e-12)
    assert objective.content_weights == (1.0,)  # one layer: its share is the whole budget
    weighted = TransferLoss(
        backbone, channels.replace(style_layer_weights=(1, 2, 4)), content, style, torch.float32
    )
    # (1/64^2, 2/128^2, 4/256^2) = (16, 8, 4) / 65536, renormalised
    assert weighted.style_weights == pytest.approx((4 / 7, 2 / 7, 1 / 7), rel=1e-12)
    plain = stylize(FAST.replace(steps=1), content, style, backbone=backbone)
    normed = stylize(channels, content, style, backbone=backbone)
    assert plain.history["style"][0] == pytest.approx(sum(e) / 3, rel=1e-5)
    expected = (16 * e[0] + 4 * e[1] + e[2]) / 21
    assert normed.history["style"][0] == pytest.approx(expected, rel=1e-5)


# ---- masks --------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["content", "noise"])
def test_mask_keeps_masked_out_pixels_at_the_content(backbone, pair, tmp_path, init) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    mask = torch.zeros(1, 3, 32, 32)
    mask[..., 16:] = 1.0  # right half white: stylise there only
    save_image(mask, tmp_path / "mask.png")
    result = stylize(
        FAST.replace(mask=str(tmp_path / "mask.png"), init=init), content, style, backbone=backbone
    )
    left = (result.image - content)[..., :, :15].abs().max()
    right = (result.image - content)[..., :, 17:].abs().mean()
    assert left < 1e-5
    assert right > 1e-3


def test_missing_mask_is_a_clear_error(backbone, pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NstError, match="mask .*no such file"):
        content, style = pair
        stylize(FAST.replace(mask=str(tmp_path / "none.png")), content, style, backbone=backbone)


# ---- progress frames ----------------------------------------------------------------------


def test_gif_has_steps_over_k_frames(backbone, pair, tmp_path) -> None:  # type: ignore[no-untyped-def]
    content, style = pair
    result = stylize(
        FAST.replace(steps=9, frame_every=3, lr=0.1), content, style, backbone=backbone
    )
    assert len(result.frames) == 3
    torch.testing.assert_close(result.frames[-1], result.image)  # the last frame is the output
    written = write_frames(result.frames, tmp_path / "anim.gif")
    with Image.open(written[0]) as gif:
        n_frames = gif.n_frames  # type: ignore[attr-defined]
        assert n_frames == 3 and gif.size == (32, 32)
    with pytest.raises(NstError, match="no frames"):
        write_gif([], tmp_path / "empty.gif")


# ---- CLI ----------------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, pair) -> dict[str, str]:  # type: ignore[no-untyped-def]
    content, style = pair
    mask = torch.zeros(1, 3, 32, 32)
    mask[..., 16:] = 1.0
    paths = {
        "content": tmp_path / "c.png",
        "a": tmp_path / "a.png",
        "b": tmp_path / "b.png",
        "mask": tmp_path / "m.png",
    }
    for key, img in zip(paths, (content, style, style.flip(-1), mask), strict=True):
        save_image(img, paths[key])
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize(
    "options",
    [
        ["--style-blend", "1,3"],
        ["--color", "luminance", "--style-scale", "0.5"],
        ["--color", "histogram", "--normalize-gradients"],
        ["--color", "histogram_post", "--layer-weight-normalization", "channels"],
        ["--pyramid", "16,32", "--pyramid-steps", "1,2", "--mask", "MASK"],
        ["--frame-every", "1", "--frames-out", "FRAMES"],
    ],
)
def test_cli_accepts_each_control(files, tmp_path, options, capsys) -> None:  # type: ignore[no-untyped-def]
    options = [
        files["mask"] if o == "MASK" else str(tmp_path / "f.gif") if o == "FRAMES" else o
        for o in options
    ]
    out = tmp_path / "out.png"
    argv = transfer_argv(
        *options,
        content=files["content"],
        style=f"{files['a']},{files['b']}",
        out=out,
        steps=2,
        content_layers="relu2_2",
        style_layers="relu1_1,relu2_1",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(argv) == 0
    assert out.exists()
    if "--frames-out" in options:
        with Image.open(tmp_path / "f.gif") as gif:
            n_frames = gif.n_frames  # type: ignore[attr-defined]
            assert n_frames == 2


def test_cli_repeated_style_and_single_style(files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    common = {"content": files["content"], "content_layers": "relu2_2", "style_layers": "relu1_1"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(transfer_argv(style=[files["a"], files["b"]], out=tmp_path / "1.png", **common))
            == 0
        )
        assert main(transfer_argv(style=files["a"], out=tmp_path / "2.png", **common)) == 0
        # three weights for two styles: a one-line error, exit status 2
        argv = transfer_argv(
            style=[files["a"], files["b"]], style_blend="1,2,3", out=tmp_path / "3.png", **common
        )
        assert main(argv) == 2
