"""Arbitrary-style networks (nst.models.adain, nst.models.stytr; nst.train.arbitrary): sizes,
the AdaIN formula and controls, training lowers the loss, a style never seen in training,
LoRA-only gradients with a frozen encoder, merged LoRA, resume, CLI, per-method config."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from nst import NstError
from nst.cli import main
from nst.losses import mean_std
from nst.models import get_model, load_model
from nst.models.adain import adain
from nst.train import TrainConfig, train

#: in the test sample (conftest.sample_data): a photo in no content folder below
HELD_OUT_PHOTO = "content/camera.png"
ADAIN = {"encoder": "efficientnet_lite0", "layer": "stage2", "decoder_width": 1.0}
STYTR = {"encoder": "deit_tiny", "decoder_width": 0.125, "weights": "random"}
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# one torch thread (conftest); the random encoder weights' loud warning is expected here
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore")]


def folders(
    root: Path, sample: Path, photos: tuple[str, ...], styles: tuple[str, ...]
) -> tuple[Path, Path]:
    """Training folders of symlinks into the (read-only) test sample."""
    c, s = root / "content", root / "styles"
    c.mkdir(parents=True)
    s.mkdir(parents=True)
    for name in photos:
        (c / name).symlink_to(sample / "content" / name)
    for name in styles:
        (s / name).symlink_to(sample / "style" / name)
    return c, s


def config(root: Path, sample: Path, method: str, **changes: Any) -> TrainConfig:
    c, s = folders(root, sample, ("astronaut.png", "chelsea.png"), ("composition_0_0.png",))
    values: dict[str, Any] = dict(
        method=method,
        data=str(c),
        styles=str(s),
        size=64,
        steps=20,
        batch_size=2,
        device="cpu",
        checkpoint_every=0,
        sample_every=0,
        log_every=1,
        val_images=1,
    )
    if method == "adain":
        values.update(encoder="efficientnet_lite0", encoder_layer="stage2", lr=1e-3)
    else:
        values.update(
            encoder="deit_tiny",
            encoder_weights="random",
            decoder_width=0.125,
            backbone="efficientnet_lite0",
            lr=1e-3,
        )
    values.update(changes)
    return TrainConfig.from_dict(values)


def state(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, map_location="cpu", weights_only=True)["model"])


def train_quietly(cfg: TrainConfig, out: Path) -> Any:
    """A module fixture's run: one thread (module fixtures start before the autouse one)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return train(cfg, out, progress=False)
    finally:
        torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def adain_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Any:
    root = tmp_path_factory.mktemp("adain")
    return train_quietly(config(root, sample_data, "adain"), root / "run")


@pytest.fixture(scope="module")
def stytr_run(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Any:
    root = tmp_path_factory.mktemp("stytr")
    return train_quietly(config(root, sample_data, "stytr"), root / "run")


# --- models -------------------------------------------------------------------------------


@pytest.mark.parametrize("name, options", [("adain", ADAIN), ("stytr", STYTR)])
def test_each_model_keeps_the_input_size_for_any_aspect_ratio(name: str, options: dict) -> None:
    net = get_model(name, **options).eval()
    style = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        for h, w in ((32, 48), (64, 32), (37, 51)):
            y = net(torch.rand(1, 3, h, w), style)
            assert y.shape == (1, 3, h, w) and 0 <= float(y.min()) <= float(y.max()) <= 1
    assert net.inputs == ("content", "style")


def test_adain_matches_the_style_statistics() -> None:
    x, y = torch.randn(2, 8, 5, 7) * 3 + 1, torch.randn(2, 8, 6, 4) * 0.5 - 2
    out = adain(x, y)
    (mo, so), (my, sy) = mean_std(out), mean_std(y)
    assert torch.allclose(mo, my, atol=1e-4) and torch.allclose(so, sy, atol=1e-3)


def test_adain_vgg19_decoder_mirrors_the_encoder_like_the_paper() -> None:
    net = get_model("adain", weights="random")
    convs = [m for m in net.decoder.modules() if isinstance(m, torch.nn.Conv2d)]
    ups = [m for m in net.decoder.modules() if isinstance(m, torch.nn.Upsample)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (512, 256),
        (256, 256),
        (256, 256),
        (256, 256),
        (256, 128),
        (128, 128),
        (128, 64),
        (64, 64),
        (64, 3),
    ]
    assert len(ups) == 3 and all(u.mode == "nearest" for u in ups)
    assert net.encoder.layer_names[-1] == "relu4_1"  # truncated: nothing deeper is kept


def test_stytr_trains_only_lora_and_decoders_and_merged_lora_equals_unmerged() -> None:
    net = get_model("stytr", **STYTR).eval()
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    encoders = ("content_encoder.", "style_encoder.")
    assert all("lora_" in n for n in trainable if n.startswith(encoders))
    assert any("lora_" in n for n in trainable)
    assert all(not n.startswith(encoders) or "lora_" in n for n in trainable)
    assert {n.split(".")[0] for n in trainable} == {
        "content_encoder",
        "style_encoder",
        "cape",
        "transformer",
        "norm",
        "decoder",
    }
    for n, p in net.named_parameters():  # a non-zero update, so that merging matters
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.05)
    c, s = torch.rand(1, 3, 48, 64), torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        before = net(c, s)
        merged = net.merge_lora()(c, s)
    assert not any("lora_" in n for n, _ in net.named_parameters())
    assert (before - merged).abs().max() < 1e-5


# --- training -----------------------------------------------------------------------------


def test_64px_20_step_adain_training_lowers_its_loss(adain_run: Any) -> None:
    totals = [row["total"] for row in adain_run.history]
    assert len(totals) == 20 and np.mean(totals[-5:]) < 0.7 * np.mean(totals[:5])
    assert set(adain_run.history[0]) == {"step", "content", "style", "total"}
    assert adain_run.parameters["trainable"] < adain_run.parameters["total"]


def test_64px_20_step_stytr_training_lowers_its_loss(stytr_run: Any) -> None:
    totals = [row["total"] for row in stytr_run.history]
    assert len(totals) == 20 and np.mean(totals[-5:]) < 0.95 * np.mean(totals[:5])
    assert set(stytr_run.history[0]) == {
        "step",
        "content",
        "style",
        "identity1",
        "identity2",
        "total",
    }
    p = stytr_run.parameters
    assert p["lora"] > 0 and 0 < p["trainable_share"] < 0.5


def test_stytr_training_leaves_the_frozen_encoder_weights_unchanged(stytr_run: Any) -> None:
    fresh = get_model("stytr", **STYTR).state_dict()
    trained = state(stytr_run.model)
    frozen = [
        k
        for k in fresh
        if k.startswith(("content_encoder.", "style_encoder.")) and "lora_" not in k
    ]
    assert frozen and all(torch.equal(fresh[k], trained[k]) for k in frozen)
    lora = [k for k in fresh if "lora_B" in k]
    assert any(not torch.equal(fresh[k], trained[k]) for k in lora)  # the adapters did learn


HELD_OUT_STYLES = ("composition_0_9.png", "composition_0_10.png")  # in no training folder
TRAIN_STYLES = (
    "composition_0_0.png",
    "composition_0_2.png",
    "composition_0_4.png",
    "composition_0_6.png",
    "composition_0_7.png",
    "texture_brick.png",
)


@pytest.fixture(scope="module")
def adain_trained(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Any:
    """300 steps on 4 photos and 6 styles, Lite0 cut at stage1: 60-120 s on 2 shared cores.
    lr 1e-3 (the quick profile's): at 5e-3 the paper-capacity decoder's ReLUs died and its
    output stopped depending on its input (every alpha gave the same image)."""
    root = tmp_path_factory.mktemp("adain300")
    c, s = folders(
        root,
        sample_data,
        ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png"),
        TRAIN_STYLES,
    )
    cfg = TrainConfig.from_dict(
        dict(
            method="adain",
            encoder="efficientnet_lite0",
            encoder_layer="stage1",
            data=str(c),
            styles=str(s),
            size=64,
            steps=300,
            batch_size=4,
            lr=1e-3,
            device="cpu",
            checkpoint_every=0,
            sample_every=0,
            log_every=10,
        )
    )
    return load_model(train_quietly(cfg, root / "run").model)[0]


@pytest.mark.slow
def test_adain_applies_styles_never_seen_in_training(adain_trained: Any, sample_data: Path) -> None:
    """Held out three ways: style images outside the style folder, a photo outside the
    content folder, judged by EfficientNet-Lite2 (nst.metrics), not the Lite0 encoder. Two
    held-out styles, averaged: one style alone is noisy after 300 steps at 64 px."""
    from nst.images import load_image
    from nst.metrics.features import HeldOutNetwork

    judge = HeldOutNetwork(exclude="efficientnet_lite0")
    photo = load_image(sample_data / HELD_OUT_PHOTO, size=64)
    before, after = [], []
    for name in HELD_OUT_STYLES:
        style = load_image(sample_data / "style" / name, size=64)
        with torch.no_grad():
            styled = adain_trained(photo, style)
        before.append(judge.style_distances(photo, style)["style_gram_dist"])
        after.append(judge.style_distances(styled, style)["style_gram_dist"])
    assert np.mean(after) < np.mean(before), (before, after)


def stats_distance(net: Any, image: torch.Tensor, style: torch.Tensor) -> float:
    """L_ms in the network's own encoder (the style loss it was trained with)."""
    from nst.train.arbitrary import mean_std_loss

    layers = list(net.encoder.layer_names)
    fy, fs = net.encoder.features(image, layers), net.encoder.features(style, layers)
    return float(sum(mean_std_loss(fy[k], fs[k]) for k in layers))


def test_adain_alpha_0_is_the_reconstruction_and_the_target_interpolates(
    adain_run: Any, sample_data: Path
) -> None:
    from nst.images import load_image

    net, _ = load_model(adain_run.model)
    photo = load_image(sample_data / HELD_OUT_PHOTO, size=85)[..., :64, :]  # 85 px: not 8s
    style = load_image(sample_data / "style" / HELD_OUT_STYLES[0], size=64)
    with torch.no_grad():
        hw = (int(photo.shape[-2]), int(photo.shape[-1]))  # 64 x 85: padded to 8s inside
        fc, fs = net.encode(net.pad(photo)), net.encode(net.pad(style))
        assert torch.equal(net.transfer(photo, [style], strength=0.0), net.decode(fc, hw))
        (ms, ss), dists = mean_std(fs), []
        for alpha in (0.0, 0.25, 0.5, 0.75, 1.0):
            mt, st = mean_std(alpha * adain(fc, fs) + (1 - alpha) * fc)
            dists.append(float((mt - ms).norm() + (st - ss).norm()))
    assert all(a > b for a, b in zip(dists, dists[1:], strict=False)), dists


@pytest.mark.slow
def test_adain_alpha_moves_the_output_monotonically_towards_the_style(
    adain_trained: Any, sample_data: Path
) -> None:
    from nst.images import load_image

    photo = load_image(sample_data / HELD_OUT_PHOTO, size=64)
    style = load_image(sample_data / "style" / HELD_OUT_STYLES[0], size=64)
    with torch.no_grad():
        dists = [
            stats_distance(adain_trained, adain_trained.transfer(photo, [style], strength=a), style)
            for a in (0.0, 0.25, 0.5, 0.75, 1.0)
        ]
    assert all(a > b for a, b in zip(dists, dists[1:], strict=False)), dists


@pytest.mark.parametrize("method", ["adain", "stytr"])
def test_resume_ends_equal_to_an_uninterrupted_run(
    tmp_path: Path, sample_data: Path, method: str
) -> None:
    cfg = config(tmp_path / "data", sample_data, method, steps=2, checkpoint_every=2, log_every=1)
    train(cfg, tmp_path / "resumed", progress=False)
    resumed = train(cfg.replace(steps=4), tmp_path / "resumed", resume=True, progress=False)
    whole = train(cfg.replace(steps=4), tmp_path / "whole", progress=False)
    a, b = state(resumed.model), state(whole.model)
    assert resumed.start_step == 2 and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- CLI and config -----------------------------------------------------------------------


def test_nst_train_and_apply_take_any_style_image(
    tmp_path: Path, capsys: Any, sample_data: Path
) -> None:
    """Trained on one style, applied to a photo and two styles none of its folders hold."""
    c, s = folders(
        tmp_path, sample_data, ("astronaut.png", "chelsea.png"), ("composition_0_0.png",)
    )
    photo = sample_data / HELD_OUT_PHOTO
    out = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--method",
                "adain",
                "--data",
                str(c),
                "--styles",
                str(s),
                "--size",
                "64",
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--seed",
                "0",
                "--no-track",
                "--device",
                "cpu",
                "--out",
                str(out),
                "--encoder",
                "efficientnet_lite0",
                "--encoder-layer",
                "stage2",
                "--sample-every",
                "0",
            ]
        )
        == 0
    )
    assert "trainable parameters" in capsys.readouterr().err
    mask = tmp_path / "mask.png"
    from PIL import Image

    Image.new("L", (32, 32), 255).save(mask)
    held_out = [str(sample_data / "style" / name) for name in HELD_OUT_STYLES]
    args = [
        "apply",
        "--model",
        str(out / "model.pt"),
        "--content",
        str(photo),
        "--size",
        "48",
        "--device",
        "cpu",
        "--style",
        *held_out,
        "--style-weights",
        "1,3",
        "--strength",
        "0.5",
        "--color",
        "luminance",
        "--mask",
        str(mask),
    ]
    assert main([*args, "--out", str(tmp_path / "styled")]) == 0
    from nst.images import load_image

    y = load_image(tmp_path / "styled" / "camera.png")
    assert y.shape[-2:] == load_image(photo, size=48).shape[-2:]
    assert (
        main(
            [
                "apply",
                "--model",
                str(out / "model.pt"),
                "--content",
                str(photo),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "--style" in capsys.readouterr().err


def test_method_specific_options_are_validated_per_method() -> None:
    for values, words in (
        ({"method": "adain", "lora_rank": 4}, "lora_rank is an option of --method stytr"),
        ({"method": "stytr", "width": 8}, "width is an option of --method cin or johnson"),
        ({"method": "johnson", "encoder": "vgg19"}, "encoder is an option of --method adain"),
        (
            {"method": "stytr", "encoder": "vgg19"},
            "not a registered vit backbone; use one of deit_base",
        ),
    ):
        with pytest.raises(NstError, match=words):
            TrainConfig.from_dict(values)
    a, s, j = (TrainConfig(method=m) for m in ("adain", "stytr", "johnson"))
    assert (a.encoder, a.encoder_layer, a.backbone, a.alpha, a.beta) == (
        "vgg19",
        "relu4_1",
        "vgg19",
        1.0,
        10.0,
    )
    assert a.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    assert (s.alpha, s.beta, s.identity1, s.identity2) == (7.0, 10.0, 70.0, 1.0)
    assert s.content_layers == ("relu4_1", "relu5_1") and len(s.style_layers) == 5
    assert (j.backbone, j.alpha, j.beta) == ("vgg16", 1.0, 4.0e5)
    assert TrainConfig.from_dict(a.to_dict()) == a


@pytest.mark.parametrize("method", ["adain", "stytr"])
def test_nst_train_of_an_arbitrary_style_method_needs_its_style_folder_named(
    tmp_path: Path, capsys: Any, method: str
) -> None:
    """No --styles (nor `styles` in --config): one line, exit 2, no training on a data/style
    the user never named. Named either way, the folder is the user's."""
    from nst.cli import build_parser
    from nst.cli.train import config_from_args

    base = [
        "train",
        "--method",
        method,
        "--data",
        str(tmp_path),
        "--no-track",
        "--device",
        "cpu",
        "--steps",
        "1",
        "--size",
        "32",
    ]
    out = tmp_path / "run"
    assert main([*base, "--out", str(out)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"nst train: error: --method {method} trains on a folder of style images: pass "
        "--styles DIR (e.g. data/style, written by nst fetch)"
    ]
    assert not out.exists()
    mine = tmp_path / "my_styles"
    file = tmp_path / "train.yaml"
    file.write_text(f"method: {method}\nstyles: {mine}\n")
    for extra in (["--styles", str(mine)], ["--config", str(file)]):
        args = build_parser().parse_args([*base, "--out", str(out), *extra])
        assert config_from_args(args).styles == str(mine.resolve())
    # johnson trains on one style image: no folder asked for
    args = build_parser().parse_args(["train", "--out", str(out), "--style", "s.png"])
    assert config_from_args(args).method == "johnson"
