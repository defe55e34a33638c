"""`nst reconstruct --image A --mode content|style --layer L[,L2,...] --out grid.png`:
what each layer alone reconstructs from noise, as one labelled PNG grid."""

from __future__ import annotations

import argparse

from nst import NstError
from nst.backbones import get_backbone, list_backbones

HELP = "reconstruct an image from single layers' features (content) or Gram matrices (style)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", required=True, help="the image to reconstruct")
    p.add_argument(
        "--mode",
        choices=("content", "style"),
        default="content",
        help="match the layer's features (content) or its Gram matrix (style)",
    )
    p.add_argument(
        "--layer",
        required=True,
        metavar="L[,L2,...]",
        help="comma-separated layer names, e.g. relu1_1,relu3_1 or block2,block8",
    )
    p.add_argument("--backbone", default="vgg19", help=f"one of {', '.join(list_backbones())}")
    p.add_argument(
        "--weights", default="auto", help="imagenet | random | auto | path to a state dict"
    )
    p.add_argument("--out", required=True, help="grid PNG to write")
    p.add_argument("--steps", type=int, default=200, help="Adam steps per layer (default 200)")
    p.add_argument("--size", type=int, default=128, help="long side in pixels (default 128)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the starting noise and random weights"
    )


def run(args: argparse.Namespace) -> int:
    from nst.images import load_image
    from nst.optimize.reconstruct import reconstruction_grid

    layers = [layer for layer in (s.strip() for s in args.layer.split(",")) if layer]
    if not layers:
        raise NstError("--layer: name at least one layer")
    if args.out == args.image:
        raise NstError(f"--out {args.out} is the input image; choose another output path")
    backbone = get_backbone(args.backbone, weights=args.weights, seed=args.seed)
    image = load_image(args.image)
    path = reconstruction_grid(
        backbone,
        image,
        layers,
        args.out,
        mode=args.mode,
        steps=args.steps,
        size=args.size,
        seed=args.seed,
        lr=args.lr,
    )
    print(
        f"wrote {path} ({len(layers)} {args.mode} reconstruction(s), {args.steps} steps each, "
        f"weights {backbone.weights_info.identity})"
    )
    return 0
