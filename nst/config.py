"""The configuration of one style transfer: a frozen, typed dataclass built from dicts or YAML.

`TransferConfig.from_dict` rejects unknown keys (naming the valid ones) and values of the
wrong type, so a typo in an experiment file fails loudly instead of silently using a default.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from nst import NstError

VGG_CONTENT_LAYERS = ("relu4_2",)
VGG_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@dataclass(frozen=True)
class TransferConfig:
    """Everything that determines the result of `nst.optimize.stylize`."""

    # the network whose features define the losses
    backbone: str = "vgg19"
    weights: str = "auto"  # imagenet | random | auto | path to a state dict
    pooling: Literal["max", "avg"] = "max"  # Gatys et al. replaced max by average pooling
    content_layers: tuple[str, ...] = VGG_CONTENT_LAYERS
    style_layers: tuple[str, ...] = VGG_STYLE_LAYERS
    content_layer_weights: tuple[float, ...] = ()  # empty: equal weights
    style_layer_weights: tuple[float, ...] = ()  # empty: equal weights
    style_normalization: Literal["gram", "gatys"] = "gram"
    # total loss = alpha * content + beta * style + gamma * tv
    alpha: float = 1.0
    beta: float = 1.0e5
    gamma: float = 0.0
    tv: Literal["l1", "l2"] = "l2"
    # the optimiser of the image pixels
    optimizer: Literal["adam", "adamw", "sgd", "lbfgs"] = "adam"
    lr: float = 0.02
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: lr -> 0 over the steps
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0  # adamw/sgd
    lbfgs_history: int = 100
    lbfgs_line_search: Literal["strong_wolfe", "none"] = "strong_wolfe"
    # where the optimisation starts
    init: Literal["content", "style", "noise", "blend"] = "content"
    init_blend: float = 0.5  # content share of the blend init (rest is seeded noise)
    steps: int = 300
    stop_rtol: float = 0.0  # stop when the total loss improved by less than this over 10 steps
    size: int = 256  # long side of the content image, pixels
    seed: int = 0
    device: str = "cpu"
    dtype: Literal["float32", "bfloat16"] = "float32"
    # patch-grid artefact mitigation for ViT backbones (nst.optimize.controls.shifts); 0 = off
    jitter: int = 0  # roll the image by a seeded random shift of 0..N px per step
    shift_average: int = 0  # average features over K fixed sub-patch shifts
    # artistic controls (nst.optimize.controls.color, nst.optimize.pyramid, nst.optimize.controls.gradnorm, nst.optimize.controls.masks, nst.optimize.controls.frames)
    style_blend: tuple[float, ...] = ()  # one weight per style image; empty: equal
    style_scale: float = 1.0  # style long side = style_scale * size
    color: Literal["none", "luminance", "histogram", "histogram_post"] = "none"
    pyramid: tuple[int, ...] = ()  # stage sizes, e.g. 256,512; the last is the output size
    pyramid_steps: tuple[int, ...] = ()  # steps per pyramid stage; empty: `steps` each
    normalize_gradients: bool = False  # each loss term's pixel gradient divided by its L1 norm
    layer_weight_normalization: Literal["none", "sum", "channels"] = "none"
    mask: str = ""  # grey image: white = stylise, black = keep the content
    frame_every: int = 0  # capture a frame every k steps (Result.frames); 0 = off

    def __post_init__(self) -> None:
        _check_types(self)
        for name in ("content", "style"):
            layers = getattr(self, f"{name}_layers")
            weights = getattr(self, f"{name}_layer_weights")
            if not layers:
                raise NstError(f"{name}_layers is empty: name at least one layer, e.g. relu4_2")
            if weights and len(weights) != len(layers):
                raise NstError(
                    f"{name}_layer_weights has {len(weights)} values for {len(layers)} "
                    f"{name}_layers: give one weight per layer or none"
                )
        for key in ("steps", "size"):
            if getattr(self, key) < 1:
                raise NstError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("alpha", "beta", "gamma", "lr"):
            if getattr(self, key) < 0:
                raise NstError(f"{key} must be non-negative, got {getattr(self, key)}")
        for key in ("jitter", "shift_average"):
            if getattr(self, key) < 0:
                raise NstError(f"{key} must be non-negative, got {getattr(self, key)}")
        _check_controls(self)
        if not 0.0 <= self.init_blend <= 1.0:
            raise NstError(f"init_blend must be in [0, 1], got {self.init_blend}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TransferConfig:
        """Build a config from plain values (YAML, JSON, CLI), coercing and checking each one."""
        if not isinstance(values, dict):
            raise NstError(f"a transfer config must be a mapping, got {type(values).__name__}")
        valid = field_names()
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise NstError(
                f"unknown config key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}"
            )
        hints = typing.get_type_hints(cls)
        return cls(**{k: coerce(k, v, hints[k]) for k, v in values.items()})

    @classmethod
    def from_yaml(cls, path: str | Path) -> TransferConfig:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise NstError(f"cannot read config {path}: {err}".splitlines()[0]) from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> TransferConfig:
        return TransferConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples become lists) that `from_dict` reads back to an equal config."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def field_names() -> list[str]:
    return [f.name for f in fields(TransferConfig)]


def field_type(name: str) -> Any:
    return typing.get_type_hints(TransferConfig)[name]


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
            return int(value)
        if hint is float:
            # YAML 1.1 reads `1e4` as a string; accept it, but reject booleans and words.
            if isinstance(value, bool):
                raise ValueError("must be a number")
            return float(value)
        if hint is str:
            if not isinstance(value, str):
                raise ValueError("must be a string")
            return value
    except (TypeError, ValueError) as err:
        raise NstError(f"config key {key}={value!r}: {err}") from None
    raise NstError(f"config key {key}: unsupported type {hint}")


def _check_types(config: TransferConfig) -> None:
    hints = typing.get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        coerced = coerce(f.name, value, hints[f.name])
        if coerced != value or type(coerced) is not type(value):
            object.__setattr__(config, f.name, coerced)


def _check_controls(config: TransferConfig) -> None:
    """Ranges of the artistic-control fields (nst.optimize.controls.color, nst.optimize.pyramid, ...)."""
    if any(w < 0 for w in config.style_blend) or (
        config.style_blend and sum(config.style_blend) <= 0
    ):
        raise NstError(
            f"style_blend {list(config.style_blend)}: weights must be >= 0 with a positive sum"
        )
    if config.style_scale <= 0:
        raise NstError(f"style_scale must be positive, got {config.style_scale}")
    if any(s < 1 for s in config.pyramid) or any(n < 1 for n in config.pyramid_steps):
        raise NstError("pyramid sizes and pyramid_steps must be at least 1")
    if config.pyramid_steps and len(config.pyramid_steps) != len(config.pyramid):
        raise NstError(
            f"pyramid_steps has {len(config.pyramid_steps)} values for {len(config.pyramid)} "
            "pyramid stages: give one per stage or none"
        )
    if config.frame_every < 0:
        raise NstError(f"frame_every must be non-negative, got {config.frame_every}")
