"""`nst fetch --out data/`: download the seeded image sample (or use a mirror, or the
embedded offline sample) with a lock file and an attribution file. See nst/data.py."""

from __future__ import annotations

import argparse

from nst.data.manifest import DEFAULT_MANIFESTS

HELP = "fetch the content/style image sample (COCO + WikiArt) into a data directory"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="data", help="data directory (default: data)")
    p.add_argument("--content", type=int, default=4, metavar="N", help="content photos (default 4)")
    p.add_argument("--styles", type=int, default=4, metavar="M", help="style images (default 4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    p.add_argument(
        "--manifest",
        action="append",
        metavar="NAME|FILE",
        help=f"manifest to draw from, repeatable or comma-separated (default: "
        f"{' '.join(DEFAULT_MANIFESTS)}; also shipped: classic)",
    )
    p.add_argument(
        "--mirror",
        metavar="DIR|URL",
        help="fetch the manifests' relative file names from a local directory or URL prefix "
        "('' = the original URLs)",
    )
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument("--retries", type=int, default=3, help="retries per file (default 3)")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry delay, doubling (s)")
    p.add_argument("--max-mb", type=float, default=25.0, help="largest accepted file (MB)")
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail instead of using the embedded sample when the sources are unreachable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from nst.data.download import DownloadPolicy
    from nst.data.fetch import fetch
    from nst.data.lock import DATA_LOCK_SHA256

    policy = DownloadPolicy(
        timeout=args.timeout,
        retries=args.retries,
        backoff=args.backoff,
        max_bytes=int(args.max_mb * 1024 * 1024),
    )
    report = fetch(
        args.out,
        # params.yaml passes one comma-separated string, "" for the default
        manifests=[m for arg in args.manifest or [] for m in arg.split(",") if m]
        or DEFAULT_MANIFESTS,
        n_content=args.content,
        n_styles=args.styles,
        seed=args.seed,
        mirror=args.mirror or None,  # '' from params.yaml means no mirror
        policy=policy,
        fallback=not args.no_fallback,
        progress=not args.quiet,
    )
    print(
        f"{args.out}: {len(report.fetched)} fetched, {len(report.kept)} kept "
        f"(source {report.source}); {DATA_LOCK_SHA256} {report.data_lock_sha256}"
    )
    return 0
