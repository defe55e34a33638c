"""`nst export --model CKPT --onnx out.onnx`: a trained feed-forward network (johnson, adain,
stytr) as an ONNX graph with dynamic batch, height and width (nst.models.export), checked under onnxruntime."""

from __future__ import annotations

import argparse
import sys

HELP = "export a trained feed-forward network to ONNX (dynamic batch, height, width)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="model.pt or checkpoint.pt of `nst train`, or runs:/RUN_ID/model, "
        "models:/NAME/VERSION",
    )
    p.add_argument("--onnx", required=True, help="the ONNX file to write (atomically)")
    p.add_argument(
        "--opset",
        type=int,
        default=None,
        choices=range(13, 22),
        metavar="13..21",
        help="ONNX opset version (default: 17; stytr: 18, its minimum)",
    )
    p.add_argument("--tracking-uri", help="MLflow store of runs:/ and models:/ URIs")


def run(args: argparse.Namespace) -> int:
    from nst.cli.options import check_output
    from nst.models.export import CHECK_SHAPE, export_onnx
    from nst.models.io import describe
    from nst.models.uri import local_checkpoint

    check_output(args.onnx, "--onnx")
    with local_checkpoint(args.model, args.tracking_uri) as path:
        result = export_onnx(path, args.onnx, opset=args.opset)
    shape = "x".join(map(str, CHECK_SHAPE))
    inputs = " and ".join(result.inputs)
    print(
        f"wrote {result.path} ({describe(result.meta)}, opset {result.opset}, inputs {inputs} "
        f"with dynamic batch, height and width >= {result.min_side} px; onnxruntime vs torch "
        f"max |diff| {result.max_abs_diff:.2g} "
        f"at {shape}, {result.seconds:.1f} s)",
        file=sys.stderr,
    )
    return 0
