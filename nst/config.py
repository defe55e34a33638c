"""The configurations of image optimisation, frozen typed dataclasses built from dicts or YAML:
`TransferConfig` (Gatys's, `nst transfer`) and `StrotssConfig` (STROTSS, `nst strotss`,
nst.optimize.strotss).

`TransferConfig.from_dict` rejects unknown keys (naming the valid ones) and values of the
wrong type, so a typo in an experiment file fails loudly instead of silently using a default.

Layers the config does not name are the backbone's preset (nst.backbones.registry
LAYER_PRESETS), filled in when the config is built, so that a recorded config always names
the layers a run used: `TransferConfig(backbone="deit_small").content_layers == ("block8",)`.
`replace(backbone=...)` swaps layers that were the old backbone's preset for the new one's.

`backbone: auto` is resolved when the config is built (nst.backbones.auto:
vgg19 when its ImageNet file is present, else efficientnet_lite0), so a recorded config names
the network. The dataclass defaults are the PyTorch tutorial's VGG settings; `TransferConfig.
recipe(**values)` starts instead from the backbone family's default recipe
(nst.backbones.registry.RECIPES), as `nst transfer` does.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from nst import NstError
from nst.backbones.auto import AUTO, resolve
from nst.backbones.registry import LAYER_PRESETS, default_layers, default_recipe, family
from nst.parts import (
    LAYER_KEYS,
    LossPart,
    OptimizerPart,
    Range,
    RuntimePart,
    build_config,
    check_ranges,
    check_types,
    field_,
    plain_dict,
    read_yaml,
)

#: VGG's preset (nst.backbones.registry.LAYER_PRESETS), kept for the modules that name it
VGG_CONTENT_LAYERS, VGG_STYLE_LAYERS = LAYER_PRESETS["nst.backbones.vgg"]


@dataclass(frozen=True)
class TransferConfig(RuntimePart, OptimizerPart, LossPart):
    """Everything that determines the result of `nst.optimize.stylize`: the shared loss,
    optimiser and runtime parts, then what only image optimisation has."""

    lbfgs_history: int = field_(100, "L-BFGS curvature pairs kept")
    lbfgs_line_search: Literal["strong_wolfe", "none"] = field_(
        "strong_wolfe", "L-BFGS line search: strong_wolfe (up to 25 evaluations) or none (step lr)"
    )
    # where the optimisation starts
    init: Literal["content", "style", "noise", "blend"] = field_(
        "content",
        "starting image: the content, the style, seeded noise, or a blend of content and noise",
    )
    init_blend: float = field_(
        0.5, "content share of the blend init, in [0, 1] (the rest is seeded noise)"
    )
    steps: int = field_(300, "optimisation steps (per pyramid stage unless pyramid_steps is given)")
    stop_rtol: float = field_(
        0.0, "stop when the total loss improved by less than this fraction over 10 steps; 0: never"
    )
    size: int = field_(256, "long side of the content image and of the result, pixels")
    # patch-grid artefact mitigation for ViT backbones (nst.optimize.controls.shifts); 0 = off
    jitter: int = field_(
        0, "ViT grid artefacts: roll the image by a seeded random shift of 0..N px per step; 0: off"
    )
    shift_average: int = field_(
        0, "ViT grid artefacts: average features over K fixed sub-patch shifts (K x cost); 0: off"
    )
    # artistic controls (nst.optimize.controls.color, nst.optimize.pyramid, nst.optimize.controls.gradnorm, nst.optimize.controls.masks, nst.optimize.controls.frames)
    style_blend: tuple[float, ...] = field_(
        (), "one weight per style image, mixing their Gram targets; empty: equal"
    )
    style_scale: float = field_(
        1.0, "style image long side = style_scale * size (larger: bigger brush strokes)"
    )
    color: Literal["none", "luminance", "histogram", "histogram_post"] = field_(
        "none",
        "keep the photo's colours: luminance-only transfer, or histogram matching before/after",
    )
    pyramid: tuple[int, ...] = field_(
        (), "coarse-to-fine stage sizes, e.g. 256,512; the last is the output size (replaces size)"
    )
    pyramid_steps: tuple[int, ...] = field_((), "steps per pyramid stage; empty: steps for each")
    normalize_gradients: bool = field_(
        False,
        "divide each loss term's pixel gradient by its L1 norm (weights become relative strengths)",
    )
    mask: str = field_("", "grey mask image: white = stylise, black = keep the content")
    frame_every: int = field_(0, "capture a progress frame every k steps; 0: off")

    #: the valid values of the numeric fields (check_ranges); the others need only be finite
    RANGES: ClassVar[dict[str, Range]] = {
        **LossPart.RANGES,
        **OptimizerPart.RANGES,
        **dict.fromkeys(("steps", "size", "lbfgs_history"), Range(1)),
        "style_scale": Range(0, strict=True),
        **dict.fromkeys(("stop_rtol", "jitter", "shift_average", "frame_every"), Range(0)),
        "init_blend": Range(0, 1),
    }

    def __post_init__(self) -> None:
        check_types(self)
        if self.backbone == AUTO:
            object.__setattr__(self, "backbone", resolve(AUTO)[0])
        if not (self.content_layers and self.style_layers):
            # looked up only when needed: a config naming its layers may name any backbone
            # (a test's fake), and an unknown one without layers fails here, by name
            for key, preset in zip(LAYER_KEYS, default_layers(self.backbone), strict=True):
                if not getattr(self, key):
                    object.__setattr__(self, key, preset)
        self.check_loss()
        check_ranges(self)
        _check_controls(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransferConfig:
        """Build a config from plain values (YAML, JSON, CLI), coercing and checking each one."""
        return build_config(cls, values, "")

    @classmethod
    def recipe(cls, **values: Any) -> TransferConfig:
        """The config of `values` on top of their backbone family's default recipe (backbone
        left out or `auto`: the rule above): what `nst transfer` runs when given no option."""
        backbone = resolve(str(values.get("backbone") or AUTO))[0]
        return cls.from_dict({**default_recipe(backbone), **values, "backbone": backbone})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TransferConfig:
        return cls.from_dict(read_yaml(path))

    def replace(self, **changes: Any) -> TransferConfig:
        """A copy with `changes`, validated like from_dict. A new backbone gets its own preset
        for the layers that were the old backbone's preset and are not among `changes`."""
        values = {**self.to_dict(), **changes}
        if changes.get("backbone", self.backbone) != self.backbone:
            for key, preset in zip(LAYER_KEYS, _preset_or_none(self.backbone), strict=True):
                if key not in changes and getattr(self, key) == preset:
                    del values[key]
        return TransferConfig.from_dict(values)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples become lists) that `from_dict` reads back to an equal config."""
        return plain_dict(self)


def _preset_or_none(backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The backbone's preset layers; none for a backbone outside the registry."""
    try:
        return default_layers(backbone)
    except NstError:
        return (), ()


#: STROTSS's hypercolumn on VGG16 (the released code's feature indices 1, 3, 6, 8, 11, 13,
#: 15, 22, 29): 64 + 64 + 128 + 128 + 256 * 3 + 512 * 2 channels, with the pixels 2179
VGG_HYPERCOLUMN = (
    "relu1_1",
    "relu1_2",
    "relu2_1",
    "relu2_2",
    "relu3_1",
    "relu3_2",
    "relu3_3",
    "relu4_3",
    "relu5_3",
)


@dataclass(frozen=True)
class StrotssConfig(RuntimePart):
    """A STROTSS run (module docstring); the defaults are the paper's and its code's."""

    backbone: str = field_(
        "vgg16",
        "network whose hypercolumns the losses compare (STROTSS: vgg16); auto as in transfer",
    )
    weights: str = field_(
        "auto",
        "imagenet | random | auto (imagenet if present, else random, loudly) | PATH to a state dict",
    )
    pooling: Literal["max", "avg"] = field_("max", "VGG pooling")
    layers: tuple[str, ...] = field_(
        (),
        "hypercolumn layers (the pixels are always in it); empty: STROTSS's nine VGG16 ReLUs, "
        "on another family its preset's layers",
    )
    size: int = field_(512, "long side of the result: the last scale's")
    scales: int = field_(4, "scales, each twice the last's side, ending at size (STROTSS: 4)")
    steps: int = field_(250, "RMSprop steps per scale (the released code: 250)")
    lr: float = field_(2.0e-3, "RMSprop learning rate; halved at the last scale")
    levels: int = field_(5, "Laplacian pyramid bands the image is optimised as")
    content_weight: float = field_(
        1.0, "alpha: the content weight is 16 alpha at the coarsest scale, halved at each next"
    )
    moment_weight: float = field_(1.0, "weight of the moment and palette terms")
    positions: int = field_(1024, "result positions sampled per step (STROTSS: 1024)")
    style_positions: int = field_(5000, "style positions sampled per scale (STROTSS: 5 x 1000)")

    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("size", "scales", "steps", "positions", "style_positions"), Range(1)),
        "levels": Range(0),
        "lr": Range(0, strict=True),
        **dict.fromkeys(("content_weight", "moment_weight"), Range(0)),
    }

    def __post_init__(self) -> None:
        check_types(self)
        check_ranges(self)
        if self.backbone == AUTO:  # as TransferConfig: vgg19 with its ImageNet file, else Lite0
            object.__setattr__(self, "backbone", resolve(AUTO)[0])
        if not self.layers:  # VGG: STROTSS's nine ReLUs; another family: its preset's layers
            content, style = default_layers(self.backbone)
            vgg = family(self.backbone) == "vgg"
            layers = VGG_HYPERCOLUMN if vgg else tuple(dict.fromkeys(style + content))
            object.__setattr__(self, "layers", layers)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StrotssConfig:
        return build_config(cls, values, "strotss ")

    def to_dict(self) -> dict[str, Any]:
        return plain_dict(self)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The long side of each scale, coarsest first."""
        return tuple(max(8, self.size >> (self.scales - 1 - k)) for k in range(self.scales))


#: the config of an image optimisation run: what nst.tracking records as a run's params
OptimisationConfig = TransferConfig | StrotssConfig


def field_help(name: str, cls: type = TransferConfig) -> str:
    """The one-line description of a config field (see field_)."""
    return str(next(f.metadata["help"] for f in fields(cls) if f.name == name))


def field_names(cls: type = TransferConfig) -> list[str]:
    return [f.name for f in fields(cls)]


def field_type(name: str, cls: type = TransferConfig) -> Any:
    return typing.get_type_hints(cls)[name]


def _check_controls(config: TransferConfig) -> None:
    """Ranges of the artistic-control fields (nst.optimize.controls.color, nst.optimize.pyramid, ...)."""
    if any(w < 0 for w in config.style_blend) or (
        config.style_blend and sum(config.style_blend) <= 0
    ):
        raise NstError(
            f"style_blend {list(config.style_blend)}: weights must be >= 0 with a positive sum"
        )
    if any(s < 1 for s in config.pyramid) or any(n < 1 for n in config.pyramid_steps):
        raise NstError("pyramid sizes and pyramid_steps must be at least 1")
    if config.pyramid_steps and len(config.pyramid_steps) != len(config.pyramid):
        raise NstError(
            f"pyramid_steps has {len(config.pyramid_steps)} values for {len(config.pyramid)} "
            "pyramid stages: give one per stage or none"
        )
