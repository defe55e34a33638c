"""STROTSS: style transfer by relaxed optimal transport and self-similarity (Kolkin, Salavon &
Shakhnarovich, CVPR 2019), training-free: the image is optimised, like Gatys's, with another
representation of the style and of the content.

Read from the paper and its released code (nkolkin13/STROTSS); ours is written on nst's
backbones and pure losses (nst.losses):

    scales     K sizes, each twice the last's side, ending at `size` (the paper: 64..512 px);
               the style image is resized to each scale's size too
    image      optimised as a Laplacian pyramid of `levels` bands and a residual, by RMSprop at
               lr (lr / 2 at the last scale), `steps` per scale
    start      coarsest scale: the style's mean colour plus the content's finest Laplacian
               band; each next scale: the last result upsampled, plus the content's finest band
               at that scale (not at the last)
    features   hypercolumns: the RGB pixels and every layer of `layers` (STROTSS: nine VGG16
               ReLUs, 2179 channels), bilinearly sampled at the same positions and concatenated;
               `positions` of the result (with the content's at the same places) drawn anew each
               step, `style_positions` of the style drawn once per scale
    loss       (a_k L_content + L_remd + m (L_moment + L_palette / max(a_k, 1))) / (a_k + 1 + m)
               L_content  self-similarity (nst.losses.self_similarity_loss) times P, as the
                          released code scales it (the paper's eq. 9 has 1/P^2, the code 1/P;
                          the paper's weights were set with the code)
               L_remd     relaxed EMD of the hypercolumns, cosine cost (nst.losses.relaxed_emd)
               L_moment   mean and covariance (nst.losses.mean_covariance_loss)
               L_palette  relaxed EMD of the pixels in a decorrelated colour basis, cosine plus
                          Euclidean cost: the colours, not only their directions
               a_k = 16 content_weight at the coarsest scale, halved at each next; m the
               moment weight (1)

Deliberate differences, each a simplification that keeps the method: positions are drawn
uniformly over the image (the code draws a random subset of a strided grid whose offset moves
every ten steps) and the style is sampled bilinearly like the result (the code rounds to the
nearest feature); the spatial guidance (region masks, point correspondences) is not built.
The output is clamped to [0, 1] at the end, as the code does (the optimisation itself is
unconstrained). Every draw comes from one generator seeded with the run's seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nst.backbones import Backbone
from nst.config import StrotssConfig
from nst.images import fit_size
from nst.losses import (
    cosine_cost,
    euclidean_cost,
    mean_covariance_loss,
    relaxed_emd,
    self_similarity_loss,
    total_variation,
)
from nst.optimize.loop import Callback, Result, Step
from nst.perceptual import loss_backbone
from nst.runtime import DTYPES, NonFiniteLoss, peak_memory_mb, placed, resolve_device

#: a decorrelated colour basis (the released code's RGB -> "YUV": an orthonormal rotation whose
#: first axis is the grey diagonal), where the palette term compares colours
COLOUR_BASIS = torch.tensor(
    [
        [0.577350, 0.577350, 0.577350],
        [-0.577350, 0.788675, -0.211325],
        [-0.577350, -0.211325, 0.788675],
    ]
)


def decompose(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The Laplacian pyramid of x: `levels` bands (x minus its half-size blur upsampled), finest
    first, then the residual; `compose` inverts it exactly."""
    bands = []
    for _ in range(levels):
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear")
        bands.append(x - F.interpolate(small, size=(h, w), mode="bilinear"))
        x = small
    return [*bands, x]


def compose(pyramid: Sequence[torch.Tensor]) -> torch.Tensor:
    x = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        x = band + F.interpolate(x, size=band.shape[-2:], mode="bilinear")
    return x


def hypercolumns(
    image: torch.Tensor, feats: dict[str, torch.Tensor], index: torch.Tensor
) -> torch.Tensor:
    """N x P x C: the pixels and every feature map at the pixel positions `index` (flat, into
    image's H x W), each map sampled bilinearly at the same place whatever its stride."""
    n, _, h, w = image.shape
    ys, xs = (index // w).float(), (index % w).float()
    grid = torch.stack(((2 * xs + 1) / w - 1, (2 * ys + 1) / h - 1), dim=-1)
    grid = grid.view(1, 1, -1, 2).expand(n, -1, -1, -1).to(image.device)
    cols = [
        F.grid_sample(m.float(), grid, mode="bilinear", align_corners=False)
        for m in (image, *feats.values())
    ]
    return torch.cat([c.flatten(2) for c in cols], dim=1).transpose(1, 2)


def _palette_cost(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return cosine_cost(a, b) + euclidean_cost(a, b)


def strotss_loss(
    x: torch.Tensor, c: torch.Tensor, s: torch.Tensor, alpha: float, moment_weight: float
) -> dict[str, torch.Tensor]:
    """The loss of the module docstring for hypercolumn sets x (the result), c (the content at
    the same positions) and s (the style), each N x P x C with the pixels first."""
    content = self_similarity_loss(x, c) * x.shape[1]
    remd = relaxed_emd(x, s)
    basis = COLOUR_BASIS.to(x.device)
    palette = relaxed_emd(x[..., :3] @ basis.T, s[..., :3] @ basis.T, cost=_palette_cost)
    moments = mean_covariance_loss(x, s) + palette / max(alpha, 1.0)
    style = remd + moment_weight * moments
    total = (alpha * content + style) / (alpha + 1.0 + moment_weight)
    return {"content": content, "style": style, "total": total}


def strotss(
    config: StrotssConfig,
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    callbacks: Sequence[Callback] = (),
    backbone: Backbone | None = None,
) -> Result:
    """`content` (1x3xHxW in [0, 1]) in the style of `style` (one image) by STROTSS."""
    if not isinstance(style, torch.Tensor):
        if len(style) != 1:
            raise ValueError("strotss takes one style image")
        style = style[0]
    t0 = time.perf_counter()
    device, dtype = resolve_device(config.device), DTYPES[config.dtype]
    backbone = placed(backbone if backbone is not None else loss_backbone(config), device, dtype)
    backbone.check_layers(config.layers)
    gen = torch.Generator().manual_seed(config.seed)

    def features(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return backbone.features(x.to(dtype), config.layers)

    history: dict[str, list[float]] = {"content": [], "style": [], "tv": [], "total": []}
    x: torch.Tensor | None = None
    step, stopped, loop_seconds = 0, False, 0.0
    for k, side in enumerate(config.sizes):
        last = k == config.scales - 1
        c = fit_size(content, side).to(device)
        s = fit_size(style, side).to(device)
        for image, what in ((c, "content"), (s, "style")):
            backbone.check_input(image, config.layers, f"the {what} image at scale {side} px")
        h, w = c.shape[-2:]
        small = F.interpolate(c, size=(max(h // 2, 1), max(w // 2, 1)), mode="bilinear")
        finest = c - F.interpolate(small, size=(h, w), mode="bilinear")
        if x is None:
            x = s.mean(dim=(2, 3), keepdim=True) + finest
        else:
            x = F.interpolate(x, size=(h, w), mode="bilinear") + (0 if last else finest)
        pyramid = [b.detach().requires_grad_(True) for b in decompose(x, config.levels)]
        optimizer = torch.optim.RMSprop(pyramid, lr=config.lr / (2 if last else 1))
        alpha = 16.0 * config.content_weight / 2**k
        with torch.no_grad():
            content_feats = features(c)
            chosen = torch.randperm(s.shape[-2] * s.shape[-1], generator=gen)
            s_cols = hypercolumns(s, features(s), chosen[: config.style_positions])
        t1 = time.perf_counter()
        for _ in range(config.steps):
            step += 1
            optimizer.zero_grad(set_to_none=True)
            x = compose(pyramid)
            index = torch.randperm(h * w, generator=gen)[: config.positions]
            x_cols = hypercolumns(x, features(x), index)
            with torch.no_grad():
                c_cols = hypercolumns(c, content_feats, index)
            terms = strotss_loss(x_cols, c_cols, s_cols, alpha, config.moment_weight)
            terms["total"].backward()
            optimizer.step()
            losses = {name: float(v.detach()) for name, v in terms.items()}
            losses["tv"] = float(total_variation(x.detach().float()))
            if not all(v == v and abs(v) != float("inf") for v in losses.values()):
                raise NonFiniteLoss(
                    f"STROTSS loss became {losses['total']} at step {step}; lower the lr"
                )
            for key in history:
                history[key].append(losses[key])
            info = Step(step, losses, x.detach(), loop_seconds + time.perf_counter() - t1)
            if any([bool(cb(info)) for cb in callbacks]):
                stopped = True
                break
        loop_seconds += time.perf_counter() - t1
        with torch.no_grad():
            x = compose(pyramid).detach()
        if stopped:
            break
    assert x is not None
    return Result(
        image=x.float().clamp(0, 1).cpu(),
        history=history,
        steps=step,
        seconds=time.perf_counter() - t0,
        seconds_per_step=loop_seconds / max(step, 1),
        peak_memory_mb=peak_memory_mb(device),
        weights=backbone.weights_info,
        stopped_early=stopped,
        config=config,
        timings={"setup_s": time.perf_counter() - t0 - loop_seconds, "loop_s": loop_seconds},
    )
