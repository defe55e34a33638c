"""One registry mechanism for every kind of plug-in: backbones, methods, training losses.

A `Registry` maps a name to a factory. Its names are declared with the module that defines
them (`declared`: module -> names), so listing them (the CLI's choices, `nst --help`) imports
nothing heavy; the module is imported when a name is first used, and registers its factory
with the registry's decorator (`@BACKBONES.register("vgg19")`, as timm's `@register_model`).

Third-party packages add names without forking nst through Python entry points, one group per
registry (ENTRY_POINT_GROUPS): an entry point's name is the plug-in's name, its value the
object to register (`my_pkg.styles:METHOD`), loaded when the name is first used; a built-in
name wins over a plug-in of the same name (what a recorded name means never changes). A
package declares, in its pyproject.toml:

    [project.entry-points."nst.methods"]
    mine = "my_pkg.method:METHOD"       # an nst.models.registry.Method

    [project.entry-points."nst.backbones"]
    tiny = "my_pkg.net:build"           # called as build(weights=..., **options) -> Backbone

    [project.entry-points."nst.losses"]
    mine = "my_pkg.loss:MyLoss"         # a training loss class (nst.train.losses)

    [project.entry-points."nst.style_losses"]
    mine = "my_pkg.style:STYLE"         # an nst.perceptual.StyleLoss
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from nst import NstError

T = TypeVar("T")

#: registry kind -> the entry-point group a package adds names of that kind through
ENTRY_POINT_GROUPS = {
    "backbone": "nst.backbones",
    "method": "nst.methods",
    "loss": "nst.losses",
    "style_loss": "nst.style_losses",
    "content_loss": "nst.content_losses",
}


@cache
def plugins(group: str) -> dict[str, EntryPoint]:
    """The entry points of `group` installed in this environment, by name (read once)."""
    return {ep.name: ep for ep in entry_points(group=group)}


class Registry(Generic[T]):
    """name -> T, the names declared torch-free with their modules (module docstring)."""

    def __init__(self, kind: str, declared: dict[str, tuple[str, ...]]):
        self.kind, self.declared = kind, declared
        self.group = ENTRY_POINT_GROUPS[kind]
        self.module = {name: m for m, names in declared.items() for name in names}
        self.entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: `name`'s factory (or entry) is the decorated object."""

        def wrap(obj: T) -> T:
            self.entries[name] = obj
            return obj

        return wrap

    def add(self, name: str, obj: T) -> None:
        self.entries[name] = obj

    def names(self) -> list[str]:
        """Built-in and plug-in names, sorted; nothing is imported."""
        return sorted({*self.module, *self.entries, *plugins(self.group)})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def builtin(self, name: str) -> bool:
        return name in self.module

    def get(self, name: str) -> T:
        """The entry of `name`: its module imported (or its entry point loaded) on first use;
        an unknown name is one NstError naming the registered ones."""
        if name in self.entries:
            return self.entries[name]
        if name in self.module:
            importlib.import_module(self.module[name])
            if name not in self.entries:
                raise NstError(
                    f"{self.module[name]} declares {self.kind} {name!r} but does not register it"
                )
            return self.entries[name]
        plugin = plugins(self.group).get(name)
        if plugin is None:
            raise NstError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}")
        try:
            self.entries[name] = plugin.load()
        except Exception as err:  # a broken plug-in is named, not a traceback
            raise NstError(
                f"{self.kind} {name!r} from entry point {plugin.value} ({self.group}) failed to "
                f"load: {type(err).__name__}: {err}".splitlines()[0]
            ) from None
        return self.entries[name]
