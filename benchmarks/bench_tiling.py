"""Peak memory and milliseconds per megapixel of feed-forward stylisation, whole image against
tiles (nst.models.tiling), at 0.25, 1, 4 and 16 megapixels.

Each run is its own process (its peak: VmHWM, benchmarks.common.rss_mb), limited to --limit-gb of
address space so a whole-image run that would not fit fails instead of swapping the machine:
printed as "does not fit". Networks: johnson (width 32, the paper's) and adain (the quick
profile's: EfficientNet-Lite0 encoder cut at stage1), random weights (memory and time do not
depend on them), and stytr (DeiT-Small encoders, the default: StyTr.stylize_tiles). Printed:
the process's peak resident memory, its increase over the memory before the network ran (the
image and the model loaded), and ms per megapixel; then the ratios tiled / whole at each size;
last, the largest image each method can stylise on this machine, whole (before tiles) and in
tiles (after), from nst.memory's calibrated lines and the memory available now.

    python -m benchmarks.bench_tiling [--sizes 0.25,1,4,16] [--tile 512] [--limit-gb 16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import cpu_line, current_rss_mb, rss_mb

METHODS = ("johnson", "adain", "stytr")
#: each benchmarked network's options (a checkpoint's meta: nst.models.apply.memory_kind)
OPTIONS: dict[str, dict[str, Any]] = {
    "johnson": {"width": 32},
    "adain": {"encoder": "efficientnet_lite0", "layer": "stage1"},
    "stytr": {"encoder": "deit_small"},
}


def one_run(method: str, megapixels: float, tile: int) -> dict[str, float]:
    import torch

    from nst.models import get_model
    from nst.models.apply import apply_network
    from nst.models.pairs import stylize_pairs

    torch.manual_seed(0)
    h = int((megapixels * 1e6 * 2 / 3) ** 0.5)
    image = torch.rand(1, 3, h, h * 3 // 2)
    style = torch.rand(1, 3, 256, 256)
    model = get_model(method, **OPTIONS[method]).eval()
    before = current_rss_mb()
    t0 = time.perf_counter()
    if method == "johnson":
        apply_network(model, [image], tile=tile)
    else:
        stylize_pairs(model, [image], [style], tile=tile)
    seconds = time.perf_counter() - t0
    pixels = image.shape[-1] * image.shape[-2] / 1e6
    return {"ms_per_mp": 1000 * seconds / pixels, "peak_mb": rss_mb(), "before_mb": before}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="0.25,1,4,16", help="megapixels")
    p.add_argument("--tile", type=int, default=512)
    p.add_argument("--limit-gb", type=float, default=16.0)
    p.add_argument("--child", help=argparse.SUPPRESS)  # method,megapixels,tile: one run, JSON
    args = p.parse_args(argv)
    if args.child:
        method, mp, tile = args.child.split(",")
        limit = int(args.limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        print(json.dumps(one_run(method, float(mp), int(tile))))
        return
    print(cpu_line())
    sizes = [float(s) for s in args.sizes.split(",")]
    print(
        f"tile {args.tile} px (nst.models.tiling defaults: overlap 16, halo 32); "
        f"address space limit {args.limit_gb:g} GB per run"
    )
    print(f"  {'method':8s} {'MP':>6s} {'arm':6s} {'peak MiB':>9s} {'run MiB':>8s} {'ms/MP':>8s}")
    for method in METHODS:
        for mp in sizes:
            row = {}
            for arm, tile in (("whole", 0), ("tiled", args.tile)):
                cmd = [
                    sys.executable,
                    "-m",
                    "benchmarks.bench_tiling",
                    "--child",
                    f"{method},{mp},{tile}",
                    "--limit-gb",
                    str(args.limit_gb),
                ]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    print(
                        f"  {method:8s} {mp:6g} {arm:6s} does not fit "
                        f"({(done.stderr.strip().splitlines() or ['?'])[-1][:60]})"
                    )
                    continue
                r = json.loads(done.stdout.strip().splitlines()[-1])
                row[arm] = r
                print(
                    f"  {method:8s} {mp:6g} {arm:6s} {r['peak_mb']:9.0f} "
                    f"{r['peak_mb'] - r['before_mb']:8.0f} {r['ms_per_mp']:8.0f}"
                )
            if len(row) == 2:
                w, t = row["whole"], row["tiled"]
                print(
                    f"  {'':8s} {'':6s} tiled/whole: peak {t['peak_mb'] / w['peak_mb']:.2f}, "
                    f"run {(t['peak_mb'] - t['before_mb']) / max(w['peak_mb'] - w['before_mb'], 1):.2f}, "
                    f"time {t['ms_per_mp'] / w['ms_per_mp']:.2f}"
                )

    print(largest(args.tile))


def largest(tile: int) -> str:
    """The largest image (megapixels) each method can stylise here, whole and in tiles of
    `tile`, by nst.memory's lines against the memory available now."""
    from nst.imagefiles import MAX_PIXELS
    from nst.memory import available_mib
    from nst.models.apply import predicted

    budget = available_mib()
    lines = [f"largest image by nst.memory ({budget:,.0f} MiB available now):"]
    for method in METHODS:
        meta = {"method": method, "options": OPTIONS[method]}
        found = {t: mp for t in (0, tile) for mp in [fits(meta, t, budget, predicted)]}
        lines.append(
            f"  {method:8s} whole {found[0]:7.1f} MP   tiles of {tile}: {found[tile]:7.1f} MP"
            f"   ({found[tile] / max(found[0], 1e-9):.0f}x)"
        )
    lines.append(
        f"  (a file is read up to {MAX_PIXELS / 1e6:.0f} MP: nst.imagefiles.MAX_PIXELS, the "
        "decompression-bomb guard, bounds the tiled runs first)"
    )
    return "\n".join(lines)


def fits(meta: dict, tile: int, budget: float, predicted: Any) -> float:
    """The largest megapixels whose predicted peak fits `budget` (bisection: the estimate
    grows with the image)."""
    low, high = 0.0, 4096.0
    for _ in range(50):
        mid = (low + high) / 2
        found = predicted(meta, mid, tile)
        low, high = (mid, high) if found is not None and found.mib <= budget else (low, mid)
    return low


if __name__ == "__main__":
    main()
