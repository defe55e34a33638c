"""Metrics that are only meaningful with pretrained weights: LPIPS, FID and ArtFID's formula.

They are computed only when the weights are already on disk; nothing is ever downloaded
(the checks look for the files first, and HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set).
When weights are missing the metric is left out and a note says why, instead of silently
scoring with random weights, which would make these learned metrics meaningless.

LPIPS (Zhang, Isola, Efros, Shechtman & Wang, 2018), torchmetrics' implementation with the
VGG16 trunk: d(x, y) = sum_l 1/(H_l W_l) sum_hw || w_l * (f^l_x,hw - f^l_y,hw) ||^2 over
unit-normalised features, with learned per-channel weights w_l (shipped with torchmetrics).
Needs torchvision's ImageNet VGG16 file in $TORCH_HOME/hub/checkpoints. >= 0, lower is better.

FID (Heusel et al. 2017) is a distance between two *sets* of images: Gaussians fitted to
Inception-v3 pool features, FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)).
ArtFID (Wright & Ommer, 2022) combines style and content over an evaluation set:
ArtFID = (1 + mean LPIPS(result, content)) * (1 + FID(results, styles)), its FID computed on
the features of an Inception-v3 trained on art (WikiArt style classification). nst has only
the ImageNet Inception, so it reports `artfid_imagenet`: ArtFID's formula with the ImageNet
FID. It is not ArtFID, and its values are not comparable with published ArtFID numbers (the
name says so). Both need torch-fidelity and its Inception weights in the torch cache; see
`set_scores`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

import torch

LPIPS_BACKBONE_FILE = "vgg16-397923af.pth"  # torchvision VGG16_Weights.IMAGENET1K_V1
FID_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity

for _key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")


def checkpoint(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name


class LpipsScorer:
    """LPIPS(result, content) when the VGG16 ImageNet file is cached; otherwise returns None
    and `note` says what is missing."""

    def __init__(self) -> None:
        path = checkpoint(LPIPS_BACKBONE_FILE)
        self.model: torch.nn.Module | None = None
        self.note = ""
        if not path.exists():
            self.note = (
                f"lpips skipped: ImageNet VGG16 weights not found at {path} (never downloaded)"
            )
            return
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        self.model = LearnedPerceptualImagePatchSimilarity(net_type="vgg", normalize=True).eval()

    def __call__(self, result: torch.Tensor, content: torch.Tensor) -> float | None:
        if self.model is None:
            return None
        with torch.no_grad():
            return float(self.model(result.float(), content.float()))


def set_scores(
    contents: Sequence[torch.Tensor],
    styles: Sequence[torch.Tensor],
    results: Sequence[torch.Tensor],
) -> tuple[dict[str, float], list[str]]:
    """FID(results, styles) and ArtFID's formula on it over an evaluation set, when possible.

    Returns (values, notes): values may hold "fid" and "artfid_imagenet"; notes say what was
    skipped.
    FID needs many images (hundreds) for a stable estimate; use it with the full PROTOCOL."""
    notes: list[str] = []
    weights = checkpoint(FID_INCEPTION_FILE)
    if importlib.util.find_spec("torch_fidelity") is None:
        return {}, ["fid/artfid_imagenet skipped: torch-fidelity is not installed"]
    if not weights.exists():
        return {}, [
            f"fid/artfid_imagenet skipped: Inception weights not found at {weights} (never downloaded)"
        ]
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(
        feature=2048, normalize=True, feature_extractor_weights_path=str(weights)
    )
    for image in styles:
        fid.update(image.float(), real=True)
    for image in results:
        fid.update(image.float(), real=False)
    values = {"fid": float(fid.compute())}
    lpips = LpipsScorer()
    if lpips.model is None:
        notes.append(lpips.note.replace("lpips", "artfid_imagenet"))
    else:
        mean_lpips = sum(lpips(r, c) or 0.0 for r, c in zip(results, contents, strict=True)) / len(
            results
        )
        values["artfid_imagenet"] = (1.0 + mean_lpips) * (1.0 + values["fid"])
    return values, notes
