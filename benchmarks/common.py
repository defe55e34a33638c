"""Helpers shared by the benchmarks: the benchmark pair and a side-by-side timer."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from nst.images import load_image, to_tensor
from nst.provenance import bf16_support, cpu_flags

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def benchmark_pair() -> tuple[torch.Tensor, torch.Tensor, str]:
    """Tübingen and The Starry Night from ../shared/data, or scikit-image's demo pair."""
    content, style = SHARED / "content" / "tubingen.jpg", SHARED / "style" / "starry_night.jpg"
    if content.exists() and style.exists():
        return load_image(content), load_image(style), "tubingen x starry_night"
    from nst.cli.demo import demo_pair

    c, s = demo_pair()
    return to_tensor(c), to_tensor(s), "astronaut x brick (scikit-image)"


def cpu_line() -> str:
    """The CPU every timing line was measured on: cores, threads, vector width, bf16 capability
    (nst.provenance), and the load when the run started (the machine may be shared)."""
    flags = cpu_flags()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"cpu: {platform.machine()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} "
        f"threads, {vector}, bf16 {bf16_support(torch.device('cpu'))}; load average {load:.1f} "
        "at start"
    )


def interleaved(arms: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Run each arm `repeats` times, alternating arms so drifts in machine speed hit all alike;
    each call returns seconds per step; report the median."""
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            times[name].append(arm())
    return {k: statistics.median(v) for k, v in times.items()}


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Fp32Loss:
    """The total loss of an image as the user gets it (clamped to [0, 1]) in fp32, with fixed
    targets: what "reached the baseline's loss" is judged by, whatever the arm's own dtype
    (bf16 losses are estimates) or constraints (L-BFGS runs unclamped)."""

    def __init__(self, backbone, config, content: torch.Tensor, style: torch.Tensor):  # type: ignore[no-untyped-def]
        from nst.optimize.loss import TransferLoss

        self.objective = TransferLoss(
            backbone, config.replace(dtype="float32"), content, style, torch.float32
        )

    def __call__(self, image: torch.Tensor) -> float:
        with torch.no_grad():
            return float(self.objective(image.float().clamp(0, 1))["total"])


def vm_mb(field: str) -> float:
    """VmHWM (the peak) or VmRSS (now) of this process, MiB, per address space: since it
    started. Not ru_maxrss: Linux carries that across exec, so a child of a large parent
    (subprocess forks or vforks it) would report at least the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """This process's peak resident memory so far, MiB (VmHWM)."""
    return vm_mb("VmHWM")


def current_rss_mb() -> float:
    """This process's resident memory now, MiB (VmRSS)."""
    return vm_mb("VmRSS")
