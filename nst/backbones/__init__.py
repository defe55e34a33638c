"""A registry of feature extractors: `get_backbone(name, weights=...)` -> Backbone.

Every backbone maps an RGB image in [0, 1] (NCHW) to named feature maps:
`backbone.features(x, layers) -> {layer name: NCHW tensor}`. It normalises its input
itself, computes only up to the deepest requested layer, and has frozen weights.
"""

from __future__ import annotations

from collections.abc import Callable

from nst import NstError
from nst.backbones.base import Backbone, WeightsInfo

_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    def wrap(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_backbones() -> list[str]:
    return sorted(_REGISTRY)


def get_backbone(name: str, weights: str = "auto", **options: object) -> Backbone:
    """Build a registered backbone. weights: imagenet | random | auto | path to a state dict."""
    if name not in _REGISTRY:
        raise NstError(f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}")
    return _REGISTRY[name](weights=weights, **options)


# importing the modules registers their backbones
from nst.backbones import vgg, vit  # noqa: E402,F401

__all__ = ["Backbone", "WeightsInfo", "get_backbone", "list_backbones", "register"]
