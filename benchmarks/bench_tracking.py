"""Tracking overhead: seconds per step of `stylize` with and without MLflow tracking.

    python -m benchmarks.bench_tracking [--size 256] [--steps 300] [--repeats 1]

The two arms run interleaved (untracked, tracked, untracked, tracked, ...) on the same backbone
and images, into a throw-away sqlite store, so load changes on the machine hit both alike.
Overhead = tracked / untracked seconds per step - 1 (goal: under 5 %). The tracked time includes
logging the final images and metrics, i.e. the whole cost a user pays for a run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from nst.config import TransferConfig
from nst.optimize.transfer import stylize
from nst.perceptual import loss_backbone
from nst.tracking.transfer import transfer_run


def pair(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    content = torch.stack([x, y, (x + y) / 2]).unsqueeze(0)
    return content, torch.rand(1, 3, size, size, generator=gen)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    config = TransferConfig(size=args.size, steps=args.steps, weights="random")
    warnings.simplefilter("ignore")
    backbone = loss_backbone(config)
    content, style = pair(args.size)
    untracked: list[float] = []
    tracked: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'bench.db'}"
        with transfer_run(
            config.replace(steps=1), tracking_uri=uri
        ):  # create the db outside timing
            pass
        for _ in range(args.repeats):
            t = time.perf_counter()
            stylize(config, content, style, backbone=backbone)
            untracked.append((time.perf_counter() - t) / args.steps)
            t = time.perf_counter()
            with transfer_run(config, tracking_uri=uri) as tracker:
                result = stylize(config, content, style, [tracker.callback()], backbone=backbone)
                tracker.log_result(result, content, style)
            tracked.append((time.perf_counter() - t) / args.steps)
    a, b = statistics.median(untracked), statistics.median(tracked)
    print(
        f"tracking overhead at {args.size} px, {args.steps} steps, {args.repeats} repeat(s), "
        f"{torch.get_num_threads()} threads"
    )
    print(f"  untracked  {a:.4f} s/step")
    print(f"  tracked    {b:.4f} s/step")
    print(f"  ratio      {b / a:.3f}  (overhead {100 * (b / a - 1):+.1f} %, goal < 5 %)")


if __name__ == "__main__":
    main()
