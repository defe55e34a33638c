"""`stylize`: the one optimisation loop of the harness (Gatys, Ecker & Bethge, 2016).

The image x is optimised to minimise alpha * L_content(x) + beta * L_style(x) + gamma * L_tv(x),
where the content and style terms compare features of a frozen backbone (see nst.losses).
"""

from __future__ import annotations

import copy
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from nst import NstError
from nst.artifacts import Jitter, average_shifts, roll, shift_averaged
from nst.backbones import Backbone, WeightsInfo, get_backbone
from nst.blend import as_styles, blended_grams
from nst.color import ColorControl
from nst.config import TransferConfig
from nst.frames import FrameCapture
from nst.gradnorm import normalize_layer_weights, normalized_backward
from nst.images import resize_tensor
from nst.losses import content_loss, style_layer_loss, total_variation, weighted_sum
from nst.masks import blend, load_mask, mask_gradient

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


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
    config: TransferConfig
    timings: dict[str, float] = field(default_factory=dict)
    frames: list[torch.Tensor] = field(default_factory=list)  # every config.frame_every steps

    @property
    def final_losses(self) -> dict[str, float]:
        return {k: v[-1] for k, v in self.history.items()}


def build_backbone(config: TransferConfig) -> Backbone:
    return get_backbone(
        config.backbone, weights=config.weights, pooling=config.pooling, seed=config.seed
    )


def fit_size(image: torch.Tensor, size: int, multiple: int = 1) -> torch.Tensor:
    """Resize so the long side is `size`, each side rounded to a multiple of `multiple`."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    hw = tuple(max(multiple, round(s * scale / multiple) * multiple) for s in (h, w))
    return resize_tensor(image, hw)  # type: ignore[arg-type]


class Objective:
    """The loss of a candidate image against fixed content and style targets."""

    def __init__(
        self,
        backbone: Backbone,
        config: TransferConfig,
        content: torch.Tensor,
        style: torch.Tensor | Sequence[torch.Tensor],
        dtype: torch.dtype,
    ):
        self.backbone, self.config, self.dtype = backbone, config, dtype
        self.layers = list(dict.fromkeys(config.content_layers + config.style_layers))
        # patch-grid artefact mitigation (nst.artifacts): averaged fixed shifts, per-step jitter
        self.shifts = average_shifts(config.shift_average, backbone.size_multiple)
        self.jitter, self.content = Jitter(config.jitter, config.seed), content
        self._jittered: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
        gatys = config.style_normalization == "gatys"
        with torch.no_grad():
            c = self.extract(content)
        self.content_targets = {layer: c[layer].float() for layer in config.content_layers}
        # several styles: Gram targets mixed by config.style_blend (nst.blend)
        self.style_targets = blended_grams(
            self.extract,
            as_styles(style),
            config.style_layers,
            config.style_blend,
            normalize=not gatys,
        )
        norm = config.layer_weight_normalization  # nst.gradnorm
        self.content_weights = normalize_layer_weights(
            config.content_layer_weights, [c[k].shape[1] for k in config.content_layers], norm
        )
        self.style_weights = normalize_layer_weights(
            config.style_layer_weights, [t.shape[-1] for t in self.style_targets.values()], norm
        )

    def extract(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        # features stay in the compute dtype: in bf16 mode the Gram products run in bf16 too
        # (they are a quarter of a step's time otherwise); every loss is reduced in fp32
        return shift_averaged(
            lambda z: self.backbone.features(z, self.layers), x.to(self.dtype), self.shifts
        )

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        shift = self.jitter.current
        feats = self.extract(roll(x, shift))
        gatys = cfg.style_normalization == "gatys"
        content = weighted_sum(
            {
                k: content_loss(feats[k].float(), t)
                for k, t in self.content_targets_at(shift).items()
            },
            self.content_weights,
        )
        style = weighted_sum(
            {k: style_layer_loss(feats[k], t, gatys) for k, t in self.style_targets.items()},
            self.style_weights,
        )
        tv = total_variation(x, cfg.tv) if cfg.gamma > 0 else torch.zeros((), device=x.device)
        total = cfg.alpha * content + cfg.beta * style + cfg.gamma * tv
        return {"content": content, "style": style, "tv": tv, "total": total}

    def content_targets_at(self, shift: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Content targets for an image rolled by `shift` (jitter): from the content rolled alike."""
        if shift == (0, 0):
            return self.content_targets
        if shift not in self._jittered:
            with torch.no_grad():
                c = self.extract(roll(self.content, shift))
            self._jittered[shift] = {
                layer: c[layer].float() for layer in self.config.content_layers
            }
        return self._jittered[shift]


def initial_image(
    config: TransferConfig, content: torch.Tensor, style: torch.Tensor
) -> torch.Tensor:
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    noise = torch.rand(content.shape, generator=gen).to(content.device)
    if config.init == "content":
        return content.clone()
    if config.init == "style":
        return resize_tensor(style, tuple(content.shape[-2:])).clone()  # type: ignore[arg-type]
    if config.init == "noise":
        return noise
    return config.init_blend * content + (1.0 - config.init_blend) * noise


def make_optimizer(config: TransferConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    name = config.optimizer
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # One of our steps is one L-BFGS iteration; the history persists across step() calls.
    # Its own tolerances are off: pixel gradients can be below 1e-7 while the image still
    # changes visibly, and stopping is decided by config.steps and config.stop_rtol.
    return torch.optim.LBFGS(
        params,
        lr=config.lr,
        max_iter=1,
        # torch derives the line search's evaluation budget from max_eval (default
        # max_iter * 5 // 4 = 1 here, i.e. no search at all): give it torch's max_ls of 25
        max_eval=1 + 25,
        history_size=config.lbfgs_history,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn=None if config.lbfgs_line_search == "none" else "strong_wolfe",
    )


def make_schedule(
    config: TransferConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning rate over the run: constant, or cosine from config.lr to 0 at the last step
    (Adam at a constant lr ends in a noise floor of size ~lr; decaying it settles the pixels)."""
    if config.lr_schedule == "constant" or config.optimizer == "lbfgs":
        return None  # L-BFGS: the line search sets the step length
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def stylize(
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
    With config.pyramid set, runs nst.pyramid.stylize_pyramid (which calls this per stage).
    """
    if config.pyramid:
        from nst.pyramid import stylize_pyramid  # imports this module: import here, not above

        return stylize_pyramid(config, content, style, callbacks, backbone, init=init)
    t0 = time.perf_counter()
    device, dtype = resolve_device(config.device), DTYPES[config.dtype]
    torch.manual_seed(config.seed)
    backbone = backbone if backbone is not None else build_backbone(config)
    backbone.check_layers(list(config.content_layers) + list(config.style_layers))
    if next(backbone.parameters()).dtype != dtype or next(backbone.parameters()).device != device:
        backbone = copy.deepcopy(backbone).to(device=device, dtype=dtype)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    content = fit_size(content, config.size, backbone.size_multiple).to(device)
    style_size = max(1, round(config.style_scale * config.size))
    styles = [fit_size(s, style_size, backbone.size_multiple).to(device) for s in as_styles(style)]
    # colour preservation (nst.color): what the optimiser sees, and what the user gets
    color = ColorControl(config.color, content)
    styles = [color.style_image(s) for s in styles]
    objective = Objective(backbone, config, color.content_image(), styles, dtype)
    start = initial_image(config, content, styles[0]) if init is None else init.to(device)
    x = color.init_image(resize_tensor(start, tuple(content.shape[-2:]))).requires_grad_(True)  # type: ignore[arg-type]
    mask = load_mask(config.mask, tuple(content.shape[-2:])).to(device) if config.mask else None  # type: ignore[arg-type]
    if mask is not None:  # nst.masks: only white pixels move, and the output is blended
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
        if config.normalize_gradients:  # each term's gradient scaled to unit L1 norm (nst.gradnorm)
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
        objective.jitter.next_step()
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
    )


class ReusedEvaluation:
    """The last loss evaluation (point, gradient, terms, value), returned again for the same point."""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None
        self.terms: dict[str, torch.Tensor] = {}
        self.value = torch.zeros(())

    def store(self, x: torch.Tensor, terms: dict[str, torch.Tensor], value: torch.Tensor) -> None:
        assert x.grad is not None
        self.x, self.grad = x.detach().clone(), x.grad.detach().clone()
        self.terms, self.value = {k: v.detach() for k, v in terms.items()}, value

    def lookup(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        if self.x is None or self.grad is None or not torch.equal(self.x, x.detach()):
            return None
        x.grad = self.grad.clone()
        return self.terms, self.value


class NonFiniteLoss(NstError):
    """The loss became NaN or infinite: the run diverged."""


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")


def _converged(totals: list[float], rtol: float, window: int = 10) -> bool:
    if rtol <= 0 or len(totals) <= window:
        return False
    before, now = totals[-window - 1], totals[-1]
    return (before - now) <= rtol * abs(before)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NstError(f"device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NstError(f"device {name!r}: CUDA is not available on this machine; use --device cpu")
    return device
