"""Seconds per step and peak memory of each style loss against gram, and of a STROTSS step.

Arms, each Gatys's image optimisation (Adam, from the content image) on one backbone with one
loss changed: gram (the baseline), moments, sliced_wasserstein (32 projections), relaxed_emd
(1024 positions), the self_similarity content loss (with gram), and one STROTSS step (one
scale at the same size: hypercolumns of 1024 positions against 5000 style positions, relaxed
EMD, moments, palette, self-similarity). Each arm runs in its own process, so its peak
resident memory is its own (VmHWM, benchmarks.common.rss_mb): printed as the
process's peak and as the increase over its resident memory before the run (imports, the
backbone and the images loaded: what the run itself adds). Arms are
interleaved over the repeats (medians printed), ratios are to gram at the same size.

    python -m benchmarks.bench_style_losses [--sizes 256,512] [--steps 10] [--repeats 2]
        [--backbone efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import warnings

from benchmarks.common import benchmark_pair, cpu_line, current_rss_mb, rss_mb

ARMS = {
    "gram": {"style_loss": "gram"},
    "moments": {"style_loss": "moments", "beta": 2.8e2},
    "sliced_wasserstein": {"style_loss": "sliced_wasserstein", "beta": 2.5e2},
    "relaxed_emd": {"style_loss": "relaxed_emd", "beta": 6.6e3},
    "self_similarity (content)": {"content_loss": "self_similarity"},
    "strotss step": {},
}


def one_arm(arm: str, size: int, steps: int, backbone: str) -> dict[str, float]:
    """Run one arm in this process: seconds per step of the loop, its peak RSS and the RSS
    before the run (imports, the backbone and the images loaded)."""
    warnings.filterwarnings("ignore")
    from nst.perceptual import loss_backbone

    content, style, _ = benchmark_pair()
    if arm == "strotss step":
        from nst.config import StrotssConfig
        from nst.optimize.strotss import strotss

        scfg = StrotssConfig.from_dict(
            {"backbone": backbone, "size": size, "scales": 1, "steps": steps, "device": "cpu"}
        )
        network = loss_backbone(scfg)
        before = current_rss_mb()
        result = strotss(scfg, content, style, backbone=network)
    else:
        from nst.config import TransferConfig
        from nst.optimize import stylize

        cfg = TransferConfig.from_dict(
            {
                "backbone": backbone,
                "size": size,
                "steps": steps,
                "optimizer": "adam",
                "init": "content",
                "beta": 1.0e4,
                "gamma": 0.0,
                "device": "cpu",
                **ARMS[arm],
            }
        )
        network = loss_backbone(cfg)
        before = current_rss_mb()
        result = stylize(cfg, content, style, backbone=network)
    return {"s_per_step": result.seconds_per_step, "peak_mb": rss_mb(), "before_mb": before}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--arm", help=argparse.SUPPRESS)  # the child process: one arm, JSON out
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.arm:
        print(json.dumps(one_arm(args.arm, sizes[0], args.steps, args.backbone)))
        return
    print(cpu_line())
    print(f"pair: {benchmark_pair()[2]}; backbone {args.backbone}; {args.steps} steps per run")
    for size in sizes:
        runs: dict[str, list[dict[str, float]]] = {a: [] for a in ARMS}
        for _ in range(args.repeats):
            for arm in ARMS:
                cmd = [sys.executable, "-m", "benchmarks.bench_style_losses", "--arm", arm]
                cmd += ["--sizes", str(size), "--steps", str(args.steps)]
                cmd += ["--backbone", args.backbone]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                runs[arm].append(json.loads(out.strip().splitlines()[-1]))
        med = {a: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for a, rs in runs.items()}
        base = med["gram"]
        print(f"\n{size} px (long side), median of {args.repeats}")
        print(
            f"  {'arm':28s} {'s/step':>8s} {'x gram':>7s} {'peak MiB':>9s} {'x gram':>7s} "
            f"{'run MiB':>9s} {'x gram':>7s}"
        )
        base_step = base["peak_mb"] - base["before_mb"]
        for arm, m in med.items():
            run_mb = m["peak_mb"] - m["before_mb"]
            print(
                f"  {arm:28s} {m['s_per_step']:8.3f} {m['s_per_step'] / base['s_per_step']:7.2f} "
                f"{m['peak_mb']:9.0f} {m['peak_mb'] / base['peak_mb']:7.2f} "
                f"{run_mb:9.0f} {run_mb / max(base_step, 1.0):7.2f}"
            )
    print(
        "\npeak MiB: the process's peak resident memory; run MiB: its increase over the memory"
        " before the run (targets, features, graph, loss temporaries)"
    )


if __name__ == "__main__":
    main()
