"""`nst transfer --content A --style B --out C [options]`: stylise one image."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from nst import NstError
from nst.cli.options import add_config_options, config_from_args
from nst.frames import write_frames
from nst.images import load_image, save_image
from nst.provenance import package_versions
from nst.transfer import Result, Step, stylize

HELP = "stylise a content image with a style image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument("--style", required=True, action="append",
                   help="style image file; several as A,B or a repeated --style, mixed by --style-blend")
    p.add_argument("--out", required=True, help="where to write the result (.png or .jpg)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.add_argument("--frames-out", metavar="PATH.gif",
                   help="write the progress frames as an animated GIF (and an MP4 beside it when ffmpeg "
                        "is installed); default with --frame-every: <out>.frames.gif beside --out")
    add_config_options(p)


def progress_bar(total: int) -> tuple[tqdm, object]:
    # tqdm disables itself when stderr is not a terminal (disable=None)
    bar = tqdm(total=total, unit="step", disable=None, file=sys.stderr, dynamic_ncols=True)

    def update(step: Step) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{step.losses['total']:.4g}", refresh=False)

    return bar, update


def summary(result: Result, out: str) -> dict[str, object]:
    return {
        "output": out,
        "final_losses": result.final_losses,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "seconds_per_step": round(result.seconds_per_step, 5),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "weights": {"identity": result.weights.identity, "sha256": result.weights.sha256,
                    "pretrained": result.weights.pretrained},
        "seed": result.config.seed,
        "config": result.config.to_dict(),
        "frames": len(result.frames),
        "versions": package_versions(),
    }


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    style_paths = [s for v in args.style for s in (x.strip() for x in v.split(",")) if s]
    if args.out in (args.content, *style_paths):
        raise NstError(f"--out {args.out} is an input image; choose another output path")
    if args.frames_out and config.frame_every == 0:  # asked for frames: about 30 of them
        config = config.replace(frame_every=max(1, config.steps // 30))
    content = load_image(args.content)
    styles = [load_image(p) for p in style_paths]
    style = styles[0] if len(styles) == 1 else styles
    bar, update = progress_bar(sum(config.pyramid_steps) or config.steps * max(1, len(config.pyramid)))
    with bar:
        result = stylize(config, content, style, callbacks=[update])
    save_image(result.image, args.out, protect=(args.content, *style_paths))
    if result.frames:
        frames_out = args.frames_out or str(Path(args.out).with_suffix(".frames.gif"))
        for path in write_frames(result.frames, frames_out):
            print(f"wrote {path} ({len(result.frames)} frames)", file=sys.stderr)
    if args.json:
        print(json.dumps(summary(result, args.out), indent=2))
    else:
        print(f"wrote {args.out} ({result.steps} steps, {result.seconds:.1f} s, "
              f"loss {result.final_losses['total']:.4g}, weights {result.weights.identity})")
    return 0
