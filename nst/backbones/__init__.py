"""A registry of feature extractors: `get_backbone(name, weights=...)` -> Backbone.

Every backbone maps an RGB image in [0, 1] (NCHW) to named feature maps:
`backbone.features(x, layers) -> {layer name: NCHW tensor}`. It normalises its input
itself, computes only up to the deepest requested layer, and has frozen weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nst.backbones.registry import get_backbone, list_backbones, register

if TYPE_CHECKING:
    from nst.backbones.base import Backbone, WeightsInfo

__all__ = ["Backbone", "WeightsInfo", "get_backbone", "list_backbones", "register"]


def __getattr__(name: str) -> Any:
    # Backbone and WeightsInfo need torch; importing the registry (for names) must not
    if name in ("Backbone", "WeightsInfo"):
        from nst.backbones import base

        return getattr(base, name)
    raise AttributeError(f"module 'nst.backbones' has no attribute {name!r}")
