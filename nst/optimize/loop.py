"""`stylize_stage`: the one optimisation loop of the harness (Gatys, Ecker & Bethge, 2016).

The image x is optimised to minimise alpha * L_content(x) + beta * L_style(x) + gamma * L_tv(x),
where the content and style terms compare features of a frozen backbone (see nst.losses).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nst.backbones import Backbone, WeightsInfo
from nst.config import TransferConfig
from nst.images import fit_size, resize_tensor
from nst.optimize.controls.blend import as_styles
from nst.optimize.controls.color import ColorControl
from nst.optimize.controls.frames import FrameCapture
from nst.optimize.controls.gradnorm import normalized_backward
from nst.optimize.controls.masks import blend, load_mask, mask_gradient
from nst.optimize.loss import TransferLoss, initial_image
from nst.optimize.optim import ReusedEvaluation
from nst.optimizers import make_optimizer, make_schedule
from nst.perceptual import loss_backbone
from nst.runtime import DTYPES, NonFiniteLoss, peak_memory_mb, placed, resolve_device


@dataclass(frozen=True)
class Step:
    """What a callback sees after each optimisation step."""

    step: int  # 1-based
    losses: dict[str, float]  # content, style, tv, total
    image: torch.Tensor  # the current image; read it, do not modify it
    seconds: float  # wall time since the loop started


#: A callback may return True to stop the run early (or raise, e.g. optuna.TrialPruned).
Callback = Callable[[Step], bool | None]


@dataclass
class Result:
    image: torch.Tensor  # 1x3xHxW in [0, 1], on the CPU, float32
    history: dict[str, list[float]]  # per step: content, style, tv, total
    steps: int
    seconds: float
    seconds_per_step: float
    peak_memory_mb: float
    weights: WeightsInfo
    stopped_early: bool
    config: Any  # the method's config: TransferConfig (gatys), StrotssConfig (strotss)
    timings: dict[str, float] = field(default_factory=dict)
    frames: list[torch.Tensor] = field(default_factory=list)  # every config.frame_every steps
    frame_steps: list[int] = field(default_factory=list)  # the step of each frame

    @property
    def final_losses(self) -> dict[str, float]:
        return {k: v[-1] for k, v in self.history.items()}


def stylize_stage(
    config: TransferConfig,
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    callbacks: Sequence[Callback] = (),
    backbone: Backbone | None = None,
    init: torch.Tensor | None = None,
) -> Result:
    """Optimise an image that has `content`'s content and `style`'s style.

    content, style: 1x3xHxW tensors in [0, 1] (any size; resized to config.size here); style
    may be several tensors, mixed by config.style_blend.
    backbone: pass one to reuse it across runs; built from the config otherwise.
    init: start from this image (resized to the content) instead of config.init.
    One stage at one size: config.pyramid must be empty (nst.optimize.transfer.stylize runs a
    pyramid's stages through this).
    """
    if config.pyramid:
        raise ValueError("stylize_stage runs one size; use nst.optimize.stylize for a pyramid")
    t0 = time.perf_counter()
    device, dtype = resolve_device(config.device), DTYPES[config.dtype]
    # no torch.manual_seed here: every draw (init noise, jitter, random weights) has its own
    # seeded generator, so a run neither depends on nor disturbs the caller's global RNG
    backbone = backbone if backbone is not None else loss_backbone(config)
    layers = list(config.content_layers) + list(config.style_layers)
    backbone.check_layers(layers)
    backbone = placed(backbone, device, dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    content = fit_size(content, config.size, backbone.size_multiple).to(device)
    backbone.check_input(content, layers, f"the content image resized to long side {config.size}")
    style_size = max(1, round(config.style_scale * config.size))
    styles = [fit_size(s, style_size, backbone.size_multiple).to(device) for s in as_styles(style)]
    for i, s in enumerate(styles):
        backbone.check_input(s, layers, f"style image {i + 1} resized to long side {style_size}")
    # colour preservation (nst.optimize.controls.color): what the optimiser sees, and what the user gets
    color = ColorControl(config.color, content)
    styles = [color.style_image(s) for s in styles]
    objective = TransferLoss(backbone, config, color.content_image(), styles, dtype)
    start = initial_image(config, content, styles[0]) if init is None else init.to(device)
    height, width = content.shape[-2:]
    # contiguous: torch's L-BFGS flattens the pixels' gradient with view(-1)
    x = color.init_image(resize_tensor(start, (height, width))).contiguous().requires_grad_(True)
    mask = load_mask(config.mask, tuple(content.shape[-2:])).to(device) if config.mask else None  # type: ignore[arg-type]
    # nst.optimize.controls.masks: only white pixels move, and the output is blended
    if mask is not None:
        mask_gradient(x, mask)

    def finish(image: torch.Tensor) -> torch.Tensor:
        out = color.finish(image)
        return blend(out, content, mask) if mask is not None else out

    capture = FrameCapture(config.frame_every, finish) if config.frame_every > 0 else None
    callbacks = [*callbacks, capture] if capture is not None else callbacks
    optimizer = make_optimizer(config, [x])
    schedule = make_schedule(config, optimizer)
    setup_seconds = time.perf_counter() - t0

    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}
    last: dict[str, torch.Tensor] = {}
    lbfgs = config.optimizer == "lbfgs"
    # torch's L-BFGS evaluates the loss at the start of every step() call, i.e. at the point
    # its last line search just evaluated and accepted: a cache of that evaluation saves one
    # forward/backward per step. Only valid while the objective is fixed (no jitter).
    reuse = ReusedEvaluation() if lbfgs and config.jitter == 0 else None
    # L-BFGS is not invariant to the loss's scale: torch's implementation skips curvature
    # pairs with y's <= 1e-10, which at NST's loss scale (~1e-3 with normalised Grams) is
    # every pair, leaving gradient descent with step 1 that barely moves. So L-BFGS minimises
    # L(x) / L(x_0), which has the same minimiser; history and callbacks see L itself.
    scale: float | None = None  # L-BFGS: 1 / L(x_0), set at its first evaluation

    def closure() -> torch.Tensor:
        nonlocal scale
        cached = reuse.lookup(x) if reuse is not None else None
        if cached is not None:
            if not last:
                last.update(cached[0])
            return cached[1]
        optimizer.zero_grad(set_to_none=True)
        terms = objective(x)
        # each term's gradient scaled to unit L1 norm (nst.optimize.controls.gradnorm)
        if config.normalize_gradients:
            normalized_backward(
                terms, {"content": config.alpha, "style": config.beta, "tv": config.gamma}, x
            )
        else:
            terms["total"].backward()
        if lbfgs and scale is None:
            scale = 1.0 / max(abs(float(terms["total"].detach())), 1e-30)
        if scale is not None and x.grad is not None:
            x.grad.mul_(scale)
        value = terms["total"].detach() * (scale or 1.0)
        # the first evaluation of a step is at the current image (a line search evaluates
        # trial points after it), so a step's losses are those of the image it started from
        if not last:
            last.update(terms)
        if reuse is not None:
            reuse.store(x, terms, value)
        return value

    # First-order optimisers take projected steps (clamped to [0, 1]); L-BFGS stays
    # unconstrained as in Gatys et al., because clamping would corrupt its curvature pairs.
    project = config.optimizer != "lbfgs"
    stopped, step = False, 0
    t1 = time.perf_counter()
    for step in range(1, config.steps + 1):
        last.clear()
        objective.next_step()
        optimizer.step(closure)  # type: ignore[arg-type]
        if schedule is not None:
            schedule.step()
        if project:
            with torch.no_grad():
                x.clamp_(0, 1)
        elif optimizer.state[x].get("t") == 0:
            # the line search found no decrease: drop the curvature history and restart
            optimizer = make_optimizer(config, [x])
        losses = {k: float(v.detach()) for k, v in last.items()}
        if not all(map(_finite, losses.values())):
            raise NonFiniteLoss(
                f"loss became {losses['total']} at step {step}; lower the lr or the weights"
            )
        for k, v in losses.items():
            history[k].append(v)
        info = Step(step, losses, x.detach(), time.perf_counter() - t1)
        if any([bool(cb(info)) for cb in callbacks]) or _converged(
            history["total"], config.stop_rtol
        ):
            stopped = step < config.steps
            break
    loop_seconds = time.perf_counter() - t1
    return Result(
        image=finish(x.detach().float().clamp(0, 1)).cpu(),
        history=history,
        steps=step,
        seconds=time.perf_counter() - t0,
        seconds_per_step=loop_seconds / max(step, 1),
        peak_memory_mb=peak_memory_mb(device),
        weights=backbone.weights_info,
        stopped_early=stopped,
        config=config,
        timings={"setup_s": setup_seconds, "loop_s": loop_seconds},
        frames=capture.frames if capture is not None else [],
        frame_steps=capture.steps if capture is not None else [],
    )


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def _converged(totals: list[float], rtol: float, window: int = 10) -> bool:
    if rtol <= 0 or len(totals) <= window:
        return False
    before, now = totals[-window - 1], totals[-1]
    return (before - now) <= rtol * abs(before)
