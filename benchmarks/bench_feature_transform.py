"""The softmax feature transform (Wang et al., CVPR 2021, SWAG) judged by held-out metrics.

Each content x style pair of ../shared/data is stylised on a pretrained EfficientNet-Lite0
(preset layers: content stage3, style stem, stage0..stage4) once per arm: `feature_transform`
none, and softmax at each temperature; same seed, steps, size, alpha and beta. Every result is
judged by `nst.metrics.Evaluator` with the held-out pretrained network (EfficientNet-Lite2, not
the optimised Lite0). Printed: mean and Student-t 95% interval over the pairs of each metric per
arm, the unstylised photo as a reference row, and the paired difference of each softmax arm
from none (an interval excluding 0 is a difference beyond the pair-to-pair spread).

    python -m benchmarks.bench_feature_transform [--size 192] [--steps 150] [--save out/ft]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import torch

from benchmarks.common import SHARED, cpu_line
from nst.backbones import get_backbone
from nst.config import TransferConfig
from nst.images import fit_size, load_image, resize_tensor, save_image
from nst.metrics import METRICS, Evaluator, summarize
from nst.optimize.transfer import stylize

CONTENTS = "tubingen.jpg,chelsea.png,astronaut.png"
STYLES = "starry_night.jpg,great_wave.jpg,the_scream.jpg"
SHOWN = ("content_feature_dist", "ssim", "style_gram_dist", "style_stats_dist")
PHOTO = "photo (no stylisation)"


def arms(base: TransferConfig, temperatures: list[float]) -> dict[str, TransferConfig]:
    out = {"none": base}
    for t in temperatures:
        out[f"softmax T={t:g}"] = base.replace(feature_transform="softmax", feature_temperature=t)
    return out


def interval(values: list[float]) -> str:
    mean, lo, hi = summarize(values)
    if math.isnan(lo):
        return f"{mean:.4f}"
    return f"{mean:.4f} [{lo:.4f}, {hi:.4f}]"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_feature_transform", description=__doc__
    )
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--beta", type=float, default=1e5)
    p.add_argument("--temperatures", default="1,8", help="softmax temperatures, comma-separated")
    p.add_argument("--contents", default=CONTENTS, help="files in shared/data/content")
    p.add_argument("--styles", default=STYLES, help="files in shared/data/style")
    p.add_argument("--save", default="", help="write the first pair's results here (PNG)")
    args = p.parse_args(argv)
    contents = [SHARED / "content" / n for n in args.contents.split(",")]
    styles = [SHARED / "style" / n for n in args.styles.split(",")]
    missing = [str(f) for f in contents + styles if not f.is_file()]
    if missing:
        raise SystemExit(f"missing shared images: {', '.join(missing)}")
    backbone = get_backbone(args.backbone, weights="auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        judge = Evaluator(exclude=args.backbone)
    base = TransferConfig(
        backbone=args.backbone, size=args.size, steps=args.steps, lr=args.lr, beta=args.beta
    )
    runs = arms(base, [float(t) for t in args.temperatures.split(",")])
    held = judge.held_out
    print(
        f"{len(contents)} x {len(styles)} pairs, {args.size} px, {args.steps} Adam steps lr "
        f"{args.lr:g}, alpha {base.alpha:g}, beta {base.beta:g}, seed {base.seed}; optimised "
        f"{args.backbone} {backbone.weights_info.identity}, content "
        f"{','.join(base.content_layers)}, style {','.join(base.style_layers)}"
    )
    print(
        f"judge: {held.get('backbone')} {held.get('weights')} (pretrained {held.get('pretrained')})"
    )
    print(cpu_line())
    values: dict[str, dict[str, list[float]]] = {a: {} for a in (PHOTO, *runs)}
    seconds: dict[str, float] = dict.fromkeys(runs, 0.0)
    save = Path(args.save) if args.save else None
    for i, cpath in enumerate(contents):
        for j, spath in enumerate(styles):
            content, style = load_image(cpath), load_image(spath)
            photo = fit_size(content, args.size)
            results = {PHOTO: photo}
            for name, cfg in runs.items():  # arms interleaved pair by pair
                t0 = time.perf_counter()
                results[name] = stylize(cfg, content, style, backbone=backbone).image
                seconds[name] += time.perf_counter() - t0
            for name, image in results.items():
                c = resize_tensor(photo, (int(image.shape[-2]), int(image.shape[-1])))
                ev = judge.evaluate(c, style, image).values
                for k in SHOWN:
                    values[name].setdefault(k, []).append(ev[k])
                if save is not None and i == 0 and j == 0:
                    save.mkdir(parents=True, exist_ok=True)
                    tag = name.split(" (")[0].replace(" ", "_").replace("=", "")
                    save_image(image, save / f"{cpath.stem}_x_{spath.stem}_{tag}.png")
            print(f"  pair {cpath.stem} x {spath.stem}: done", flush=True)
    arrows = {k: "higher" if METRICS[k].higher_is_better else "lower" for k in SHOWN}
    print("mean [95% CI] over pairs; better: " + ", ".join(f"{k} {v}" for k, v in arrows.items()))
    print(f"{'arm':24s}" + "".join(f" {k:>26s}" for k in SHOWN))
    for name, vals in values.items():
        print(f"{name:24s}" + "".join(f" {interval(vals[k]):>26s}" for k in SHOWN))
    print("paired difference from none (arm - none), mean [95% CI]:")
    for name in runs:
        if name == "none":
            continue
        diffs = {
            k: [a - b for a, b in zip(values[name][k], values["none"][k], strict=True)]
            for k in SHOWN
        }
        print(f"{name:24s}" + "".join(f" {interval(diffs[k]):>26s}" for k in SHOWN))
    n = len(contents) * len(styles)
    ratio = " | ".join(f"{k} {seconds[k] / seconds['none']:.2f}" for k in runs)
    print(
        f"time per result vs none (machine shared, noisy): {ratio}; none {seconds['none'] / n:.1f} s"
    )
    if save is not None:
        print(f"first pair's images: {save}")


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
