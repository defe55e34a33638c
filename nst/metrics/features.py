"""Feature-space metrics in a held-out network, one the optimisation never used.

Measuring style in the backbone that was optimised rewards over-fitting to that network's
features; a second network is an independent judge. The held-out network is VGG16
(Simonyan & Zisserman, 2015), or VGG19 when the run itself optimised VGG16 features
(`exclude_backbone`). It uses ImageNet weights when they are in the local torch cache and
otherwise seeded random weights (seed 0), with a RandomWeightsWarning; random convolutional
features still carry texture statistics (Ustyuzhaninov et al., 2017, "What does it take to
generate natural textures?") but the values are not comparable with pretrained ones, so the
identity (network, weights, sha256) is recorded with every evaluation. Layer names exist in
both VGG16 and VGG19, so both judges measure at the same depths.

Content feature distance (the unlearned "baseline" variant of LPIPS, Zhang et al. 2018):
with f^l_hw the C-vector at position hw, unit-normalised over channels,

    D_content = 1/|L| sum_{l in {relu3_3, relu4_2}} mean_hw || f^l_r / |f^l_r| - f^l_c / |f^l_c| ||^2

in [0, 2] (post-ReLU vectors are non-negative), 0 for identical images, lower is better.

Style distances over L = {relu1_2, relu2_2, relu3_3, relu4_3} (Johnson et al. 2016's style
layers), both relative to the style's own magnitude so that layers and weights with very
different scales count alike:

    Gram:  D_gram  = 1/|L| sum_l ||G^l_r - G^l_s||_F / ||G^l_s||_F    (Gatys et al. 2016;
           G = F F^T / (C H W), nst.losses.gram)
    stats: D_stats = 1/|L| sum_l (||mu^l_r - mu^l_s|| + ||sd^l_r - sd^l_s||) / (||mu^l_s|| + ||sd^l_s||)
           with per-channel spatial mean and standard deviation (the AdaIN statistics, Huang &
           Belongie 2017).

Both are >= 0, 0 when the statistics agree, lower is better.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from nst.backbones import get_backbone
from nst.backbones.base import resolve_weights
from nst.backbones.vgg import imagenet_cache_file
from nst.losses import gram

CONTENT_LAYERS = ("relu3_3", "relu4_2")
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
EPS = 1e-10


def held_out_name(exclude_backbone: str | None = None) -> str:
    """vgg16, unless the run optimised vgg16 features: then vgg19."""
    return "vgg19" if exclude_backbone == "vgg16" else "vgg16"


def held_out_identity(
    exclude_backbone: str | None = None, weights: str = "auto", seed: int = 0
) -> str:
    """The held-out network and where its weights would come from, without building it,
    e.g. "vgg16 random:seed=0" or "vgg16 imagenet:vgg16-397923af.pth"."""
    name = held_out_name(exclude_backbone)
    kind, path = resolve_weights(weights, name, imagenet_cache_file(name))
    if kind == "random" or path is None:
        return f"{name} random:seed={seed}"
    return f"{name} {kind}:{path.name if kind == 'imagenet' else path}"


class HeldOutNetwork:
    """The judge network, built once; computes the feature metrics of the module docstring."""

    def __init__(
        self, exclude_backbone: str | None = None, *, weights: str = "auto", seed: int = 0
    ):
        self.name = held_out_name(exclude_backbone)
        self.backbone = get_backbone(self.name, weights=weights, pooling="max", seed=seed)
        self._style_cache: tuple[Any, int, dict[str, tuple[torch.Tensor, ...]]] | None = None

    @property
    def pretrained(self) -> bool:
        return self.backbone.weights_info.pretrained

    @property
    def weights_identity(self) -> str:
        return self.backbone.weights_info.identity

    def identity(self) -> dict[str, str]:
        info = self.backbone.weights_info
        return {"backbone": self.name, "weights": info.identity, "sha256": info.sha256,
                "pretrained": str(info.pretrained).lower()}  # fmt: skip

    def _style_targets(self, style: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
        """Per style layer (Gram, channel means, channel stds), kept for the last style tensor
        seen: a study's pruner asks for the same pair's style at every report."""
        cached = self._style_cache
        if cached is not None and cached[0]() is style and cached[1] == style._version:
            return cached[2]
        fs = self._features(style, STYLE_LAYERS)
        targets: dict[str, tuple[torch.Tensor, ...]] = {}
        for layer, f in fs.items():
            f = f.double()
            targets[layer] = (gram(f), f.mean(dim=(2, 3)), f.std(dim=(2, 3)))
        self._style_cache = (weakref.ref(style), style._version, targets)
        return targets

    def _features(self, x: torch.Tensor, layers: tuple[str, ...]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.backbone.features(x.float(), layers)

    def content_distance(self, result: torch.Tensor, content: torch.Tensor) -> float:
        """D_content: mean squared distance of channel-normalised features (module docstring)."""
        fr, fc = self._features(result, CONTENT_LAYERS), self._features(content, CONTENT_LAYERS)
        total = 0.0
        for layer in CONTENT_LAYERS:
            a = fr[layer] / (fr[layer].norm(dim=1, keepdim=True) + EPS)
            b = fc[layer] / (fc[layer].norm(dim=1, keepdim=True) + EPS)
            total += float(((a - b) ** 2).sum(dim=1).mean())
        return total / len(CONTENT_LAYERS)

    def style_distances(self, result: torch.Tensor, style: torch.Tensor) -> dict[str, float]:
        """{"style_gram_dist": D_gram, "style_stats_dist": D_stats} (module docstring)."""
        fr, targets = self._features(result, STYLE_LAYERS), self._style_targets(style)
        d_gram = d_stats = 0.0
        for layer in STYLE_LAYERS:
            gs, ms, ss = targets[layer]
            gr = gram(fr[layer].double())
            d_gram += float((gr - gs).norm() / (gs.norm() + EPS))
            mr, sr = fr[layer].double().mean(dim=(2, 3)), fr[layer].double().std(dim=(2, 3))
            d_stats += float(((mr - ms).norm() + (sr - ss).norm()) / (ms.norm() + ss.norm() + EPS))
        n = len(STYLE_LAYERS)
        return {"style_gram_dist": d_gram / n, "style_stats_dist": d_stats / n}
