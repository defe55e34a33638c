"""Evaluation metrics with known answers (nst.metrics, `nst evaluate`)."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from skimage import data, filters
from skimage.exposure import match_histograms

from nst import NstError
from nst.backbones.base import RandomWeightsWarning
from nst.cli import main
from nst.images import load_image, resize_tensor, save_image, to_tensor
from nst.metrics import (
    METRICS,
    PROTOCOL,
    Evaluator,
    color_emd_lab,
    color_hellinger,
    edge_f1,
    evaluate,
    held_out_identity,
    ms_ssim,
    ssim,
    summarize,
)
from nst.metrics.structure import ms_ssim_scales

CONTENT_KEYS = ("ssim", "ms_ssim", "edge_f1")


def photo(name: str, size: tuple[int, int] = (64, 48)) -> torch.Tensor:
    """A scikit-image sample photo as a 1x3xHxW tensor (size is W, H)."""
    img = Image.fromarray(getattr(data, name)()).convert("RGB")
    return to_tensor(img.resize(size, Image.Resampling.LANCZOS))


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    arr = filters.gaussian(x[0].permute(1, 2, 0).numpy(), sigma=sigma, channel_axis=-1)
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float()


def shuffle_pixels(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    n, c, h, w = x.shape
    perm = torch.randperm(h * w, generator=torch.Generator().manual_seed(seed))
    return x.reshape(n, c, h * w)[..., perm].reshape(n, c, h, w)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    """The default judge: EfficientNet-Lite2 with its packaged ImageNet weights."""
    return Evaluator()


@pytest.fixture(scope="module")
def content() -> torch.Tensor:
    return photo("astronaut")


@pytest.fixture(scope="module")
def style() -> torch.Tensor:
    return photo("chelsea", (60, 50))


def test_identical_images_score_perfectly(evaluator: Evaluator, content: torch.Tensor) -> None:
    v = evaluator.evaluate(content, content, content).values
    for key in CONTENT_KEYS:
        assert v[key] == pytest.approx(1.0, abs=1e-6), key
    for key in (
        "content_feature_dist",
        "color_hellinger",
        "color_emd_lab",
        "style_gram_dist",
        "style_stats_dist",
    ):
        assert v[key] == pytest.approx(0.0, abs=1e-6), key


def test_every_value_is_documented_and_in_range(evaluator, content, style) -> None:
    result = blur(content, 1.0)
    v = evaluator.evaluate(content, style, result, runtime_s=1.5, peak_memory_mb=12.0).values
    assert {
        "ssim",
        "ms_ssim",
        "edge_f1",
        "content_feature_dist",
        "color_hellinger",
        "color_emd_lab",
        "style_gram_dist",
        "tv",
        "patch_energy",
        "runtime_s",
    } <= set(v)
    for key, value in v.items():
        info = METRICS[key]
        assert info.direction in ("maximize", "minimize") and info.group in (
            "content",
            "style",
            "quality",
        )
        assert info.range[0] <= value <= info.range[1], (key, value)
        assert info.doc
    assert v["runtime_s"] == 1.5 and v["peak_memory_mb"] == 12.0


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_blur_and_noise_lower_content_scores_monotonically(evaluator, name: str) -> None:
    content = photo(name)
    noise = torch.randn(content.shape, generator=torch.Generator().manual_seed(0))
    for degrade, strengths in (
        (blur, [0.5, 1.0, 2.0, 3.0]),
        (lambda x, s: (x + s * noise).clamp(0, 1), [0.02, 0.1, 0.2, 0.4]),
    ):
        rows = [evaluator.evaluate(content, content, degrade(content, s)).values for s in strengths]
        for key in CONTENT_KEYS:
            series = [1.0] + [r[key] for r in rows]
            # never rises with strength; strictly lower at each step for SSIM (edge F1 may
            # stay at 1 for the weakest noise: it is within the match tolerance)
            assert all(a >= b for a, b in zip(series, series[1:], strict=False)), (key, series)
            assert series[-1] < series[2] < series[1] - 0.01 or key == "edge_f1", (key, series)
            assert series[-1] < series[1] - 0.1, (key, series)
        dist = [0.0] + [r["content_feature_dist"] for r in rows]
        assert all(a < b for a, b in zip(dist, dist[1:], strict=False)), dist


def test_style_palette_lowers_colour_distance(content: torch.Tensor, style: torch.Tensor) -> None:
    matched = match_histograms(
        content[0].permute(1, 2, 0).numpy(), style[0].permute(1, 2, 0).numpy(), channel_axis=-1
    )
    recoloured = torch.from_numpy(np.asarray(matched)).permute(2, 0, 1)[None].float()
    # per-channel RGB matching fixes the marginals, not the joint chroma: a clear drop, not 0
    assert color_hellinger(recoloured, style) < 0.7 * color_hellinger(content, style)
    assert color_emd_lab(recoloured, style) < 0.5 * color_emd_lab(content, style)
    # the structure is unchanged, so content metrics still see the content
    assert ssim(recoloured, content) > 0.6 and edge_f1(recoloured, content) > 0.8


def test_colour_metrics_ignore_pixel_layout_structure_metrics_do_not(evaluator, content, style):
    shuffled = shuffle_pixels(content)
    assert color_hellinger(shuffled, style) == pytest.approx(
        color_hellinger(content, style), abs=1e-12
    )
    assert color_emd_lab(shuffled, style) == pytest.approx(color_emd_lab(content, style), abs=1e-9)
    v = evaluator.evaluate(content, content, shuffled).values
    assert v["color_hellinger"] == pytest.approx(0.0, abs=1e-6)  # sqrt(1 - BC): float noise
    assert v["color_emd_lab"] == pytest.approx(0.0, abs=1e-9)
    assert v["ssim"] < 0.2 and v["ms_ssim"] < 0.2 and v["edge_f1"] < 0.7
    assert v["content_feature_dist"] > 0.05
    # texture statistics are spatial: a shuffled image no longer has the content's Gram matrices
    assert v["style_gram_dist"] > 0.1


def test_structure_metrics_ignore_colour(evaluator, content: torch.Tensor) -> None:
    grey = (content * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    grey = grey.expand(1, 3, *content.shape[-2:]).contiguous()
    v = evaluator.evaluate(content, content, grey).values
    for key in CONTENT_KEYS:
        assert v[key] == pytest.approx(1.0, abs=1e-5), key
    assert v["color_hellinger"] > 0.5


def test_ms_ssim_scales_adapt_to_size() -> None:
    assert [ms_ssim_scales(s, s) for s in (16, 32, 64, 128, 256)] == [1, 2, 3, 4, 5]
    small = photo("coffee", (32, 24))
    assert ms_ssim(small, small) == pytest.approx(1.0)
    assert 0.0 < ms_ssim(blur(small, 1.0), small) < 1.0


def test_edge_f1_edge_cases() -> None:
    flat = torch.full((1, 3, 32, 32), 0.5)
    edged = flat.clone()
    edged[..., :, 16:] = 1.0
    assert edge_f1(flat, flat) == 1.0
    assert edge_f1(edged, flat) == 0.0 and edge_f1(flat, edged) == 0.0
    shifted, far = flat.clone(), flat.clone()
    shifted[..., :, 17:] = 1.0  # one pixel off: within the tolerance
    far[..., :, 22:] = 1.0  # six pixels off: no match
    assert edge_f1(shifted, edged) == 1.0
    assert edge_f1(far, edged) == 0.0


def test_the_default_judge_is_pretrained_and_not_the_run_backbone(evaluator: Evaluator) -> None:
    from nst.backbones.efficientnet import packaged_file

    lite2 = packaged_file("efficientnet_lite2")
    assert lite2 is not None
    held = evaluator.held_out
    assert held["backbone"] == "efficientnet_lite2" and held["pretrained"] is True
    assert held["weights"] == f"imagenet:{lite2.name}" and held["judge"] == "efficientnet"
    assert held["sha256"] == hashlib.sha256(lite2.read_bytes()).hexdigest()
    assert (
        held_out_identity() == held_out_identity("vgg19") == f"efficientnet_lite2 {held['weights']}"
    )
    # a run that optimised Lite2 is judged by Lite0
    assert held_out_identity("efficientnet_lite2").startswith("efficientnet_lite0 imagenet:")
    judge = Evaluator(exclude="efficientnet_lite2")
    assert (
        judge.held_out["backbone"] == "efficientnet_lite0" and judge.held_out["pretrained"] is True
    )
    with pytest.raises(NstError, match="held-out"):
        evaluate(
            photo("coffee"),
            photo("coffee"),
            photo("coffee"),
            exclude="efficientnet_lite0",
            evaluator=judge,
        )
    with pytest.raises(NstError, match="judge 'alexnet': use efficientnet or vgg"):
        Evaluator(judge="alexnet")


def test_the_vgg_judge_stays_selectable(isolated_torch_home: Path) -> None:
    """The judge of results before the pretrained one: VGG16, VGG19 for VGG16 runs, random
    weights (loudly) without the ImageNet file."""
    with pytest.warns(RandomWeightsWarning):
        judge = Evaluator(exclude="vgg16", judge="vgg")
    assert judge.held_out["backbone"] == "vgg19" and judge.held_out["judge"] == "vgg"
    assert judge.held_out["weights"] == "random:seed=0" and judge.held_out["pretrained"] is False
    assert held_out_identity("vgg16", judge="vgg") == "vgg19 random:seed=0"
    assert held_out_identity("deit_small", judge="vgg") == "vgg16 random:seed=0"
    with pytest.raises(NstError, match="held-out"):
        evaluate(
            photo("coffee"), photo("coffee"), photo("coffee"), exclude="vgg19", evaluator=judge
        )


def test_random_judge_is_reproducible(isolated_torch_home: Path, content, style) -> None:
    with pytest.warns(RandomWeightsWarning):
        first = Evaluator(judge="vgg")
    with pytest.warns(RandomWeightsWarning):
        again = Evaluator(judge="vgg")
    assert again.held_out == first.held_out
    result = blur(content, 1.0)
    assert (
        again.evaluate(content, style, result).values
        == first.evaluate(content, style, result).values
    )


def test_judges_differ_and_both_rank_a_blur_worse_than_the_content(
    isolated_torch_home: Path, evaluator: Evaluator, content, style
) -> None:
    """Values of two judges are different measurements; each still tells degradations apart."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        vgg = Evaluator(judge="vgg")
    values = {}
    for name, judge in (("efficientnet", evaluator), ("vgg", vgg)):
        light, heavy = (judge.evaluate(content, style, blur(content, s)).values for s in (0.5, 2.0))
        assert 0 < light["content_feature_dist"] < heavy["content_feature_dist"], name
        values[name] = heavy["content_feature_dist"]
    assert values["efficientnet"] != pytest.approx(values["vgg"])


def test_learned_metrics_are_skipped_with_a_note(isolated_torch_home: Path, content, style) -> None:
    ev = Evaluator().evaluate(content, style, content)
    assert "lpips" not in ev.values
    assert any("lpips skipped" in n and "never downloaded" in n for n in ev.notes)
    assert not any("RANDOM" in n for n in ev.notes)  # the default judge is pretrained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        old = Evaluator(judge="vgg").evaluate(content, style, content)
    assert any("RANDOM" in n for n in old.notes)
    assert not any(isolated_torch_home.rglob("*.pth"))  # nothing was fetched


def test_bad_inputs_raise_nst_error(evaluator: Evaluator, content: torch.Tensor) -> None:
    with pytest.raises(NstError, match="differ in size"):
        evaluator.evaluate(content, content, photo("coffee", (40, 40)))
    with pytest.raises(NstError, match="1x3xHxW"):
        evaluator.evaluate(content[0], content, content)
    with pytest.raises(NstError, match="too small"):
        evaluator.evaluate(content, torch.rand(1, 3, 8, 8), content)


def test_summarize_mean_and_t_interval() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    mean, lo, hi = summarize(values)
    expected = stats.t.interval(0.95, 4, loc=3.0, scale=stats.sem(values))
    assert mean == 3.0 and (lo, hi) == pytest.approx(expected)
    assert hi - lo == pytest.approx(2 * 2.7764451 * math.sqrt(2.5) / math.sqrt(5), rel=1e-6)
    one = summarize([0.7])
    assert one[0] == 0.7 and math.isnan(one[1]) and math.isnan(one[2])
    with pytest.raises(NstError):
        summarize([])
    with pytest.raises(NstError):
        summarize([1.0, float("nan")])
    assert PROTOCOL.n_pairs == 800 and PROTOCOL.confidence == 0.95


def test_cli_evaluate_json_and_table(tmp_path: Path, capsys, isolated_torch_home) -> None:
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    save_image(photo("astronaut", (96, 96)), c)
    save_image(photo("chelsea"), s)
    r = save_image(blur(photo("astronaut"), 1.0), tmp_path / "r.png")  # smaller than the content
    assert (
        main(["evaluate", "--content", str(c), "--style", str(s), "--result", str(r), "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert 0.3 < out["values"]["ssim"] < 1.0
    assert out["directions"]["ssim"] == "maximize"
    assert out["held_out"]["backbone"] == "efficientnet_lite2"
    assert out["held_out"]["pretrained"] is True  # a JSON boolean, not the string "true"
    assert any("lpips" in n for n in out["notes"])
    assert (
        main(
            [
                "evaluate",
                "--content",
                str(c),
                "--style",
                str(s),
                "--result",
                str(r),
                "--exclude-backbone",
                "efficientnet_lite2",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "edge_f1" in table and "higher" in table
    assert "held-out network: efficientnet_lite0 imagenet:" in table and "pretrained" in table
    assert (
        main(
            [
                "evaluate",
                "--content",
                str(c),
                "--style",
                str(s),
                "--result",
                str(r),
                "--judge",
                "vgg",
                "--exclude-backbone",
                "vgg16",
            ]
        )
        == 0
    )
    assert "held-out network: vgg19 random:seed=0 (RANDOM weights" in capsys.readouterr().out
    assert (
        main(
            [
                "evaluate",
                "--content",
                str(c),
                "--style",
                str(s),
                "--result",
                str(r),
                "--judge",
                "vgg",
                "--exclude-backbone",
                "vgg16",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["held_out"]["pretrained"] is False
    assert main(["evaluate", "--content", str(c), "--style", str(s), "--result", "nope.png"]) == 2
    assert "nope.png: no such file" in capsys.readouterr().err


def test_cli_evaluate_on_a_sample_pair_names_a_pretrained_judge(
    tmp_path: Path, capsys, isolated_torch_home, sample_data: Path
) -> None:
    """`nst evaluate --json` on rocket x a composition, the content as the "result"."""
    rocket = sample_data / "content" / "rocket.png"
    composition = sample_data / "style" / "composition_0_0.png"
    result = save_image(load_image(rocket, 96), tmp_path / "r.png")  # small: a fast test
    argv = [
        "evaluate",
        "--content",
        str(rocket),
        "--style",
        str(composition),
        "--result",
        str(result),
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    held = out["held_out"]
    assert held["backbone"] == "efficientnet_lite2" and held["pretrained"] is True
    assert held["weights"].startswith("imagenet:efficientnet-lite2-") and len(held["sha256"]) == 64
    assert not any("RANDOM" in n for n in out["notes"])
    assert out["values"]["ssim"] > 0.9 and out["values"]["style_gram_dist"] > 0.1


def test_sample_data_separates_content_style_and_result(
    evaluator: Evaluator, sample_data: Path
) -> None:
    """The content image, the style image and a quick stylisation are ranked as a reader
    expects: content best on content metrics, style best on style metrics, result between."""
    from nst.config import TransferConfig
    from nst.optimize.transfer import stylize

    content = load_image(sample_data / "content" / "chelsea.png", 64)
    style = load_image(sample_data / "style" / "composition_0_0.png", 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        result = stylize(TransferConfig(size=64, steps=12, seed=0), content, style).image
    hw = (int(result.shape[-2]), int(result.shape[-1]))
    content = resize_tensor(content, hw)
    rows = {
        "content": evaluator.evaluate(content, style, content).values,
        "style": evaluator.evaluate(content, style, resize_tensor(style, hw)).values,
        "result": evaluator.evaluate(content, style, result).values,
    }
    keys = [k for k in METRICS if k in rows["result"] and METRICS[k].group in ("content", "style")]
    print("\nchelsea x composition_0_0, 64 px, 12 steps; held-out", evaluator.held_out["weights"])
    print(f"{'image':8} " + " ".join(f"{k:>20}" for k in keys))
    for name, v in rows.items():
        print(f"{name:8} " + " ".join(f"{v[k]:20.4f}" for k in keys))
    for key in keys:
        sign = 1 if METRICS[key].higher_is_better else -1
        best, worst = (
            ("content", "style") if METRICS[key].group == "content" else ("style", "content")
        )
        b, r, w = (sign * rows[n][key] for n in (best, "result", worst))
        assert b > r > w, (key, rows[best][key], rows["result"][key], rows[worst][key])


@pytest.mark.slow
def test_sample_data_all_pairs_order(evaluator: Evaluator, sample_data: Path) -> None:
    """Every content x style pair of the test sample (12 steps at 64 px): content metrics
    always rank content > result > style; each style metric ranks style > result > content
    in most pairs (a barely stylised result can beat the aspect-distorted style image)."""
    from nst.config import TransferConfig
    from nst.optimize.transfer import stylize

    ordered: dict[str, list[bool]] = {}
    for c_path in sorted((sample_data / "content").iterdir()):
        for s_path in sorted((sample_data / "style").iterdir()):
            content, style = load_image(c_path, 64), load_image(s_path, 64)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RandomWeightsWarning)
                result = stylize(TransferConfig(size=64, steps=12, seed=0), content, style).image
            hw = (int(result.shape[-2]), int(result.shape[-1]))
            content = resize_tensor(content, hw)
            rows = {
                "content": evaluator.evaluate(content, style, content).values,
                "style": evaluator.evaluate(content, style, resize_tensor(style, hw)).values,
                "result": evaluator.evaluate(content, style, result).values,
            }
            for key in rows["result"]:
                info = METRICS[key]
                if info.group not in ("content", "style"):
                    continue
                sign = 1 if info.higher_is_better else -1
                best, worst = (
                    ("content", "style") if info.group == "content" else ("style", "content")
                )
                b, r, w = (sign * rows[n][key] for n in (best, "result", worst))
                ordered.setdefault(key, []).append(b > r > w)
    shares = {key: sum(v) / len(v) for key, v in ordered.items()}
    print("\nshare of pairs ordered as expected:", {k: round(v, 3) for k, v in shares.items()})
    for key in ("ssim", "ms_ssim", "edge_f1", "content_feature_dist", "color_emd_lab"):
        assert shares[key] == 1.0, (key, shares[key])
    for key in ("color_hellinger", "style_gram_dist", "style_stats_dist"):
        assert shares[key] >= 0.85, (key, shares[key])
