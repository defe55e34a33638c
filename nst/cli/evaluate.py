"""`nst evaluate --content A --style B --result C [--json]`: judge one stylised image with
the metrics the optimiser never sees (nst.metrics). The content image is resized to the
result's size; the style image's long side is matched to the result's."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nst.metrics import Evaluation

HELP = "evaluate a result against its content and style images (SSIM, edges, colour, Gram, ...)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument("--style", required=True, help="style image file")
    p.add_argument("--result", required=True, help="stylised result image file")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--exclude-backbone",
        action="append",
        default=[],
        metavar="NAME",
        help="a network the result depended on (its loss network, an encoder); repeat for "
        "each: the judge is the first of its candidates not named (efficientnet: lite2, lite0, "
        "lite1; vgg: vgg16, vgg19)",
    )
    p.add_argument(
        "--judge",
        choices=("efficientnet", "vgg"),
        default="efficientnet",
        help="held-out network: efficientnet (EfficientNet-Lite2, pretrained; the default) or "
        "vgg (VGG16, the judge of earlier results; random weights unless ImageNet ones are "
        "cached)",
    )
    p.add_argument(
        "--weights",
        default="auto",
        help="held-out network weights: auto (ImageNet: packaged for efficientnet, if cached "
        "for vgg, else random), imagenet, random, or a state-dict path",
    )
    p.add_argument("--runtime-s", type=float, default=None, help="run time to pass through")
    p.add_argument("--peak-memory-mb", type=float, default=None, help="peak memory to pass through")


def table(ev: Evaluation) -> str:
    """A plain-text table: group, metric, value, which direction is better."""
    from nst.metrics import METRICS

    lines = [f"{'group':8} {'metric':22} {'value':>10}  better"]
    for name, info in METRICS.items():
        if name in ev.values:
            arrow = "higher" if info.higher_is_better else "lower"
            lines.append(f"{info.group:8} {name:22} {ev.values[name]:10.4f}  {arrow}")
    held = ev.held_out
    kind = "pretrained" if held["pretrained"] else "RANDOM weights"
    lines.append(
        f"held-out network: {held['backbone']} {held['weights']} ({kind}, "
        f"sha256 {held['sha256'][:12]})"
    )
    lines += [f"note: {note}" for note in ev.notes]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from nst.images import load_image, resize_tensor
    from nst.metrics import METRICS, Evaluator

    result = load_image(args.result)
    content = resize_tensor(load_image(args.content), tuple(result.shape[-2:]))  # type: ignore[arg-type]
    style = load_image(args.style)
    evaluator = Evaluator(args.exclude_backbone, judge=args.judge, weights=args.weights)
    ev = evaluator.evaluate(
        content, style, result, runtime_s=args.runtime_s, peak_memory_mb=args.peak_memory_mb
    )
    if args.json:
        out = {
            "values": ev.values,
            "notes": list(ev.notes),
            "held_out": ev.held_out,
            "directions": {k: METRICS[k].direction for k in ev.values},
            "inputs": {"content": args.content, "style": args.style, "result": args.result},
        }
        print(json.dumps(out, indent=2))
    else:
        print(table(ev))
    return 0
