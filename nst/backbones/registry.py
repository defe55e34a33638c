"""The backbone registry: a name -> a factory of Backbones (`@register("vgg19")`)."""

from __future__ import annotations

from collections.abc import Callable

from nst import NstError
from nst.backbones.base import Backbone

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
