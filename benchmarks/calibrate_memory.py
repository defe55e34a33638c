"""Measure the memory lines of nst.memory and write nst/memory.json.

Every kind of run is measured at two sizes, each in its own process (its peak resident
memory: VmHWM, benchmarks.common.rss_mb) running the command itself (`nst transfer` with a
256 px style, 2 Adam steps; `nst strotss` at one scale, 2 steps; `nst apply` of a saved
checkpoint: files decoded and encoded),
and the line through the two points gives base and per_mp; apply:buffers is a width-8
johnson in 256 px tiles on 8 and 24 megapixel images, where the images' buffers dominate.
Random weights (memory does not depend on them), float32, CPU.

    python -m benchmarks.calibrate_memory [--out nst/memory.json] [--kinds transfer:vgg19,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import cpu_line, rss_mb

TRANSFER = ("vgg19", "vgg16", "efficientnet_lite0", "deit_small")
#: nst strotss's loss networks: its default (VGG16) and the pretrained one here
STROTSS = ("vgg16", "efficientnet_lite0")
APPLY = (
    "apply:johnson",
    "apply:adain:vgg19:relu4_1",
    "apply:adain:efficientnet_lite0:stage1",
    "apply:stytr:deit_small",
    "apply:buffers",
)
TRAIN = (
    "train:johnson:efficientnet_lite0",
    "train:johnson:vgg16",
    "train:adain:efficientnet_lite0:stage1",
    "train:adain:vgg19:relu4_1",
)
#: a training step's megapixels (batch 2 x 256^2 and 2 x 512^2 crops)
TRAIN_MP = (2 * 256**2 / 1e6, 2 * 512**2 / 1e6)
#: megapixels of the two whole-image runs, and of the two images apply:buffers is measured on
#: (a width-8 johnson in 256 px tiles: its passes are small, the images' buffers dominate)
WHOLE, TILED = (0.25, 1.0), (8.0, 24.0)


def one_run(kind: str, mp: float, tile: int) -> float:
    """Peak RSS (MiB) of `nst transfer` or `nst apply` (the command, files in and out) on a
    4:3 image of `mp` megapixels."""
    import tempfile
    import warnings

    import torch

    from nst.cli import main as nst
    from nst.images import save_image

    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="calibrate_"))
    h = int((mp * 1e6 * 3 / 4) ** 0.5)
    photo = save_image(torch.rand(1, 3, h, h * 4 // 3), tmp / "photo.png")
    style = save_image(torch.rand(1, 3, 256, 256), tmp / "style.png")
    if kind.startswith("train:"):
        parts = kind.split(":")
        side = round((mp * 1e6 / 2) ** 0.5)
        data = tmp / "photos"
        for i in range(3):
            save_image(torch.rand(1, 3, side + 8, side + 8), data / f"p{i}.png")
        argv = [
            "train",
            "--method",
            parts[1],
            "--data",
            str(data),
            "--size",
            str(side),
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--checkpoint-every",
            "0",
            "--sample-every",
            "0",
            "--val-images",
            "0",
            "--device",
            "cpu",
            "--no-track",
            "--out",
            str(tmp / "run"),
        ]
        if parts[1] == "johnson":
            argv += ["--style", str(style), "--backbone", parts[2], "--weights", "random"]
        else:
            argv += [
                "--styles",
                str(data),
                "--encoder",
                parts[2],
                "--encoder-layer",
                parts[3],
                "--encoder-weights",
                "random",
            ]
    elif kind.startswith(("strotss:", "transfer:")):
        command, backbone = kind.split(":")
        argv = [
            command,
            "--content",
            str(photo),
            "--style",
            str(style),
            "--out",
            str(tmp / "out.png"),
            "--backbone",
            backbone,
            "--weights",
            "random",
            "--size",
            str(h * 4 // 3),
            "--steps",
            "2",
            "--device",
            "cpu",
            "--no-track",
        ]
        # strotss: its finest scale alone; transfer: a 256 px style, Adam
        argv += (
            ["--scales", "1"]
            if command == "strotss"
            else ["--style-scale", str(256 / (h * 4 // 3)), "--optimizer", "adam"]
        )
    else:
        from nst.models import get_model
        from nst.train.checkpoint import save_model
        from nst.train.config import TrainConfig

        parts = kind.split(":")
        johnson = parts[1] in ("johnson", "buffers")
        values: dict[str, object] = {
            "data": str(tmp),
            "device": "cpu",
            "method": "johnson" if johnson else parts[1],
        }
        if johnson:
            model = get_model("johnson", width=8 if parts[1] == "buffers" else 32)
            values["style"] = str(style)
        elif parts[1] == "stytr":
            model = get_model("stytr", encoder=parts[2], weights="random")
            values.update(styles=str(tmp), encoder=parts[2])
        else:
            model = get_model("adain", encoder=parts[2], layer=parts[3], weights="random")
            values.update(styles=str(tmp), encoder=parts[2], encoder_layer=parts[3])
        ckpt = save_model(tmp / "model.pt", model, TrainConfig.from_dict(values), 1, {})
        del model
        argv = [
            "apply",
            "--model",
            str(ckpt),
            "--content",
            str(photo),
            "--out",
            str(tmp / "out"),
            "--tile",
            str(tile),
            "--device",
            "cpu",
        ]
        if not johnson:
            argv += ["--style", str(style)]
    if nst(argv) != 0:
        raise SystemExit(f"nst {' '.join(argv)} failed")
    return rss_mb()


def measure(kind: str, mp: float, tile: int = 0) -> float:
    cmd = [sys.executable, "-m", "benchmarks.calibrate_memory", "--child", f"{kind},{mp},{tile}"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def line(points: tuple[tuple[float, float], tuple[float, float]]) -> tuple[float, float]:
    (x1, y1), (x2, y2) = points
    slope = (y2 - y1) / (x2 - x1)
    return y1 - slope * x1, slope


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("nst/memory.json"))
    p.add_argument("--kinds", help="comma-separated kinds (default: all)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, mp, tile = args.child.rsplit(",", 2)
        print(one_run(kind, float(mp), int(tile)))
        return
    kinds = (
        args.kinds.split(",")
        if args.kinds
        else [f"transfer:{b}" for b in TRANSFER]
        + [f"strotss:{b}" for b in STROTSS]
        + [*APPLY, *TRAIN]
    )
    print(cpu_line())
    found: dict[str, dict[str, float]] = {}
    for kind in kinds:
        tile, sizes = (256, TILED) if kind == "apply:buffers" else (0, WHOLE)
        sizes = TRAIN_MP if kind.startswith("train:") else sizes
        peaks = [(mp, measure(kind, mp, tile)) for mp in sizes]
        base, per_mp = line((peaks[0], peaks[1]))
        entry = {"base": round(base, 1), "per_mp": round(per_mp, 1)}
        found[kind] = entry
        print(f"  {kind:40s} {entry}  (peaks {[round(v) for _, v in peaks]} MiB)")
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    data = {
        "about": "nst.memory's calibration: python -m benchmarks.calibrate_memory",
        "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": cpu_line(),
        "kinds": {**old.get("kinds", {}), **found},
    }
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
