"""Seconds per optimisation step: DeiT-small vs VGG19 at 224 and 384 px.

Run: python -m benchmarks.bench_backbones [--steps N] [--sizes 224,384] [--device cpu]
Each row is one stylize() run (random weights, Adam, init=content) after a 1-step warm-up;
ratio = DeiT-small s/step / VGG19 s/step at the same size (timings only compare side by side).
"""

from __future__ import annotations

import argparse
import typing
import warnings

import torch

from nst.config import TransferConfig
from nst.optimize.transfer import stylize

LAYERS: dict[str, dict[str, typing.Any]] = {
    "vgg19": {},  # the TransferConfig defaults: relu4_2 / relu1_1..relu5_1
    "deit_small": {
        "content_layers": ("block8",),
        "style_layers": ("block1", "block3", "block5", "block7"),
    },
}


def seconds_per_step(backbone: str, size: int, steps: int, device: str) -> float:
    content = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    style = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    cfg = TransferConfig(
        backbone=backbone, weights="random", size=size, steps=1, device=device, **LAYERS[backbone]
    )
    stylize(cfg, content, style)  # warm-up
    return stylize(cfg.replace(steps=steps), content, style).seconds_per_step


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--sizes", default="224,384")
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"{'size':>5} {'vgg19 s/step':>13} {'deit_small s/step':>18} {'ratio':>6}")
    for size in (int(s) for s in args.sizes.split(",")):
        vgg = seconds_per_step("vgg19", size, args.steps, args.device)
        deit = seconds_per_step("deit_small", size, args.steps, args.device)
        print(f"{size:>5} {vgg:>13.3f} {deit:>18.3f} {deit / vgg:>6.2f}", flush=True)


if __name__ == "__main__":
    main()
