"""`nst apply --model CKPT|runs:/RUN_ID/model|models:/NAME/VERSION --content A.jpg [B.jpg ...] --out DIR`: stylise photos with a
trained feed-forward network (nst.models.load_model), in batches of equally sized images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "stylise images with a trained feed-forward network"
COLORS = ("none", "luminance", "histogram")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        required=True,
        help="model.pt or checkpoint.pt of `nst train`, an MLflow URI (runs:/RUN_ID/model, "
        "models:/NAME/VERSION), or a model.onnx of `nst export` or another's (onnxruntime, "
        "no torch)",
    )
    p.add_argument("--content", required=True, nargs="+", help="content image file(s)")
    p.add_argument("--out", required=True, help="output folder: <out>/<content name>.png")
    p.add_argument("--size", type=int, help="long side of the output (default: the input's)")
    p.add_argument(
        "--color",
        choices=COLORS,
        default="none",
        help="keep the photo's colours: luminance (stylise Y, keep the photo's I and Q) or "
        "histogram (match the result's colour histogram to the photo's)",
    )
    p.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    p.add_argument(
        "--tile",
        default="0",
        metavar="N|auto",
        help="stylise in N x N tiles (bounded memory at any size; the whole image's "
        "statistics, nst.models.tiling; a model.onnx too); auto: the whole image when it "
        "fits the memory, else the largest tile that does; 0 (default): the whole image",
    )
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory the run may use, e.g. 4GB (default: what is available now); a run "
        "predicted to need more (nst.memory) is refused before any image is read",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print each image's size, tiling and predicted peak memory, and stop",
    )
    p.add_argument(
        "--tile-overlap",
        type=int,
        metavar="PX",
        help="pixels neighbouring tiles share and cross-fade over (default: "
        "nst.models.tiling.OVERLAP)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    o = p.add_argument_group("an external model.onnx (nst.models.external's conventions)")
    o.add_argument(
        "--onnx-layout", choices=("nchw", "nhwc"), default="nchw", help="the graph's layout"
    )
    o.add_argument(
        "--onnx-value-range",
        choices=("0-1", "0-255"),
        default="0-1",
        help="the graph's pixel scale, inputs and output alike",
    )
    g = p.add_argument_group(
        "arbitrary-style networks (adain, stytr): the style is an input; "
        "a cin network: the style is one of its bank's, by name"
    )
    g.add_argument(
        "--style",
        nargs="+",
        help="style image(s), any (a cin network: names in its bank); several are interpolated",
    )
    g.add_argument("--style-weights", metavar="W1,W2,...", help="interpolation weights")
    g.add_argument(
        "--strength",
        type=float,
        default=1.0,
        help="content-style trade-off in [0, 1] (adain; default 1)",
    )
    g.add_argument("--mask", help="grey mask image: white = stylise, black = keep the photo")
    p.add_argument(
        "--tracking-uri",
        help="MLflow store of runs:/ and models:/ URIs (default: $MLFLOW_TRACKING_URI, else "
        "./mlflow.db of the project)",
    )


def run(args: argparse.Namespace) -> int:
    from nst import NstError
    from nst.cli.options import check_output

    check_output(args.out, "--out", folder=True)
    if args.size is not None and args.size < 1:
        raise NstError(f"--size must be at least 1, got {args.size}")
    if args.batch_size < 1:
        raise NstError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.tile != "auto" and not (args.tile.isdigit()):
        raise NstError(f"--tile must be auto, 0 (no tiles) or a side in pixels, got {args.tile}")
    if str(args.model).endswith(".onnx"):
        return _run_onnx(args)
    if args.onnx_layout != "nchw" or args.onnx_value_range != "0-1":
        raise NstError("--onnx-layout and --onnx-value-range describe a model.onnx: drop them")
    from nst.models.apply import stylize_files

    weights = None
    if args.style_weights:
        try:
            weights = [float(w) for w in args.style_weights.split(",") if w.strip()]
        except ValueError:
            raise NstError(f"--style-weights {args.style_weights!r}: give numbers") from None
    written = stylize_files(
        args.model,
        [Path(c) for c in args.content],
        Path(args.out),
        size=args.size,
        color=args.color,
        batch_size=args.batch_size,
        device=args.device,
        tracking_uri=args.tracking_uri,
        styles=[Path(s) for s in args.style or []],
        style_weights=weights,
        strength=args.strength,
        mask=Path(args.mask) if args.mask else None,
        tile=args.tile if args.tile == "auto" else int(args.tile),
        **({} if args.tile_overlap is None else {"overlap": args.tile_overlap}),
        max_memory=args.max_memory,
        dry_run=args.dry_run,
        log=print,
    )
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _run_onnx(args: argparse.Namespace) -> int:
    """An exported graph under onnxruntime, torch never imported (nst.models.onnx_apply)."""
    from nst import NstError
    from nst.imagefiles import output_paths
    from nst.models.onnx_apply import apply_onnx

    unsupported = {
        "--color": args.color != "none",
        "--style-weights": bool(args.style_weights),
        "--strength": args.strength != 1.0,
        "--mask": bool(args.mask),
        "--tile auto": args.tile == "auto",
        "--max-memory": bool(args.max_memory),
        "--dry-run": args.dry_run,
        "--device": args.device not in ("auto", "cpu"),
    }
    asked = [k for k, v in unsupported.items() if v]
    if asked:
        raise NstError(
            f"{', '.join(asked)}: not available for an ONNX file (onnxruntime, CPU); "
            "use the checkpoint (model.pt), or drop them"
        )
    contents = [Path(c) for c in args.content]
    written = apply_onnx(
        args.model,
        contents,
        output_paths(contents, Path(args.out)),
        size=args.size,
        styles=[Path(s) for s in args.style or []],
        tile=int(args.tile),
        **({} if args.tile_overlap is None else {"overlap": args.tile_overlap}),
        layout=args.onnx_layout,
        value_range=args.onnx_value_range,
    )
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
