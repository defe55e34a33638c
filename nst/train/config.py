"""The configuration of one feed-forward training run: a frozen, typed dataclass.

Composed like nst.config.TransferConfig from the shared parts (LossPart, OptimizerPart,
RuntimePart: one meaning per field in every command) and built by the same rules: `from_dict`
rejects unknown keys naming the valid ones, and values of the wrong type; the layers a config
leaves empty are filled in when it is built, so a recorded config names the layers a run used.
Johnson et al. 2016's loss layers on VGG: content relu2_2, style relu1_2, relu2_2, relu3_3,
relu4_3; another backbone gets its family's preset (nst.backbones.registry.LAYER_PRESETS).

A per-style network's loss is image optimisation's (nst.perceptual, via nst.train.perceptual):

    L = alpha * L_content + beta * L_style + gamma * L_tv

Methods with a loss of their own (adain, stytr: nst.train.arbitrary) use the backbone, the
layers and the weights alpha, beta of the loss part; the loss-part fields their loss does not
read (Method.loss_options: layer weights, feature transform, ...) are refused when set.

beta = 4e5 with nst.losses' mean-over-layers style loss is pytorch/examples' fast_neural_style
weighting (content 1e5, style 1e10 summed over the four layers), divided by its content weight.

Every method-specific rule below is data of the method's entry (nst.models.registry.Method:
defaults, fields, family_layers, encoder_layers, encoder_loss, encoder_families); nothing
here names a method or tests a backbone's family.
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

import re
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from nst import NstError
from nst.backbones.registry import family
from nst.models.registry import LOSS_OPTIONS, Method, get_method, list_models
from nst.parts import (
    LAYER_KEYS,
    LossPart,
    OptimizerPart,
    Range,
    RuntimePart,
    build_config,
    check_ranges,
    check_types,
    coerce,
    field_,
    plain,
    plain_dict,
    read_yaml,
)

#: keys a resumed run may change; any other difference from the checkpoint's config is refused
RESUMABLE_KEYS = (
    "steps",
    "checkpoint_every",
    "sample_every",
    "log_every",
    "device",
    "compile",
    "workers",
)


@dataclass(frozen=True)
class MethodPart:
    """The trained method and the fields of its own (Method.fields), first in a TrainConfig."""

    method: str = field_("johnson", "the trained method (nst methods --list)")
    width: int = field_(32, "johnson: base channel count of the network")
    encoder: str = field_("", "adain: any backbone; stytr: a ViT/DeiT; empty: the method's")
    encoder_layer: str = field_(
        "", "adain: the layer the encoder is cut at; empty: relu4_1 on VGG, else the preset"
    )
    encoder_weights: str = field_("auto", "imagenet | random | auto | PATH, of the encoder(s)")
    decoder_width: float = field_(1.0, "adain, stytr: scales the decoder's channels")
    lora_rank: int = field_(8, "stytr: LoRA rank r of every target layer")
    lora_alpha: float = field_(16.0, "stytr: LoRA scale (the update is lora_alpha / r * B A)")
    lora_targets: tuple[str, ...] = field_(("qkv",), "stytr: timm module names adapted by LoRA")
    decoder_layers: int = field_(3, "stytr: transformer decoder layers")
    output_layer: Literal["sigmoid", "linear"] = field_(
        "sigmoid", "the networks' last layer (nst.models.decoder.OutputLayer)"
    )
    identity1: float = field_(70.0, "stytr: weight of the pixel identity loss")
    identity2: float = field_(1.0, "stytr: weight of the feature identity loss")


@dataclass(frozen=True)
class TrainConfig(RuntimePart, OptimizerPart, LossPart, MethodPart):
    """Everything that determines a trained network (with the data and the style image): the
    method and its own fields (nst.models.registry.Method.fields), the loss, optimiser and
    runtime parts shared with TransferConfig (nst.parts), then the training run's."""

    # the shared parts' fields whose default is the method's (module docstring)
    backbone: str = field_(
        "", "loss network; empty: the method's (johnson vgg16, adain its encoder, stytr vgg19)"
    )
    alpha: float = field_(-1.0, "content weight; negative: the method's default")
    beta: float = field_(-1.0, "style weight; negative: the method's default")
    lr: float = field_(1.0e-3, "learning rate of the network's weights")
    device: str = field_("auto", "cpu | cuda | cuda:N | auto (cuda when available)")
    # fp16 trains (a gradient scaler keeps its gradients in range); an optimised image has none
    dtype: Literal["float32", "bfloat16", "float16"] = field_(  # type: ignore[assignment]
        "float32", "float32; bfloat16 or float16 autocast (float16 with a gradient scaler)"
    )
    # the training run
    batch_size: int = field_(4, "images per step and process (global batch: x world size)")
    size: int = field_(256, "side of the square training crops (content and style), pixels")
    resize: int = field_(0, "short side the images are resized to before cropping; 0: size")
    style_size: int = field_(0, "johnson: long side of the style image; 0: size")
    steps: int = field_(40000, "training steps (Johnson et al.: 40k of batch 4)")
    channels_last: bool = field_(False, "channels-last memory format (faster convs on GPUs)")
    compile: bool = field_(False, "torch.compile the network (first steps compile it)")
    workers: int = field_(0, "DataLoader processes loading batches ahead; 0: in the loop")
    deterministic: bool = field_(
        False, "deterministic algorithms, no cuDNN autotuning: the same bytes twice on a GPU"
    )
    checkpoint_every: int = field_(1000, "steps between checkpoints (and always at the end)")
    sample_every: int = field_(500, "stylise the validation photos every N steps; 0: off")
    log_every: int = field_(10, "steps between loss-curve rows")
    val_images: int = field_(4, "fixed validation photos: the first N of the data folder")
    data: str = field_("data/content", "folder of content photos (searched recursively)")
    style: str = field_("", "johnson: the style image")
    styles: str = field_(
        "data/style", "adain, stytr, cin: folder of style images (recursive; cin's bank)"
    )

    #: the valid values of the numeric fields (nst.parts.check_ranges), checked once the
    #: method defaults are filled in; the others need only be finite
    RANGES: ClassVar[dict[str, Range]] = {
        **LossPart.RANGES,
        **OptimizerPart.RANGES,
        **dict.fromkeys(("width", "batch_size", "size", "steps", "log_every"), Range(1)),
        **dict.fromkeys(("lora_rank", "decoder_layers"), Range(1)),
        "decoder_width": Range(0, strict=True),
        **dict.fromkeys(("identity1", "identity2", "lora_alpha"), Range(0)),
        **dict.fromkeys(("resize", "style_size", "checkpoint_every", "sample_every"), Range(0)),
        "workers": Range(0),
        "val_images": Range(0),
    }

    def __post_init__(self) -> None:
        check_types(self)
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
            object.__setattr__(self, "encoder_layer", entry.encoder_layer(self.encoder))
        if entry.encoder_families and family(self.encoder) not in entry.encoder_families:
            raise NstError(
                f"{self.method} encoder {self.encoder!r} is not a registered "
                f"{'/'.join(entry.encoder_families)} backbone; use one of {_of_families(entry)}"
            )
        if not (self.content_layers and self.style_layers):
            for key, preset in zip(LAYER_KEYS, self._layer_presets(entry), strict=True):
                if not getattr(self, key):
                    object.__setattr__(self, key, preset)
        self.check_loss()
        check_ranges(self)
        if self.optimizer == "lbfgs":
            raise NstError(
                "optimizer lbfgs optimises images (nst transfer), not networks: use adam, "
                "adamw or sgd"
            )
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
        """A method-specific field set away from its default for another method is an error,
        and so is a loss-part option the method's loss does not read."""
        entries = [get_method(m) for m in list_models()]
        for f in fields(self):
            unread = f.name in LOSS_OPTIONS and f.name not in entry.loss_options
            if unread and getattr(self, f.name) != f.default:
                readers = [m.name for m in entries if f.name in m.loss_options]
                raise NstError(
                    f"{f.name} is not read by the {entry.loss} loss of --method "
                    f"{self.method}: drop it (it is read by {' and '.join(readers)})"
                )
            owners = [m.name for m in entries if f.name in m.fields]
            if owners and f.name not in entry.fields and getattr(self, f.name) != f.default:
                raise NstError(
                    f"{f.name} is an option of --method {' or '.join(owners)}, not "
                    f"{self.method}: drop it (or choose that method)"
                )

    def _layer_presets(self, entry: Method) -> tuple[tuple[str, ...], tuple[str, ...]]:
        content, style = entry.layers_on(self.backbone)
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
        return plain_dict(self)

    @property
    def model_options(self) -> dict[str, Any]:
        """The options of nst.models.get_model(method, ...) that the network records (the
        encoder weights, which its state dict holds, are passed separately: build_options)."""
        return {k: plain(getattr(self, f)) for k, f in self.entry.options.items()}

    @property
    def build_options(self) -> dict[str, Any]:
        """model_options plus the entry's build-only options: what a new training run builds."""
        extra = {k: getattr(self, f) for k, f in self.entry.build_options.items()}
        return {**self.model_options, **extra}

    @property
    def style_names(self) -> list[str]:
        """A style bank's names (cin): the images under `styles`, as paths relative to it."""
        from nst.train.data import find_images  # torch: only where a bank is built

        root = Path(self.styles)
        return [p.relative_to(root).as_posix() for p in find_images(root)]

    @property
    def takes_style(self) -> bool:
        """The network takes the style as an input (trained on a folder of styles)."""
        return self.entry.takes_style


def _of_families(entry: Method) -> str:
    from nst.backbones.registry import list_backbones

    return ", ".join(n for n in list_backbones() if family(n) in entry.encoder_families)


def _depth(layer: str) -> tuple[int, ...]:
    """relu4_1 -> (4, 1), stage2 -> (2,), block8 -> (8,), stem -> (-1,): depth order in a family."""
    return tuple(int(n) for n in re.findall(r"\d+", layer)) or (-1,)


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
    if key not in {f.name for f in fields(TrainConfig)}:
        return True
    return bool(coerce(key, value, typing.get_type_hints(TrainConfig)[key]) != getattr(saved, key))
