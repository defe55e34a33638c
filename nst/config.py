"""The configuration of one style transfer: a frozen, typed dataclass built from dicts or YAML.

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

import dataclasses
import math
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import yaml

from nst import NstError
from nst.backbones.auto import AUTO, resolve
from nst.backbones.registry import LAYER_PRESETS, default_layers, default_recipe


def field_(default: Any, help: str) -> Any:
    """A config field with its one-line description, which the CLI's --help, the docs and the
    report read from the field itself (dataclasses.fields(...)[i].metadata["help"])."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric config field: at least `low` (above it when `strict`)
    and at most `high`. Every float field must also be finite (_check_types)."""

    low: float
    high: float = math.inf
    strict: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.strict else value >= self.low
        return above and value <= self.high

    def __str__(self) -> str:  # in words: "steps must be at least 1, got 0"
        if self.high < math.inf:
            return f"in [{self.low:g}, {self.high:g}]"
        if self.low == 0:
            return f"{'positive' if self.strict else 'non-negative'} ({self.symbols})"
        return f"{'greater than' if self.strict else 'at least'} {self.low:g}"

    @property
    def symbols(self) -> str:  # "lr must be a finite number >= 0, got nan"
        if self.high < math.inf:
            return str(self)
        return f"{'>' if self.strict else '>='} {self.low:g}"


#: VGG's preset (nst.backbones.registry.LAYER_PRESETS), kept for the modules that name it
VGG_CONTENT_LAYERS, VGG_STYLE_LAYERS = LAYER_PRESETS["nst.backbones.vgg"]
LAYER_KEYS = ("content_layers", "style_layers")
C = TypeVar("C")


@dataclass(frozen=True)
class LossPart:
    """The loss a run minimises, the same fields and meaning for image optimisation and for
    training (nst.perceptual.PerceptualLoss):

        total = alpha * sum_l w_l L_content,l + beta * sum_l w_l L_style,l + gamma * L_tv
    """

    backbone: str = field_(
        "vgg19",
        "network whose features define the losses (see `nst weights list`); auto: vgg19 when "
        "its ImageNet file is present, else efficientnet_lite0",
    )
    weights: str = field_(
        "auto",
        "imagenet | random | auto (imagenet if present, else random, loudly) | PATH to a state dict",
    )
    pooling: Literal["max", "avg"] = field_(
        "max", "VGG pooling; Gatys et al. replaced max by average pooling"
    )
    # empty: the backbone's preset (nst.backbones.registry.LAYER_PRESETS), filled in on build
    content_layers: tuple[str, ...] = field_(
        (), "layers of the content loss; empty: the backbone's preset"
    )
    style_layers: tuple[str, ...] = field_(
        (), "layers of the style loss; empty: the backbone's preset"
    )
    content_layer_weights: tuple[float, ...] = field_(
        (), "one weight per content layer; empty: equal weights"
    )
    style_layer_weights: tuple[float, ...] = field_(
        (), "one weight per style layer; empty: equal weights"
    )
    layer_weight_normalization: Literal["none", "sum", "channels"] = field_(
        "none", "none, sum (layer weights sum to 1) or channels (w_l / C_l^2, then sum to 1)"
    )
    style_normalization: Literal["gram", "gatys"] = field_(
        "gram", "Gram normalisation: gram = F F^T / (C H W); gatys = the paper's 1/(4 N^2 M^2)"
    )
    feature_transform: Literal["none", "softmax"] = field_(
        "none",
        "softmax: each channel's map -> M softmax(F / T) before every loss (Wang et al. 2021, for non-VGG features)",
    )
    feature_temperature: float = field_(1.0, "T of the softmax feature transform (> 0)")
    alpha: float = field_(
        1.0, "content weight: total = alpha * content + beta * style + gamma * tv"
    )
    beta: float = field_(1.0e5, "style weight")
    gamma: float = field_(0.0, "total-variation weight (smoothness)")
    tv: Literal["l1", "l2"] = field_("l2", "total-variation norm: l1 (edges kept) or l2 (smoother)")

    RANGES: ClassVar[dict[str, Range]] = {
        "feature_temperature": Range(0, strict=True),
        **dict.fromkeys(("alpha", "beta", "gamma"), Range(0)),
    }

    def check_layer_weights(self) -> None:
        """One weight per layer, or none."""
        for name in ("content", "style"):
            layers = getattr(self, f"{name}_layers")
            weights = getattr(self, f"{name}_layer_weights")
            if weights and len(weights) != len(layers):
                raise NstError(
                    f"{name}_layer_weights has {len(weights)} values for {len(layers)} "
                    f"{name}_layers: give one weight per layer or none"
                )


@dataclass(frozen=True)
class OptimizerPart:
    """The optimiser and its learning-rate schedule (nst.optimizers), of pixels or weights."""

    optimizer: Literal["adam", "adamw", "sgd", "lbfgs"] = field_(
        "adam",
        "optimiser; lbfgs (image optimisation only): steps are iterations with a line search",
    )
    lr: float = field_(0.02, "learning rate (lbfgs: initial step length)")
    lr_schedule: Literal["constant", "cosine", "inverse"] = field_(
        "constant",
        "constant; cosine from lr to 0 over the steps; inverse lr / (1 + lr_decay t) (AdaIN, StyTr2)",
    )
    lr_decay: float = field_(0.0, "inverse schedule: the decay per step (AdaIN 5e-5, StyTr2 1e-5)")
    warmup: int = field_(0, "steps of linear warm-up from a quarter of lr (StyTr2: 10000)")
    momentum: float = field_(0.9, "SGD momentum")
    weight_decay: float = field_(0.0, "weight decay (adam: L2 in the gradient; adamw: decoupled)")

    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("lr", "lr_decay", "warmup", "momentum", "weight_decay"), Range(0)),
    }


@dataclass(frozen=True)
class RuntimePart:
    """Where and how a run computes (nst.runtime), and its seed."""

    seed: int = field_(0, "seed of every random draw: initialisation, noise, crops, random weights")
    device: str = field_("auto", "cpu | cuda | cuda:N | auto (cuda when available)")
    dtype: Literal["float32", "bfloat16"] = field_(
        "float32", "float32, or bfloat16 autocast (losses reduced in fp32)"
    )


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
        _check_types(self)
        if self.backbone == AUTO:
            object.__setattr__(self, "backbone", resolve(AUTO)[0])
        if not (self.content_layers and self.style_layers):
            # looked up only when needed: a config naming its layers may name any backbone
            # (a test's fake), and an unknown one without layers fails here, by name
            for key, preset in zip(LAYER_KEYS, default_layers(self.backbone), strict=True):
                if not getattr(self, key):
                    object.__setattr__(self, key, preset)
        self.check_layer_weights()
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
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _preset_or_none(backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The backbone's preset layers; none for a backbone outside the registry."""
    try:
        return default_layers(backbone)
    except NstError:
        return (), ()


def field_help(name: str, cls: type = TransferConfig) -> str:
    """The one-line description of a config field (see field_)."""
    return str(next(f.metadata["help"] for f in fields(cls) if f.name == name))


def build_config(cls: type[C], values: Any, kind: str) -> C:
    """The rules every nst config is built by (TransferConfig, TrainConfig): a mapping, no
    unknown key (the valid ones named), each value coerced to its field's type, and a layer key
    written down empty is a mistake (left out, it means the backbone's preset). `kind` names
    the config in messages ("" or "train ")."""
    if not isinstance(values, dict):
        raise NstError(
            f"a {kind or 'transfer '}config must be a mapping, got {type(values).__name__}"
        )
    valid = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise NstError(
            f"unknown {kind}config key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
        )
    hints = typing.get_type_hints(cls)
    coerced = {k: coerce(k, v, hints[k]) for k, v in values.items()}
    for key in LAYER_KEYS:
        if key in coerced and not coerced[key]:
            raise NstError(f"{key} is empty: name at least one layer, or leave the key out")
    return cls(**coerced)


def read_yaml(path: str | Path) -> Any:
    """A config file's contents ({} when empty); an unreadable file is one line."""
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise NstError(f"cannot read config {path}: {err}".splitlines()[0]) from None


def field_names(cls: type = TransferConfig) -> list[str]:
    return [f.name for f in fields(cls)]


def field_type(name: str, cls: type = TransferConfig) -> Any:
    return typing.get_type_hints(cls)[name]


def coerce(key: str, value: Any, hint: Any) -> Any:
    """Convert one plain value to the field's type, or raise an NstError naming key and type."""
    origin = get_origin(hint)
    try:
        if origin is Literal:
            choices = get_args(hint)
            if isinstance(value, str):
                value = value.strip().lower() if isinstance(choices[0], str) else value
            if value not in choices:
                raise ValueError(f"must be one of {', '.join(map(str, choices))}")
            return value
        if origin is tuple:
            item = get_args(hint)[0]
            if isinstance(value, str):
                value = [v for v in (s.strip() for s in value.split(",")) if v]
            if not isinstance(value, list | tuple):
                raise ValueError("must be a list")
            return tuple(coerce(key, v, item) for v in value)
        if hint is bool:
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
                return value.lower() in ("true", "1", "yes")
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
            return value
        if hint is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("must be an integer")
            try:
                return int(value)
            except (TypeError, ValueError, OverflowError):  # "many", inf
                raise ValueError("must be an integer") from None
        if hint is float:
            # YAML 1.1 reads `1e4` as a string; accept it, but reject booleans and words.
            if isinstance(value, bool):
                raise ValueError("must be a number")
            try:
                return float(value)
            except (TypeError, ValueError):
                raise ValueError("must be a number") from None
        if hint is str:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            return value
    except (TypeError, ValueError) as err:
        raise NstError(f"config key {key}={value!r}: {err}") from None
    raise NstError(f"config key {key}: unsupported type {hint}")


def _check_types(config: Any) -> None:  # any frozen config dataclass (TrainConfig too)
    """Coerce each field to its type, and refuse a NaN or infinite number anywhere (before
    any default is filled in: TrainConfig reads a negative alpha as "the method's")."""
    hints = typing.get_type_hints(type(config))
    ranges: dict[str, Range] = getattr(type(config), "RANGES", {})
    for f in fields(config):
        value = getattr(config, f.name)
        coerced = coerce(f.name, value, hints[f.name])
        items = coerced if isinstance(coerced, tuple) else (coerced,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            valid = f" {ranges[f.name].symbols}" if f.name in ranges else ""
            if isinstance(coerced, tuple):
                raise NstError(f"{f.name} must be finite numbers, got {list(coerced)}")
            raise NstError(f"{f.name} must be a finite number{valid}, got {coerced}")
        if coerced != value or type(coerced) is not type(value):
            object.__setattr__(config, f.name, coerced)


def check_ranges(config: Any) -> None:
    """Each numeric field of a config in its class's RANGES, or an NstError naming the field
    and its valid range ("steps must be at least 1, got 0")."""
    for key, valid in type(config).RANGES.items():
        value = getattr(config, key)
        if value not in valid:
            raise NstError(f"{key} must be {valid}, got {value}")


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
