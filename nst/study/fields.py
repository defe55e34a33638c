"""What a study's trials are: the config class of the experiment's `method`, and its fields.

    method: gatys (the default)   a trial optimises images: nst.config.TransferConfig
    method: a trained method      a trial trains a network: nst.train.config.TrainConfig
                                  (johnson, adain, stytr, plug-ins: nst.models.registry)

An experiment's `fixed`, `search` and `profiles.<name>.fixed` name fields of that class (one
spec parser for both, nst.study.spec). A training study sets three TrainConfig fields itself
from the split of `--data` (nst.data.split, as the methods comparison does): `data` (the
train photos), `style` (johnson: the first validation style) and `styles` (adain, stytr: the
train styles); `method` is the experiment's top-level key. Searched
ratios (style_ratio = beta/alpha, tv_ratio = gamma/alpha) are for optimisation studies; a
training study searches beta (and gamma) itself, alpha being 1 for johnson and adain.

The objectives of a study are nst.metrics' names or the loss terms of its method:
gatys and johnson content, style, tv, total; adain content, style, total; stytr content, style,
identity1, identity2, total (the validation losses in a training study).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from typing import Any

from nst import NstError
from nst.config import TransferConfig
from nst.models.registry import get_method, list_methods
from nst.train.config import TrainConfig

RATIOS = {"style_ratio": "beta", "tv_ratio": "gamma"}  # searched ratio -> weight it sets
#: TrainConfig fields a training study sets from the data's split (module docstring)
SPLIT_KEYS = ("data", "style", "styles")
#: an optimisation's loss terms (nst.optimize: alpha L_c + beta L_s + gamma L_tv, and the total)
GATYS_TERMS = ("content", "style", "tv", "total")

Config = TransferConfig | TrainConfig


def studied_methods() -> list[str]:
    """The methods a study can search: the optimisations whose config is a TransferConfig (a
    trial runs nst.optimize.stylize; strotss has its own config: no study yet) and every
    trained network."""
    optimised = [
        m for m in list_methods("optimisation") if get_method(m).config_class() is TransferConfig
    ]
    return optimised + list_methods("network")


@dataclass(frozen=True)
class Fields:
    """The fields of one method's config: names, types, building and checking values."""

    method: str = "gatys"

    def __post_init__(self) -> None:
        if self.method not in studied_methods():
            raise NstError(
                f"method {self.method!r} unknown; use one of {', '.join(studied_methods())}"
            )

    @property
    def trained(self) -> bool:
        return get_method(self.method).trained

    @property
    def cls(self) -> type[TransferConfig] | type[TrainConfig]:
        return TrainConfig if self.trained else TransferConfig

    @property
    def ratios(self) -> dict[str, str]:
        """The searchable ratios (optimisation studies only)."""
        return {} if self.trained else RATIOS

    def names(self) -> list[str]:
        """The fields an experiment may name (the split's keys and `method` left out)."""
        own = [f.name for f in fields(self.cls)]
        return [n for n in own if not (self.trained and n in (*SPLIT_KEYS, "method"))]

    def type_of(self, name: str) -> Any:
        if name in self.ratios:
            return float
        return typing.get_type_hints(self.cls)[name]

    def build(self, values: dict[str, Any]) -> Config:
        """The config of `values` (a training config with this method). An optimisation trial
        starts from its backbone family's default recipe (nst.backbones.registry.RECIPES), as
        `nst transfer` does; its fixed and searched fields override it."""
        if not self.trained:
            return TransferConfig.recipe(**{"backbone": TransferConfig.backbone, **values})
        return TrainConfig.from_dict({**values, "method": self.method})

    def check(self, values: dict[str, Any]) -> None:
        """NstError in one line when `values` does not build (a key the study sets is named)."""
        owned = sorted(set(values) & {*SPLIT_KEYS, "method"}) if self.trained else []
        if owned:
            raise NstError(
                f"{owned[0]} is set by the study (method: at the top of the file; data, style, "
                "styles from the split of --data); remove it"
            )
        try:
            self.build(values)
        except NstError as err:
            text = str(err)
            if "valid keys:" in text:  # name the keys an experiment may use, not the split's
                head = text.split("valid keys:")[0]
                text = f"{head}valid keys: {', '.join(self.names())}"
            raise NstError(text) from None

    def loss_terms(self) -> tuple[str, ...]:
        """The method's loss terms: an optimisation's, or the training objective's."""
        if not self.trained:
            return GATYS_TERMS
        from nst.train.losses import LOSSES  # torch: loaded when a spec is checked

        return tuple(LOSSES.get(get_method(self.method).loss).terms)

    @property
    def what(self) -> str:
        return "TrainConfig" if self.trained else "TransferConfig"
