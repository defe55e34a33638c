"""The configuration of one feed-forward training run: a frozen, typed dataclass.

Same rules as nst.config.TransferConfig (whose type coercion it reuses): `from_dict` rejects
unknown keys naming the valid ones, and values of the wrong type; the layers a config leaves
empty are filled in when it is built, so a recorded config names the layers a run used.
Johnson et al. 2016's loss layers on VGG: content relu2_2, style relu1_2, relu2_2, relu3_3,
relu4_3; another backbone gets its family's preset (nst.backbones.registry.LAYER_PRESETS).

The training loss, on the loss backbone's features (nst.train.objective):

    L = alpha * L_content + beta * L_style + gamma * L_tv

beta = 4e5 with nst.losses' mean-over-layers style loss is pytorch/examples' fast_neural_style
weighting (content 1e5, style 1e10 summed over the four layers), divided by its content weight.

Every method-specific rule below is data of the method's entry (nst.models.registry.Method:
defaults, fields, vgg_layers, encoder_loss, encoder_families); nothing here names a method.
Methods that take the style as an input (adain, stytr: nst.train.arbitrary) train on (content,
style) pairs, the styles drawn from the folder `styles`. Fields a config leaves at their
"method default" (backbone "", alpha/beta < 0, encoder "", layers ()) are filled per method:

    johnson  loss VGG16, alpha 1, beta 4e5 (above)
    adain    encoder vgg19 at relu4_1; the loss network is the encoder; content at the AdaIN
             target (the encoder layer), style relu1_1..relu4_1 (the preset's style layers up
             to the encoder layer elsewhere); alpha 1, beta = the paper's lambda 10
    stytr    encoder deit_small with LoRA; loss VGG19, content relu4_1, relu5_1, style
             relu1_1..relu5_1 (presets elsewhere); alpha 7, beta 10, identity1 70, identity2 1
             (the released code's weights)

Options of one method given to another (a LoRA rank for adain, a width for stytr) are
refused with the method that owns them named.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from nst import NstError
from nst.backbones.registry import default_layers, family
from nst.config import (
    LAYER_KEYS,
    Range,
    _check_types,
    build_config,
    check_ranges,
    coerce,
    read_yaml,
)
from nst.models.registry import Method, get_method, list_models

#: keys a resumed run may change; any other difference from the checkpoint's config is refused
RESUMABLE_KEYS = ("steps", "checkpoint_every", "sample_every", "log_every", "device")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained network (with the data and the style image)."""

    method: str = "johnson"  # a trained method of nst.models.registry (its Method entry)
    width: int = 32  # johnson: base channel count of the network
    # arbitrary-style networks (module docstring; "" = the method's default)
    encoder: str = ""  # adain: any backbone; stytr: a ViT/DeiT backbone
    encoder_layer: str = ""  # adain: where the encoder is cut ("" = relu4_1 / the preset)
    encoder_weights: str = "auto"  # imagenet | random | auto | path, of the encoder(s)
    decoder_width: float = 1.0  # adain, stytr: scales the decoder's channels
    lora_rank: int = 8  # stytr: LoRA rank r of every target layer
    lora_alpha: float = 16.0  # stytr: LoRA scale alpha (the update is alpha / r * B A)
    lora_targets: tuple[str, ...] = ("qkv",)  # stytr: timm module names adapted with LoRA
    decoder_layers: int = 3  # stytr: transformer decoder layers
    output_layer: Literal["sigmoid", "linear"] = "sigmoid"  # nst.models.decoder.OutputLayer
    identity1: float = 70.0  # stytr: weight of the pixel identity loss
    identity2: float = 1.0  # stytr: weight of the feature identity loss
    # the loss network and its layers (empty: module docstring)
    backbone: str = ""  # "" = the method's default (johnson vgg16, adain the encoder, stytr vgg19)
    weights: str = "auto"  # imagenet | random | auto | path to a state dict
    content_layers: tuple[str, ...] = ()
    style_layers: tuple[str, ...] = ()
    alpha: float = -1.0  # content weight; < 0 = the method's default
    beta: float = -1.0  # style weight; < 0 = the method's default
    gamma: float = 0.0
    tv: Literal["l1", "l2"] = "l2"
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1.0e-3
    # nst.optimizers: constant; cosine (lr -> 0 over the steps); inverse lr / (1 + decay t)
    lr_schedule: Literal["constant", "cosine", "inverse"] = "constant"
    lr_decay: float = 0.0  # inverse: the decay per step (AdaIN 5e-5, StyTr2 1e-5)
    warmup: int = 0  # steps of linear warm-up from a quarter of lr (StyTr2: 10000)
    weight_decay: float = 0.0
    batch_size: int = 4  # per process; the global batch is batch_size * world size
    size: int = 256  # side of the square crops (content and style), pixels
    resize: int = 0  # short side the images are resized to before cropping; 0: `size`
    style_size: int = 0  # long side of the style image; 0: `size`
    steps: int = 40000  # Johnson et al.: 40k iterations of batch 4 (two COCO epochs)
    seed: int = 0
    device: str = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"  # bfloat16: autocast mixed precision
    channels_last: bool = False
    checkpoint_every: int = 1000  # steps; and always at the end
    sample_every: int = 500  # stylise the validation photos every N steps; 0 = off
    log_every: int = 10  # loss curves every N steps
    val_images: int = 4  # fixed validation photos: the first N of the data folder, sorted
    data: str = "data/content"  # folder of content photos (searched recursively)
    style: str = ""  # johnson: the style image
    styles: str = "data/style"  # adain, stytr: folder of style images (searched recursively)

    #: the valid values of the numeric fields (nst.config.check_ranges), checked once the
    #: method defaults are filled in; the others need only be finite
    RANGES: ClassVar[dict[str, Range]] = {
        **dict.fromkeys(("width", "batch_size", "size", "steps", "log_every"), Range(1)),
        **dict.fromkeys(("lora_rank", "decoder_layers"), Range(1)),
        "decoder_width": Range(0, strict=True),
        **dict.fromkeys(("alpha", "beta", "gamma", "identity1", "identity2"), Range(0)),
        **dict.fromkeys(("lr", "lr_decay", "warmup", "weight_decay", "lora_alpha"), Range(0)),
        **dict.fromkeys(("resize", "style_size", "checkpoint_every", "sample_every"), Range(0)),
        "val_images": Range(0),
    }

    def __post_init__(self) -> None:
        _check_types(self)
        if self.method not in list_models():
            raise NstError(
                f"method {self.method!r} is not a trained method; use one of "
                f"{', '.join(list_models())}"
            )
        entry = self.entry
        self._check_method_fields(entry)
        defaults = dict(entry.defaults)
        if entry.encoder_loss:  # the loss network is the encoder
            defaults["backbone"] = self.encoder or defaults["encoder"]
        for key, value in defaults.items():
            current = getattr(self, key)
            if current == "" or (isinstance(current, float) and current < 0):
                object.__setattr__(self, key, value)
        if "encoder_layer" in entry.fields and not self.encoder_layer:
            vgg = family(self.encoder) == "vgg"
            layer = "relu4_1" if vgg else default_layers(self.encoder)[0][0]
            object.__setattr__(self, "encoder_layer", layer)
        if entry.encoder_families and family(self.encoder) not in entry.encoder_families:
            raise NstError(
                f"{self.method} encoder {self.encoder!r} is not a registered "
                f"{'/'.join(entry.encoder_families)} backbone; use one of {_of_families(entry)}"
            )
        if not (self.content_layers and self.style_layers):
            for key, preset in zip(LAYER_KEYS, self._layer_presets(entry), strict=True):
                if not getattr(self, key):
                    object.__setattr__(self, key, preset)
        check_ranges(self)
        if self.resize and self.resize < self.size:
            raise NstError(
                f"resize {self.resize} is smaller than the crop size {self.size}: give 0 (resize "
                f"to the crop size) or at least {self.size}"
            )
        if self.warmup >= self.steps and self.warmup:
            raise NstError(f"warmup {self.warmup} must be fewer steps than steps {self.steps}")

    @property
    def entry(self) -> Method:
        """The method's registry entry (nst.models.registry)."""
        return get_method(self.method)

    def _check_method_fields(self, entry: Method) -> None:
        """A method-specific field set away from its default for another method is an error."""
        for f in fields(self):
            owners = [m for m in list_models() if f.name in get_method(m).fields]
            if owners and f.name not in entry.fields and getattr(self, f.name) != f.default:
                raise NstError(
                    f"{f.name} is an option of --method {' or '.join(owners)}, not "
                    f"{self.method}: drop it (or choose that method)"
                )

    def _layer_presets(self, entry: Method) -> tuple[tuple[str, ...], tuple[str, ...]]:
        vgg = family(self.backbone) == "vgg"
        preset = default_layers(self.backbone)
        content, style = (
            (entry.vgg_layers[0] or preset[0], entry.vgg_layers[1] or preset[1]) if vgg else preset
        )
        if not entry.encoder_loss:
            return content, style
        if self.backbone == self.encoder:  # the loss network is the (truncated) encoder
            style = tuple(s for s in style if _depth(s) <= _depth(self.encoder_layer))
        return (self.encoder_layer,), style or (self.encoder_layer,)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from plain values (YAML, JSON, CLI), coercing and checking each one."""
        return build_config(cls, values, "train ")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        return cls.from_dict(read_yaml(path))

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes`, validated like from_dict."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain values (tuples become lists) that `from_dict` reads back to an equal config."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @property
    def model_options(self) -> dict[str, Any]:
        """The options of nst.models.get_model(method, ...) that the network records (the
        encoder weights, which its state dict holds, are passed separately: build_options)."""
        return {k: _plain(getattr(self, f)) for k, f in self.entry.options.items()}

    @property
    def build_options(self) -> dict[str, Any]:
        """model_options plus the entry's build-only options: what a new training run builds."""
        extra = {k: getattr(self, f) for k, f in self.entry.build_options.items()}
        return {**self.model_options, **extra}

    @property
    def takes_style(self) -> bool:
        """The network takes the style as an input (trained on a folder of styles)."""
        return self.entry.takes_style


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _of_families(entry: Method) -> str:
    from nst.backbones.registry import list_backbones

    return ", ".join(n for n in list_backbones() if family(n) in entry.encoder_families)


def _depth(layer: str) -> tuple[int, ...]:
    """relu4_1 -> (4, 1), stage2 -> (2,), block8 -> (8,), stem -> (-1,): depth order in a family."""
    return tuple(int(n) for n in re.findall(r"\d+", layer)) or (-1,)


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def field_type(name: str) -> Any:
    return typing.get_type_hints(TrainConfig)[name]


def resumed_config(saved: TrainConfig, requested: dict[str, Any]) -> TrainConfig:
    """The config a resumed run continues with: the checkpoint's, with the RESUMABLE_KEYS the
    user gave; any other key given with a different value is an NstError naming it."""
    values = saved.to_dict()
    changed = sorted(
        k for k, v in requested.items() if k not in RESUMABLE_KEYS and _differs(saved, k, v)
    )
    if changed:
        shown = ", ".join(f"{k}={getattr(saved, k)!r} (asked {requested[k]!r})" for k in changed)
        raise NstError(
            f"--resume continues the checkpoint's run, which has {shown}; drop these options, "
            f"or start a new run with another --out (resumable changes: {', '.join(RESUMABLE_KEYS)})"
        )
    values.update({k: v for k, v in requested.items() if k in RESUMABLE_KEYS})
    return TrainConfig.from_dict(values)


def _differs(saved: TrainConfig, key: str, value: Any) -> bool:
    if key not in field_names():
        return True
    return bool(coerce(key, value, field_type(key)) != getattr(saved, key))
