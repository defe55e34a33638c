"""`nst demo --out PATH`: stylise a pair that needs no download (scikit-image's astronaut and
brick texture): a first stylisation on a fresh clone, before any data is fetched."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from nst.cli.options import add_config_options, config_from_args, transfer_default

if TYPE_CHECKING:
    from PIL import Image

HELP = "stylise a bundled demonstration pair (no download)"


def demo_pair() -> tuple[Image.Image, Image.Image]:
    import numpy as np
    from PIL import Image
    from skimage import data

    content = Image.fromarray(data.astronaut())
    brick = np.asarray(data.brick(), dtype=np.uint8)
    return content, Image.fromarray(np.stack([brick] * 3, axis=-1))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo.png", help="result image path")
    add_config_options(p, shown=transfer_default)


def run(args: argparse.Namespace) -> int:
    from nst.cli.transfer import progress_bar
    from nst.images import save_image, to_tensor
    from nst.optimize import stylize

    config, rule = config_from_args(args)
    content, style = demo_pair()
    bar, update = progress_bar(config.steps, config.backbone)
    with bar:
        result = stylize(config, to_tensor(content), to_tensor(style), callbacks=[update])
    save_image(result.image, args.out)
    print(
        f"wrote {args.out} ({result.steps} steps, {result.seconds:.1f} s, backbone {rule}, "
        f"weights {result.weights.identity})"
    )
    return 0
