"""`nst transfer --content A --style B --out C [options]`: stylise one image."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from nst import NstError
from nst.cli.options import add_config_options, config_from_args
from nst.images import load_image, save_image
from nst.provenance import package_versions
from nst.transfer import Result, Step, stylize

HELP = "stylise a content image with a style image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument("--style", required=True, help="style image file")
    p.add_argument("--out", required=True, help="where to write the result (.png or .jpg)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
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
        "versions": package_versions(),
    }


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    if args.out in (args.content, args.style):
        raise NstError(f"--out {args.out} is an input image; choose another output path")
    content, style = load_image(args.content), load_image(args.style)
    bar, update = progress_bar(config.steps)
    with bar:
        result = stylize(config, content, style, callbacks=[update])
    save_image(result.image, args.out, protect=(args.content, args.style))
    if args.json:
        print(json.dumps(summary(result, args.out), indent=2))
    else:
        print(f"wrote {args.out} ({result.steps} steps, {result.seconds:.1f} s, "
              f"loss {result.final_losses['total']:.4g}, weights {result.weights.identity})")
    return 0
