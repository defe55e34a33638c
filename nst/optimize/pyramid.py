"""Coarse-to-fine transfer: an image pyramid of sizes s_1 < s_2 < ... < s_K.

Stage k runs `stylize` at long side s_k, starting from the previous stage's result upsampled
to s_k (stage 1 starts from config.init). Most of the structure is settled at the small sizes,
where a step costs ~(s_1/s_K)^2 of a full-size step, and the last stage only refines details;
this is how high-resolution results are made on small memory and in less time (see
benchmarks/bench_pyramid.py). The output has the last stage's size; config.size is not used.

Steps per stage: config.pyramid_steps (one per stage) or config.steps for every stage. The
result's history and frames are the stages' concatenated; callbacks see one running step count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.optimize.loop import Callback, Result, Step, stylize_stage
from nst.perceptual import loss_backbone


def stage_configs(config: TransferConfig) -> list[TransferConfig]:
    """One plain (pyramid-free) config per stage: size s_k and that stage's steps."""
    steps = config.pyramid_steps or (config.steps,) * len(config.pyramid)
    return [
        config.replace(size=size, steps=n, pyramid=(), pyramid_steps=())
        for size, n in zip(config.pyramid, steps, strict=True)
    ]


def total_steps(config: TransferConfig) -> int:
    """Optimisation steps of one pair: a pyramid's stages run one after another."""
    if not config.pyramid:
        return config.steps
    return sum(stage.steps for stage in stage_configs(config))


def stylize_pyramid(
    config: TransferConfig,
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    callbacks: Sequence[Callback] = (),
    backbone: Backbone | None = None,
    init: torch.Tensor | None = None,
) -> Result:
    """Run `stylize_stage` once per size in config.pyramid, each stage initialised from the last."""
    backbone = backbone if backbone is not None else loss_backbone(config)
    offset, elapsed, stop = 0, 0.0, False

    def shifted(cb: Callback) -> Callback:
        # callbacks (progress bars, trackers) see steps 1..sum(steps), not a restart per stage
        def call(step: Step) -> bool | None:
            nonlocal stop
            wanted = bool(
                cb(Step(step.step + offset, step.losses, step.image, step.seconds + elapsed))
            )
            stop = stop or wanted
            return wanted

        return call

    stages: list[Result] = []
    for stage in stage_configs(config):
        result = stylize_stage(
            stage, content, style, [shifted(cb) for cb in callbacks], backbone, init=init
        )
        stages.append(result)
        offset += result.steps
        elapsed += result.seconds
        init = result.image  # upsampled to the next size inside stylize
        if stop:  # a callback asked to stop (e.g. a pruned trial): stop the whole pyramid
            break
    return combine(config, stages, stopped=stop)


def combine(config: TransferConfig, stages: list[Result], stopped: bool) -> Result:
    """One Result for the whole pyramid: last image, concatenated history and frames, summed times."""
    last = stages[-1]
    history = {k: [v for r in stages for v in r.history[k]] for k in last.history}
    steps = sum(r.steps for r in stages)
    loop = sum(r.timings.get("loop_s", 0.0) for r in stages)
    timings: dict[str, float] = {
        "setup_s": sum(r.timings.get("setup_s", 0.0) for r in stages),
        "loop_s": loop,
    }
    for i, r in enumerate(stages):
        timings[f"stage{i}_s"] = r.seconds
    # a stage counts its own steps from 1: its frames' steps follow the stages before it
    starts = [sum(r.steps for r in stages[:i]) for i in range(len(stages))]
    return replace(
        last,
        history=history,
        steps=steps,
        seconds=sum(r.seconds for r in stages),
        seconds_per_step=loop / max(steps, 1),
        peak_memory_mb=max(r.peak_memory_mb for r in stages),
        stopped_early=stopped,
        config=config,
        timings=timings,
        frames=[f for r in stages for f in r.frames],
        frame_steps=[
            start + s for r, start in zip(stages, starts, strict=True) for s in r.frame_steps
        ],
    )
