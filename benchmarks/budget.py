"""The `full` profile's budget on paper: every method's work in experiments/methods.yaml's full
profile, times its cost per unit measured here on the CPU, divided by an assumed GPU speed-up.
An estimate until benchmarks/gpu_check.sh measures the GPU itself.

Units of work, from the spec (nst.methods.spec.load_plan(..., "full")):

    gatys      pairs x steps             L-BFGS steps at `size` px (its own config)
    strotss    pairs x steps x sum_k 4^-k   one step at `size` px, the coarser scales a
                                         quarter of the pixels each
    trained    steps x batch (x styles for a network per style: johnson)  images at train_size

Costs are measured now, float32, random weights (speed does not depend on them): 2 steps
after 1 warm-up of each (a step of batch 1 for the trained methods). The speed-up of an
H200-class GPU in bf16 over this 2-core CPU in float32 is not measured here: GPU_SPEEDUP is the
ratio of effective rates, ~300 TFLOPS (30 % of the H200's 989 dense bf16 TFLOPS, usual for
these convolution networks) over ~0.3 TFLOPS (what 2 AVX-512 cores sustain in float32: johnson
at 256 px here, ~180 GFLOP per training image in 0.6 s); the hours are printed at 1000x with
the range 500x-2000x. A cross-check: Johnson et al. 2016 trained 40k steps of batch 4 in
"roughly 4 hours" on a GTX Titan X (11 images/s, 6.6 fp32 TFLOPS); 1000x this CPU is ~150x
that, the ratio of the two chips' peak rates.

    python -m benchmarks.budget [--spec experiments/methods.yaml] [--profile full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import cpu_line

GPU_SPEEDUP, GPU_RANGE = 1000.0, (500.0, 2000.0)
STEPS = 2  # timed, after one warm-up


def timed(run: Any) -> float:
    """Seconds per call of `run`, after a warm-up."""
    run()
    t0 = time.perf_counter()
    for _ in range(STEPS):
        run()
    return (time.perf_counter() - t0) / STEPS


def optimisation_cost(method: str, config: dict[str, Any], size: int) -> float:
    """Seconds of one step at `size` px (strotss: its finest scale alone)."""
    from nst.config import StrotssConfig, TransferConfig
    from nst.models.registry import get_method

    content, style = torch.rand(1, 3, size, size), torch.rand(1, 3, size, size)
    base = {**config, "size": size, "device": "cpu", "weights": "random", "steps": 1}
    if method == "strotss":
        cfg: Any = StrotssConfig.from_dict({**base, "scales": 1})
    else:
        cfg = TransferConfig.from_dict(base)
    run = get_method(method).runner()
    return timed(lambda: run(cfg, content, style))


def training_cost(method: str, config: dict[str, Any], size: int) -> float:
    """Seconds of one training image (a step of batch 1) at `size` px crops."""
    from nst.images import save_image
    from nst.models import get_model
    from nst.train.config import TrainConfig
    from nst.train.losses import LOSSES

    folder = Path(tempfile.mkdtemp(prefix="budget_"))  # two styles: a bank's, cin
    for name in ("a.png", "b.png"):
        save_image(torch.rand(1, 3, size, size), folder / name)
    cfg = TrainConfig.from_dict(
        {**config, "method": method, "size": size, "batch_size": 1, "device": "cpu"}
        | {"weights": "random", "styles": str(folder)}
    )
    net = get_model(method, **cfg.build_options)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    content = torch.rand(1, 3, size, size)
    style = torch.rand(1, 3, size, size)
    if cfg.takes_style:
        loss = LOSSES.get(cfg.entry.loss).build(cfg, net, torch.device("cpu"), None)
    else:  # a style bank costs what one style does: its selected style's perceptual loss
        loss = LOSSES.get("perceptual").build(cfg, net, torch.device("cpu"), style)

    def step() -> None:
        _, terms = loss(net, content, style if cfg.takes_style else None)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()

    return timed(step)


def main(argv: list[str] | None = None) -> None:
    from nst.methods.spec import load_plan

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", default="experiments/methods.yaml")
    p.add_argument("--profile", default="full")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    plan = load_plan(args.spec, args.profile)
    print(cpu_line())
    pairs = plan.contents * plan.styles
    print(
        f"{args.profile} profile: {plan.contents} photos x {plan.styles} styles = {pairs} pairs "
        f"at {plan.size} px; networks on {plan.crop} px crops; GPU speed-up assumed "
        f"{GPU_SPEEDUP:g}x ({GPU_RANGE[0]:g}-{GPU_RANGE[1]:g}x)"
    )
    print(f"  {'method':8s} {'work':>28s} {'CPU s/unit':>11s} {'CPU h':>9s} {'GPU h (range)':>20s}")
    total, low, high = 0.0, 0.0, 0.0
    for m in plan.methods:
        if m.name in plan.left_out:
            print(f"  {m.name:8s} left out: {plan.left_out[m.name][:70]}")
            continue
        if m.trained:
            images = int(m.config["steps"]) * int(m.config.get("batch_size", 4))
            per_style = not (m.entry.takes_style or m.entry.style_bank)
            units = images * (plan.styles if per_style else 1)
            work = f"{units:,} images" + (f" ({plan.styles} nets)" if per_style else "")
            cost = training_cost(m.method, m.config, plan.crop)
        else:
            steps = int(m.config["steps"])
            scales = int(m.config.get("scales", 1))
            units = int(pairs * steps * sum(4.0**-k for k in range(scales)))
            work = f"{units:,} steps at {plan.size} px"
            cost = optimisation_cost(m.method, m.config, plan.size)
        hours = units * cost / 3600
        gpu = hours / GPU_SPEEDUP
        total, low, high = total + gpu, low + hours / GPU_RANGE[1], high + hours / GPU_RANGE[0]
        lo, hi = hours / GPU_RANGE[1], hours / GPU_RANGE[0]
        print(f"  {m.name:8s} {work:>28s} {cost:11.2f} {hours:9.0f} {gpu:7.1f} ({lo:.1f}-{hi:.1f})")
    print(f"  total GPU hours (estimate): {total:.1f} ({low:.1f}-{high:.1f})")


if __name__ == "__main__":
    main()
