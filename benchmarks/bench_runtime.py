"""How a training run computes, side by side: torch.compile against eager, DataLoader workers
against loading in the loop, fp16 and bf16 autocast against fp32 (nst.train.loop).

Each figure is the steady-state rate of one run of 3N steps: the 2N steps after step N (the
loop logs at N, 2N, 3N; the times of those rows), so compiling and starting the workers, done
in the first steps, fall outside it. Compiling is printed as the seconds to step N against
eager's.

    python -m benchmarks.bench_runtime [--device cpu] [--method johnson] [--steps 10] [--fp16]

fp16 is measured on CUDA, and on the CPU only with --fp16: without AVX-512 FP16 the CPU
emulates it, tens of times slower than fp32.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import cpu_line


def photos(folder: Path, n: int, side: int) -> Path:
    from nst.images import save_image

    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        save_image(torch.rand(1, 3, side, side, generator=gen), folder / f"p{i}.png")
    return folder


def config(method: str, data: Path, styles: Path, **values: Any) -> Any:
    """A training config of `method` with random weights, no checkpoints, samples or logs
    between its ends (values: size, steps, batch_size, device, dtype, compile, workers)."""
    from nst.models.registry import get_method
    from nst.train.config import TrainConfig

    entry = get_method(method)
    base: dict[str, Any] = {
        "method": method,
        "data": str(data),
        "weights": "random",
        "checkpoint_every": 0,
        "sample_every": 0,
        "val_images": 0,
    }
    if entry.takes_style or entry.style_bank:
        base["styles"] = str(styles)
    else:
        base["style"] = str(styles / "p0.png")
    if "encoder_weights" in entry.fields:
        base["encoder_weights"] = "random"
    base.update(values)
    base["log_every"] = base["steps"]
    return TrainConfig.from_dict(base)


class Clock:
    """Training hooks (nst.train.loop.TrainHooks) that note when each loss row arrives."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}

    def on_log(self, rows: list[dict[str, float]]) -> None:
        self.times[int(rows[-1]["step"])] = time.perf_counter()

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_sample(self, step: int, images: torch.Tensor) -> None: ...
    def on_checkpoint(self, step: int, path: Path) -> None: ...
    def on_end(self, result: Any) -> None: ...


def steady(cfg: Any, out: Path) -> tuple[float, float]:
    """(images/s of steps N+1..3N, seconds to step N) of one run of 3N steps, N = cfg.steps:
    the loop logs at N, 2N and 3N, so compiling and starting the workers fall before N."""
    from nst.train import train

    n = cfg.steps
    clock = Clock()
    t0 = time.perf_counter()
    train(cfg.replace(steps=3 * n, log_every=n), out, progress=False, hooks=clock)
    rate = 2 * n * cfg.batch_size / (clock.times[3 * n] - clock.times[n])
    return rate, clock.times[n] - t0


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--method", default="johnson")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="N: runs of N and 3N steps")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fp16", action="store_true", help="fp16 on the CPU too (slow: emulated)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    print(cpu_line(), flush=True)
    if args.device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name(torch.device(args.device))}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_runtime_"))
    # a cold compile, as a new machine's first run has (the cache would hide its cost)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp / "inductor")
    data = photos(tmp / "photos", 8, args.size + 16)
    styles = photos(tmp / "styles", 3, args.size + 16)
    common = {"size": args.size, "steps": args.steps, "batch_size": 4, "device": args.device}
    print(
        f"{args.method} at {args.size} px, batch 4, on {args.device}: img/s of steps "
        f"{args.steps + 1}-{3 * args.steps} of {3 * args.steps}"
    )
    base, base_s = steady(config(args.method, data, styles, **common), tmp / "eager")
    print(f"  eager fp32, loading in the loop   {base:8.1f} img/s  (baseline)", flush=True)
    variants = {
        "compiled": {"compile": True},
        f"{args.workers} DataLoader workers": {"workers": args.workers},
        "bf16 autocast": {"dtype": "bfloat16"},
    }
    if args.device.startswith("cuda") or args.fp16:  # emulated on most CPUs: minutes a step
        variants["fp16 autocast + GradScaler"] = {"dtype": "float16"}
    for name, change in variants.items():
        rate, first = steady(config(args.method, data, styles, **common, **change), tmp / name)
        extra = (
            f"; to step {args.steps} {first - base_s:+.1f} s against eager"
            if "compile" in change
            else ""
        )
        print(f"  {name:32s} {rate:8.1f} img/s  {rate / base:5.2f}x{extra}", flush=True)


if __name__ == "__main__":
    main()
