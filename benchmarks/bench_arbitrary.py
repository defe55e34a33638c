"""Arbitrary-style networks beside Johnson's and beside optimisation, side by side in one run.

    python -m benchmarks.bench_arbitrary [--sizes 256,512] [--repeats 3] [--train-steps 3]

- infer: ms per image (batch 1) of johnson, adain (VGG19 to relu4_1) and stytr (two DeiT-S
  encoders with LoRA) at each size, arms interleaved, median of --repeats; and a 300-step
  `stylize` (VGG19, Adam) at the same size, EXTRAPOLATED from --stylize-steps timed steps.
- train: images/s of adain and stytr at 256 px, batch 4 (--train-steps steps after one warm-up
  step, default losses and loss networks), each in a fresh process, and that process's peak
  RSS (setup included: the networks and the style statistics are part of what training holds).
Weights are seeded random for every network (speed does not depend on their values).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from benchmarks.common import SHARED, benchmark_pair, cpu_line

METHODS = ("johnson", "adain", "stytr")
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}


def network(method: str) -> torch.nn.Module:
    from nst.models.registry import get_model

    options = {} if method == "johnson" else {"weights": "random"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_model(method, **options).eval()  # type: ignore[no-any-return]


def infer(args: argparse.Namespace) -> None:
    nets = {m: network(m) for m in METHODS}
    gen = torch.Generator().manual_seed(0)
    for size in args.sizes:
        content = torch.rand(1, 3, size, size, generator=gen)
        style = torch.rand(1, 3, size, size, generator=gen)

        def call(
            method: str, content: torch.Tensor = content, style: torch.Tensor = style
        ) -> float:
            t = time.perf_counter()
            with torch.inference_mode():
                net = nets[method]
                net(content) if method == "johnson" else net(content, style)
            return 1000 * (time.perf_counter() - t)

        for m in METHODS:
            call(m)  # warm-up
        times: dict[str, list[float]] = {m: [] for m in METHODS}
        for _ in range(args.repeats):
            for m in METHODS:
                times[m].append(call(m))
        ms = {m: statistics.median(v) for m, v in times.items()}
        opt_s = stylize_seconds(size, args.stylize_steps)
        for m in METHODS:
            print(
                f"infer {size}px: {m:8s} {ms[m]:9.1f} ms/image | {opt_s * 1000 / ms[m]:8,.0f}x "
                f"faster than a 300-step stylize ({opt_s:.0f} s, EXTRAPOLATED from "
                f"{args.stylize_steps} steps) | batch 1, median of {args.repeats}"
            )


def stylize_seconds(size: int, steps: int) -> float:
    """Seconds of a 300-step VGG19 Adam stylize at `size`: setup + 300 x the timed s/step."""
    from nst.config import TransferConfig
    from nst.optimize import stylize

    content, style, _ = benchmark_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stylize(TransferConfig(size=size, steps=steps, weights="random"), content, style)
    setup = result.seconds - result.steps * result.seconds_per_step
    return setup + 300 * result.seconds_per_step


def train_child(method: str, steps: int, size: int, batch: int) -> None:
    """In a fresh process: one warm-up step, then `steps` timed ones; prints images/s."""
    from nst.train import TrainConfig, train

    def run(n: int, out: Path) -> float:
        config = TrainConfig.from_dict(
            dict(
                method=method,
                data=str(SHARED / "content"),
                styles=str(SHARED / "style"),
                size=size,
                batch_size=batch,
                steps=n,
                weights="random",
                encoder_weights="random",
                checkpoint_every=0,
                sample_every=0,
                log_every=n,
                val_images=0,
            )
        )
        return float(train(config, out, progress=False).images_per_second)

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(1, Path(tmp) / "warm")
        print(json.dumps({"images_per_second": run(steps, Path(tmp) / "timed")}))


def train_rates(args: argparse.Namespace) -> None:
    for method in ("adain", "stytr"):
        code = (
            f"from benchmarks.bench_arbitrary import train_child; "
            f"train_child({method!r}, {args.train_steps}, {args.size}, {args.batch})"
        )
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, **ENV},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        out = proc.stdout.read() if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            print(f"train {args.size}px batch {args.batch}: {method}: failed")
            continue
        rate = json.loads(out.strip().splitlines()[-1])["images_per_second"]
        print(
            f"train {args.size}px batch {args.batch}: {method:6s} {rate:6.2f} img/s | peak RSS "
            f"{usage.ru_maxrss / 1024:6.0f} MiB (fresh process, setup included) | "
            f"{args.train_steps} steps after 1 warm-up"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_arbitrary")
    p.add_argument("--sizes", default="256,512", help="inference sizes, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stylize-steps", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=3)
    p.add_argument("--size", type=int, default=256, help="training crop size")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--only", default="infer,train")
    args = p.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s]
    print(cpu_line())
    if "infer" in args.only:
        infer(args)
    if "train" in args.only:
        train_rates(args)


if __name__ == "__main__":
    main()
