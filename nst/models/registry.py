"""The model registry: a name -> a factory of stylisation networks (`@register("johnson")`).

Like nst.backbones.registry, the names are declared here with the module that registers them,
so listing them (CLI choices, `nst --help`) imports no torch; the module is imported when a
network is first built. Options are the factory's keyword arguments (e.g. `width=32`); an
unknown option is a one-line NstError naming the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nst import NstError

if TYPE_CHECKING:
    from torch import nn

#: module -> the models it registers
FAMILIES: dict[str, tuple[str, ...]] = {
    "nst.models.johnson": ("johnson",),
    "nst.models.adain": ("adain",),
    "nst.models.stytr": ("stytr",),
}
#: arbitrary-style models: forward(content, style) instead of forward(content); their class
#: attribute `inputs` is ("content", "style") (model_inputs reads it for any network)
ARBITRARY = ("adain", "stytr")
_MODULE = {name: module for module, names in FAMILIES.items() for name in names}
_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = factory
        return factory

    return wrap


def model_inputs(model: nn.Module) -> tuple[str, ...]:
    """The image inputs of `model`'s forward, in order: ("content",) or ("content", "style")."""
    return tuple(getattr(model, "inputs", ("content",)))


def list_models() -> list[str]:
    return sorted(_MODULE)


def model_options(name: str) -> dict[str, Any]:
    """The options of model `name` with their defaults, e.g. {"width": 32}."""
    factory = _factory(name)
    return {
        p.name: p.default
        for p in inspect.signature(factory).parameters.values()
        if p.default is not inspect.Parameter.empty
    }


def get_model(name: str, **options: Any) -> nn.Module:
    """Build a registered network with `options` (its factory's keyword arguments)."""
    factory = _factory(name)
    valid = model_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise NstError(
            f"model {name!r} has no option(s) {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return factory(**options)


def _factory(name: str) -> Callable[..., nn.Module]:
    if name not in _MODULE:
        raise NstError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    importlib.import_module(_MODULE[name])
    return _REGISTRY[name]
