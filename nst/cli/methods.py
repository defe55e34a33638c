"""`nst methods experiments/methods.yaml --profile smoke --data data --out results`: compare
the stylisation methods on the same held-out pairs (nst.methods.run_methods)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

HELP = "compare methods (gatys, johnson, adain, stytr) on the same held-out pairs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="methods file, e.g. experiments/methods.yaml")
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"),
                   help="smoke (CI seconds) | quick (make repro, 2 cores) | full (GPU protocol)")  # fmt: skip
    p.add_argument("--data", type=Path, default=Path("data"),
                   help="folder with content/ and style/ (nst fetch's output)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="results folder: writes <out>/methods/")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="print only the final table")


def run(args: argparse.Namespace) -> int:
    from nst.methods.run import run_methods

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    root = run_methods(args.spec, args.profile, args.data, args.out, log=log)
    summary = json.loads((root / "summary.json").read_text())
    with (root / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    print(f"methods ({summary['profile']}): {len(rows)} results -> {root}")
    for name in summary["methods"]:
        mine = [r for r in rows if r["method"] == name]
        if not mine:
            continue
        mean = {k: sum(float(r[k]) for r in mine) / len(mine)
                for k in ("ssim", "style_gram_dist", "seconds", "peak_memory_mb") if k in mine[0]}  # fmt: skip
        print(f"  {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()))
    return 0
