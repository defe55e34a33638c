"""The report's layer-by-layer reconstructions (nst.reconstruct).

Starting from seeded noise, an image is optimised to match one layer's features (content)
or Gram matrix (style) of a content image; the rows show what each layer keeps, shallow to
deep (Gatys et al. 2016, figure 1), on the network `auto` picks (nst.backbones.auto): VGG-19
relu1_1..relu5_1 when its ImageNet file is present, else the pretrained EfficientNet-Lite0's
stem..stage5, for content and style; and the DeiT blocks 0..11 for content when a DeiT's
ImageNet file is present. A network with random weights is not reconstructed: what a random
network keeps says nothing about the trained one, and the note says what is missing.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nst import NstError
from nst.backbones.registry import family
from nst.report.data import StudyResults
from nst.report.grid import image_grid
from nst.report.page import Section

#: the rows' layers per network, shallow to deep
LAYERS = {
    "vgg19": ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"),
    "efficientnet_lite0": ("stem", "stage1", "stage2", "stage3", "stage4", "stage5"),
}
DEIT_LAYERS = ("block0", "block3", "block6", "block9", "block11")
TITLE = "Layer-by-layer reconstruction"


def reconstruction_section(
    studies: list[StudyResults], size: int, steps: int
) -> tuple[Section, bool]:
    """The section and whether any of its backbones ran with random weights."""
    from nst.backbones import get_backbone, list_backbones
    from nst.backbones.auto import resolve_auto
    from nst.images import fit_size
    from nst.optimize import reconstruct

    image, image_name = content_image(studies)
    cnn, _ = resolve_auto()
    jobs: list[tuple[str, tuple[str, ...], tuple[Literal["content", "style"], ...]]] = [
        (cnn, LAYERS[cnn], ("content", "style"))
    ]
    deit = pick_deit(studies, list_backbones())
    if deit:
        jobs.append((deit, DEIT_LAYERS, ("content",)))
    section, random = Section(TITLE), False
    missing = [] if cnn == "vgg19" else ["vgg19"]  # auto fell back: no ImageNet vgg19 file
    for name, layers, modes in jobs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the page banner reports random weights
            backbone = get_backbone(name, weights="auto", seed=0)
        if not backbone.weights_info.pretrained:
            missing.append(name)
            continue
        layers = tuple(layer for layer in layers if layer in backbone.layer_names)
        original = _array(fit_size(image, size, backbone.size_multiple))
        rows: list[list[Path | np.ndarray | None]] = []
        try:
            for mode in modes:
                tiles = [
                    reconstruct.reconstruct(backbone, image, layer, mode, steps, size)
                    for layer in layers
                ]
                rows.append([original, *map(_array, tiles)])
        except NstError as err:
            section.note = f"Not available for {name}: {err}"
            continue
        weights = backbone.weights_info
        random = random or not weights.pretrained
        plot = image_grid(
            rows,
            [f"{name} {m}" for m in modes],
            ["original", *layers],
            f"reconstruct-{name}",
            f"{name}: {image_name} reconstructed from one layer at a time ({' and '.join(modes)}; "
            f"{size} px long side, {steps} Adam steps from noise; weights {weights.identity}).",
        )
        if plot:
            section.plots.append(plot)
    if missing:
        section.note = " ".join(
            filter(
                None,
                [
                    section.note,
                    (
                        f"Not shown for {', '.join(missing)}: no ImageNet weights here (`nst weights fetch "
                        f"{missing[0]}`), and a random network's reconstructions show nothing of the "
                        "trained one."
                    ),
                ],
            )
        )
    return section, random


def content_image(studies: list[StudyResults]) -> tuple[torch.Tensor, str]:
    """The first content image of the studies that exists on disk, else scikit-image's
    public-domain astronaut photograph."""
    from nst.images import load_image, to_tensor

    for study in studies:
        for content, _ in study.pair_sources().values():
            path = study.resolve(content)
            if path is not None:
                return load_image(path), path.name
    from PIL import Image
    from skimage import data as skdata

    return to_tensor(Image.fromarray(skdata.astronaut())), "skimage astronaut"


def pick_deit(studies: list[StudyResults], registered: list[str]) -> str | None:
    """The DeiT the studies compared, else the smallest one (this runs on a CPU too)."""
    used = [
        str(v)
        for s in studies
        if "params_backbone" in s.trials
        for v in s.trials["params_backbone"]
    ]
    candidates = [b for b in used if family(b) == "vit"] + ["deit_tiny", "deit_small"]
    return next((b for b in candidates if b in registered), None)


def _array(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
