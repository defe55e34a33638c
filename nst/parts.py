"""The parts every nst config is composed of, and the rules each field is declared and
checked by.

A config (nst.config.TransferConfig, nst.train.config.TrainConfig) is a frozen dataclass
built from shared parts, so one field has one meaning and one description in every command:

    LossPart       the loss (nst.perceptual): backbone, weights, layers and their weights and
                   normalisation, feature transform, Gram normalisation, alpha, beta, gamma, tv
    OptimizerPart  the optimiser and its lr schedule (nst.optimizers)
    RuntimePart    seed, device, dtype (nst.runtime)

Every field is declared with `field_(default, help)`: its one-line description is what the
CLI's --help, the docs and the report show. `build_config` is how every config is built from
plain values (YAML, JSON, the CLI): a mapping, no unknown key (the valid ones named), each value
coerced to its field's type (`coerce`), every number finite and in its class's RANGES.
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
from nst.registry import Registry

LAYER_KEYS = ("content_layers", "style_layers")
#: the style representations and content losses a LossPart may name (nst.perceptual
#: registers them; plug-ins through the entry-point groups nst.style_losses, nst.content_losses)
STYLE_LOSSES: Registry[Any] = Registry(
    "style_loss", {"nst.perceptual": ("gram", "moments", "sliced_wasserstein", "relaxed_emd")}
)
CONTENT_LOSSES: Registry[Any] = Registry(
    "content_loss", {"nst.perceptual": ("mse", "self_similarity")}
)
C = TypeVar("C")


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
    style_loss: str = field_(
        "gram",
        "style representation matched: gram (Gatys) | moments (mean, std: AdaIN) | "
        "sliced_wasserstein (Heitz 2021) | relaxed_emd (STROTSS)",
    )
    content_loss: str = field_(
        "mse", "content loss: mse (feature difference) | self_similarity (STROTSS)"
    )
    projections: int = field_(32, "sliced_wasserstein: random directions per layer (seeded)")
    max_positions: int = field_(
        1024, "relaxed_emd, self_similarity: positions per layer, a seeded sample (STROTSS: 1024)"
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
        **dict.fromkeys(("projections", "max_positions"), Range(1)),
        **dict.fromkeys(("alpha", "beta", "gamma"), Range(0)),
    }

    def check_loss(self) -> None:
        """Registered losses, Gatys normalisation only of Grams, one weight per layer or none."""
        for key, registry in (("style_loss", STYLE_LOSSES), ("content_loss", CONTENT_LOSSES)):
            if getattr(self, key) not in registry:
                raise NstError(
                    f"{key} {getattr(self, key)!r} is not registered; use one of "
                    f"{', '.join(registry.names())}"
                )
        if self.style_normalization == "gatys" and self.style_loss != "gram":
            raise NstError(
                f"style_normalization gatys rescales Gram matrices; style_loss {self.style_loss} "
                "has none: use style_normalization gram"
            )
        self.check_layer_weights()

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


def plain(value: Any) -> Any:
    """A config value as YAML and JSON hold it (tuples become lists)."""
    return list(value) if isinstance(value, tuple) else value


def plain_dict(config: Any) -> dict[str, Any]:
    """A config's plain values, which its class's from_dict reads back to an equal config."""
    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def read_yaml(path: str | Path) -> Any:
    """A config file's contents ({} when empty); an unreadable file is one line."""
    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise NstError(f"cannot read config {path}: {err}".splitlines()[0]) from None


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


def check_types(config: Any) -> None:  # any frozen config dataclass (TrainConfig too)
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
