"""Start-up of the CLI before and after the layout change, side by side in one run.

    python -m benchmarks.bench_startup [--before REV] [--repeats 5] [--suite]

`before` is a git revision of this repository (default: the last commit before the layout
change), checked out into a temporary worktree and imported from there with this
environment's packages. Each arm runs `nst --help` and `nst transfer --help` in a fresh
interpreter, alternating arms; wall time is the median, peak RSS the child's maximum
resident set (os.wait4). `--suite` also times the fast test suite (`pytest -q`) of both trees.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nst.provenance import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "329bdf7"  # the last commit with the flat nst/ of 38 modules
ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1"}


def cpu() -> str:
    """The CPU as every benchmark line should name it: cores, vector width, bf16.

    Not benchmarks.common.cpu_line: that imports torch, and a child's peak RSS (os.wait4)
    starts from its parent's RSS at fork, so a torch-importing parent would inflate every
    measured `nst --help` to ~500 MB."""
    flags = cpu_flags()
    vector = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    bf16 = "native bf16" if flags & {"avx512_bf16", "amx_bf16"} else "bf16 emulated"
    return f"{platform.machine()}, {os.cpu_count()} cores, {vector}, {bf16}"


def run(tree: Path, argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `python -c 'nst.cli.main(argv)'` importing nst from tree."""
    code = f"import sys; from nst.cli import main; sys.exit(main({argv!r}))"
    env = {**os.environ, **ENV, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: nst {' '.join(argv)} failed")
    return wall, usage.ru_maxrss / 1024


#: s/step of the optimisation loop, in a fresh interpreter importing nst from the tree: the move
#: must not slow the loop (old layout: nst.transfer, new: nst.optimize)
LOOP = """
import time, torch
try:
    from nst.optimize import stylize
except ImportError:
    from nst.transfer import stylize
from nst.config import TransferConfig
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
content, style = torch.rand(1, 3, 128, 128, generator=g), torch.rand(1, 3, 128, 128, generator=g)
config = TransferConfig(size=128, steps=25, weights="random", seed=0)
stylize(config.replace(steps=2), content, style)
print(stylize(config, content, style).seconds_per_step)
"""


def loop(tree: Path) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOOP],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.strip().splitlines()[-1])


def suite(tree: Path) -> float:
    env = {**os.environ, **ENV, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tree,
        env=env,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default=BEFORE, help="git revision of the baseline")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--suite", action="store_true", help="also time the fast test suites")
    p.add_argument("--loop", action="store_true", help="also time the loop (s/step, 128 px)")
    args = p.parse_args(argv)
    print(f"CPU: {cpu()}; python {platform.python_version()}")
    # beside this checkout, so the baseline's tests find ../shared/data as ours do
    before = ROOT.parent / f".nst-bench-before-{args.before}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
        check=True,
        capture_output=True,
    )
    try:
        arms = {f"before ({args.before})": before, "after (this tree)": ROOT}
        for cmd in (["--help"], ["transfer", "--help"]):
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in arms}
            for _ in range(args.repeats):
                for name, tree in arms.items():
                    results[name].append(run(tree, cmd))
            wall = {k: statistics.median(w for w, _ in v) for k, v in results.items()}
            rss = {k: max(r for _, r in v) for k, v in results.items()}
            b, a = arms
            print(
                f"nst {' '.join(cmd):16} "
                + " | ".join(f"{k}: {wall[k]:.2f} s, {rss[k]:.0f} MB" for k in arms)
                + f" | speed-up {wall[b] / wall[a]:.1f}x, memory {rss[b] / rss[a]:.1f}x less"
            )
        if args.loop:
            per_step: dict[str, list[float]] = {k: [] for k in arms}
            for _ in range(args.repeats):
                for name, tree in arms.items():
                    per_step[name].append(loop(tree))
            med = {k: statistics.median(v) for k, v in per_step.items()}
            b, a = arms
            print(
                "stylize 128 px    "
                + " | ".join(f"{k}: {v * 1e3:.1f} ms/step" for k, v in med.items())
                + f" | ratio {med[a] / med[b]:.3f} (1 thread, median of {args.repeats})"
            )
        if args.suite:
            times = {k: suite(tree) for k, tree in arms.items()}
            b, a = arms
            print(
                "fast suite        "
                + " | ".join(f"{k}: {v:.0f} s" for k, v in times.items())
                + f" | ratio {times[a] / times[b]:.2f}"
            )
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)],
            check=False,
            capture_output=True,
        )


if __name__ == "__main__":
    main()
