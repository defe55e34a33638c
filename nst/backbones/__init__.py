"""A registry of feature extractors: `get_backbone(name, weights=...)` -> Backbone.

Every backbone maps an RGB image in [0, 1] (NCHW) to named feature maps:
`backbone.features(x, layers) -> {layer name: NCHW tensor}`. It normalises its input
itself, computes only up to the deepest requested layer, and has frozen weights.
"""

from __future__ import annotations

# importing the modules registers their backbones
from nst.backbones import vgg, vit  # noqa: E402,F401,I001
from nst.backbones.base import Backbone, WeightsInfo
from nst.backbones.registry import get_backbone, list_backbones, register

__all__ = ["Backbone", "WeightsInfo", "get_backbone", "list_backbones", "register"]
