"""The GPU check (benchmarks/gpu_check.sh runs it, then `pytest -m gpu`): the CUDA paths timed
and measured in one short script, every figure a ratio against its baseline beside it.

    gatys       s/step at --size px per backbone, float32 against bfloat16 autocast (Adam;
                setup excluded: the time of 1 + N steps minus that of 1)
    train       each trained method's images/s and peak memory (the CUDA peak allocated on
                a GPU: nst.runtime.peak_memory_mb) over --train-steps steps of batch 4 at
                --train-size px, float32 against bfloat16 and (on CUDA) float16 with its
                GradScaler
    options     johnson's steady images/s (benchmarks.bench_runtime: runs of N and 3N steps,
                N = a quarter of --train-steps) compiled, with 4 DataLoader workers, and in
                deterministic mode, each against eager fp32 loading in the loop
    apply       johnson (width 32) at --apply-sizes px: ms per image and peak memory
    ddp         `torchrun --nproc-per-node 1 -m nst train` (NCCL on CUDA, gloo on the CPU):
                its images/s against the same training in one plain process

Random weights everywhere (speed and memory do not depend on them). Without CUDA it runs on the
CPU at the sizes given (`--quick`: tiny ones), which checks the script itself, not a GPU.

    python -m benchmarks.gpu_check [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_runtime import config, photos, steady
from benchmarks.common import cpu_line

BACKBONES = ("vgg19", "vgg16", "efficientnet_lite0", "deit_small")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"gpu: {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
    return cpu_line()


def gatys_step(backbone: str, dtype: str, size: int, steps: int, device: str) -> float:
    """Seconds per Adam step of gatys (module docstring)."""
    from nst.config import TransferConfig
    from nst.optimize import stylize
    from nst.perceptual import loss_backbone

    content, style = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    base = {"backbone": backbone, "weights": "random", "size": size, "optimizer": "adam"}
    config = TransferConfig.from_dict({**base, "dtype": dtype, "device": device})
    net = loss_backbone(config)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        stylize(config.replace(steps=n), content, style, backbone=net)
        sync(torch.device(config.device))
        return time.perf_counter() - t0

    run(1)  # warm-up: kernels chosen, caches filled
    return (run(1 + steps) - run(1)) / steps


def train_config(method: str, data: Path, styles: Path, args: argparse.Namespace) -> Any:
    return config(
        method,
        data,
        styles,
        size=args.train_size,
        batch_size=4,
        steps=args.train_steps,
        device=args.device,
    )


#: johnson's runtime options measured against eager fp32 (nst.train.loop)
OPTIONS: dict[str, dict[str, Any]] = {
    "compiled": {"compile": True},
    "4 DataLoader workers": {"workers": 4},
    "deterministic": {"deterministic": True},
}


def train_run(config: Any, out: Path) -> tuple[float, float]:
    """(images/s, peak MiB) of a training run in this process."""
    from nst.train import train

    result = train(config, out, progress=False)
    return result.images_per_second, result.peak_memory_mb


def apply_run(size: int, device: torch.device) -> tuple[float, float]:
    """(ms per image, peak MiB) of johnson width 32 on one size x size image."""
    from nst.models import get_model
    from nst.models.apply import apply_network
    from nst.runtime import peak_memory_mb

    net = get_model("johnson", width=32).eval().to(device)
    image = torch.rand(1, 3, size, size)
    apply_network(net, [image])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    apply_network(net, [image])
    sync(device)
    return 1000 * (time.perf_counter() - t0), peak_memory_mb(device)


def ddp_run(config: Any, out: Path) -> float:
    """images/s of `nst train` under torchrun with one process (from its final line)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "-m", "nst"]
    argv = ["train", "--method", config.method, "--data", config.data, "--out", str(out)]
    argv += ["--style", config.style, "--size", str(config.size), "--batch-size", "4"]
    argv += ["--steps", str(config.steps), "--device", config.device, "--weights", "random"]
    argv += ["--checkpoint-every", "0", "--sample-every", "0", "--val-images", "0", "--no-track"]
    done = subprocess.run([*cmd, *argv], capture_output=True, text=True, check=False)
    found = re.search(r"([0-9.]+) img/s", done.stderr + done.stdout)
    if done.returncode != 0 or found is None:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        raise SystemExit(f"torchrun failed ({done.returncode}): {tail}")
    return float(found.group(1))


def main(argv: list[str] | None = None) -> None:
    from nst.models import list_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--size", type=int, default=512, help="gatys image side, px")
    p.add_argument("--steps", type=int, default=20, help="gatys steps timed")
    p.add_argument("--train-size", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=200)
    p.add_argument("--apply-sizes", default="1024,2048")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the script itself")
    args = p.parse_args(argv)
    if args.quick:
        args.size, args.steps, args.train_size, args.train_steps = 64, 2, 64, 2
        args.apply_sizes = "128,256"
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    print(device_line(device), flush=True)
    print(f"gatys {args.size} px, Adam, s/step ({args.steps} steps, setup excluded)")
    for backbone in BACKBONES:
        s32 = gatys_step(backbone, "float32", args.size, args.steps, args.device)
        s16 = gatys_step(backbone, "bfloat16", args.size, args.steps, args.device)
        print(
            f"  {backbone:20s} fp32 {s32:8.4f}  bf16 {s16:8.4f}  bf16/fp32 time {s16 / s32:.2f}",
            flush=True,
        )
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    data = photos(tmp / "photos", 8, args.train_size + 16)
    styles = photos(tmp / "styles", 3, args.train_size + 16)
    print(f"train {args.train_steps} steps of batch 4 at {args.train_size} px: img/s, peak MiB")
    rows: dict[str, Any] = {}
    for method in list_models():
        cfg = train_config(method, data, styles, args)
        fp32 = train_run(cfg, tmp / f"{method}-fp32")
        bf16 = train_run(cfg.replace(dtype="bfloat16"), tmp / f"{method}-bf16")
        half = "fp16 (CUDA only: emulated on most CPUs, tens of times slower)"
        if device.type == "cuda":
            fp16 = train_run(cfg.replace(dtype="float16"), tmp / f"{method}-fp16")
            half = (
                f"fp16 {fp16[0]:8.1f} img/s {fp16[1]:8.0f} MiB   fp16/fp32 {fp16[0] / fp32[0]:.2f}"
            )
        rows[method] = {"fp32": fp32, "bf16": bf16}
        print(
            f"  {method:8s} fp32 {fp32[0]:8.1f} img/s {fp32[1]:8.0f} MiB   bf16 {bf16[0]:8.1f} "
            f"img/s {bf16[1]:8.0f} MiB   bf16/fp32 speed {bf16[0] / fp32[0]:.2f}   {half}",
            flush=True,
        )
    quarter = train_config("johnson", data, styles, args).replace(
        steps=max(1, args.train_steps // 4)
    )
    print(f"options, johnson: img/s of steps {quarter.steps + 1}-{3 * quarter.steps}")
    base, _ = steady(quarter, tmp / "eager")
    print(f"  eager fp32, loading in the loop {base:8.1f} img/s  (baseline)", flush=True)
    for name, change in OPTIONS.items():
        rate, first = steady(quarter.replace(**change), tmp / name)
        print(
            f"  {name:31s} {rate:8.1f} img/s  {rate / base:.2f}x  (to step N {first:.1f} s)",
            flush=True,
        )
    print("apply johnson (width 32), one image: ms, peak MiB")
    for size in (int(s) for s in args.apply_sizes.split(",")):
        ms, mib = apply_run(size, device)
        print(f"  {size:5d} px  {ms:9.1f} ms  {mib:8.0f} MiB", flush=True)
    ddp = ddp_run(train_config("johnson", data, styles, args), tmp / "ddp")
    plain = rows["johnson"]["fp32"][0]
    backend = "nccl" if device.type == "cuda" else "gloo"
    print(
        f"ddp johnson, torchrun world size 1 ({backend}): {ddp:.1f} img/s against "
        f"{plain:.1f} in one plain process ({ddp / plain:.2f}x)"
    )


if __name__ == "__main__":
    main()
