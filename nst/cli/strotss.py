"""`nst strotss --content A --style B --out C [options]`: stylise one image by STROTSS
(Kolkin et al. 2019, nst.optimize.strotss), tracked in MLflow like `nst transfer`."""

from __future__ import annotations

import argparse
from typing import Any

from nst import NstError
from nst.cli.options import add_config_options, check_output, typed_values
from nst.cli.transfer import (
    add_memory_options,
    add_tracking_options,
    check_memory,
    print_result,
    progress_bar,
    tracked,
)
from nst.config import StrotssConfig
from nst.parts import read_yaml

HELP = "stylise a content image by STROTSS (relaxed optimal transport, self-similarity)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument("--style", required=True, help="style image file")
    p.add_argument("--out", required=True, help="where to write the result (.png or .jpg)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_memory_options(p)
    add_tracking_options(p)
    add_config_options(
        p, StrotssConfig, "STROTSS configuration (defaults: the paper's and its released code's)"
    )


def config_from_args(args: argparse.Namespace) -> StrotssConfig:
    """--config file < options typed on the command line < StrotssConfig's defaults below."""
    from_file = read_yaml(args.config) if args.config else {}
    if not isinstance(from_file, dict):
        raise NstError(f"--config {args.config}: a config file must be a mapping of fields")
    return StrotssConfig.from_dict({**from_file, **typed_values(args, StrotssConfig)})


def run(args: argparse.Namespace) -> int:
    from nst.images import load_image, save_image
    from nst.optimize.strotss import strotss

    config = config_from_args(args)
    if args.out in (args.content, args.style):
        raise NstError(f"--out {args.out} is an input image; choose another output path")
    check_output(args.out, "--out")
    if check_memory(args, config, args.content):
        return 0
    content, style = load_image(args.content), load_image(args.style)
    bar, update = progress_bar(config.steps * config.scales, f"strotss {config.backbone}")
    inputs = {"content": args.content, "style": args.style}
    # a tracking failure (strict) is raised when this block exits: the result is on disk by then
    with tracked(args, config, inputs) as tracker:
        callbacks: list[Any] = [update] if tracker is None else [update, tracker.callback()]
        with bar:
            result = strotss(config, content, style, callbacks=callbacks)
        save_image(result.image, args.out, protect=(args.content, args.style))
        if tracker is not None:
            from nst.tracking.tags import hash_files

            tracker.set_tags({"nst.method": "strotss"})
            tracker.log_result(result, content, style, data_hashes=hash_files(inputs))
        steps = f"{result.steps} steps over {config.scales} scales"
        print_result(args, result, tracker, steps, f"backbone {config.backbone}")
    return 0
