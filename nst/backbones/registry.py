"""The backbone registry: a name -> a factory of Backbones (`@register("vgg19")`).

The names are declared here with the module that registers them, so listing them (the CLI's
choices, `nst --help`) imports no torch; a family's module is imported when one of its
backbones is first built. tests/test_backbones.py checks each module registers exactly the
names declared for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from nst import NstError

if TYPE_CHECKING:
    from nst.backbones.base import Backbone

#: module -> the backbones it registers
FAMILIES: dict[str, tuple[str, ...]] = {
    "nst.backbones.vgg": ("vgg16", "vgg19"),
    "nst.backbones.vit": (
        "deit_tiny",
        "deit_small",
        "deit_base",
        "deit_small_distilled",
        "vit_small",
    ),
}
_MODULE = {name: module for module, names in FAMILIES.items() for name in names}
_REGISTRY: dict[str, Callable[..., Backbone]] = {}


def register(name: str) -> Callable[[Callable[..., Backbone]], Callable[..., Backbone]]:
    def wrap(factory: Callable[..., Backbone]) -> Callable[..., Backbone]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def list_backbones() -> list[str]:
    return sorted(_MODULE)


def get_backbone(name: str, weights: str = "auto", **options: object) -> Backbone:
    """Build a registered backbone. weights: imagenet | random | auto | path to a state dict."""
    if name not in _MODULE:
        raise NstError(f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}")
    importlib.import_module(_MODULE[name])
    return _REGISTRY[name](weights=weights, **options)
