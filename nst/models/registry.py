"""The method registry: every way nst stylises, one `Method` entry each, metadata as data.

A method is what the comparison ranks and a study searches: gatys (the image optimised,
nst.optimize), the feed-forward networks (johnson, adain, stytr: trained by nst.train, then one
pass per image) and external ONNX models (nst.models.external: a published network compared on
the same protocol). Everything the rest of nst asks of a method is a field of its entry: the
training loop, the study fields, the methods spec, export, serving and the CLI never test a
method's name. Adding a network is its model file (a factory decorated `@register("name")`)
and one entry below (or, from another package, an entry point: nst.registry).

The entries are torch-free (listing them is `nst --help`); a network's module is imported when
the network is first built. Options are the factory's keyword arguments (e.g. `width=32`); an
unknown option is a one-line NstError naming the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from nst import NstError
from nst.backbones.registry import default_layers, family
from nst.registry import Registry, plugins

if TYPE_CHECKING:
    from torch import nn

CONTENT = ("content",)
CONTENT_STYLE = ("content", "style")
VGG_ADAIN_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
#: the loss-part options beyond backbone, weights, layers, alpha and beta: nst.perceptual's
#: loss reads them all, another loss those its method lists (Method.loss_options)
LOSS_OPTIONS = (
    "pooling",
    "style_loss",
    "content_loss",
    "projections",
    "max_positions",
    "content_layer_weights",
    "style_layer_weights",
    "layer_weight_normalization",
    "style_normalization",
    "feature_transform",
    "feature_temperature",
    "gamma",
    "tv",
)


@dataclass(frozen=True)
class Method:
    """One method as data (module docstring). `kind`: optimisation (gatys: a TransferConfig),
    network (trained: a TrainConfig; its factory registered by `module`) or onnx (external)."""

    name: str
    kind: Literal["optimisation", "network", "onnx"]
    description: str
    module: str = ""  # network: the module whose `@register(name)` builds it
    #: optimisation: "module:Class" of its config (a from_dict classmethod) and "module:function"
    #: of its run, f(config, content, style, callbacks=(), backbone=None) -> optimize.Result
    config: str = ""
    run: str = ""
    inputs: tuple[str, ...] = CONTENT  # the network's image inputs, in order
    #: factory keyword -> the TrainConfig field it is built from (what a checkpoint records)
    options: dict[str, str] = field(default_factory=dict)
    #: keywords a new training run passes too, not recorded as options (the encoder's weights,
    #: which the checkpoint's state dict holds)
    build_options: dict[str, str] = field(default_factory=dict)
    #: TrainConfig fields this method uses beyond the shared ones (another method's are refused)
    fields: tuple[str, ...] = ()
    #: the values of TrainConfig's "method default" fields ("" or < 0 in the config)
    defaults: dict[str, Any] = field(default_factory=dict)
    loss: str = ""  # the training loss, a name in nst.train.losses.LOSSES (its terms there)
    #: the LOSS_OPTIONS its loss reads; another one set is refused
    loss_options: tuple[str, ...] = ()
    #: backbone family -> the method's (content, style) loss layers on it (an empty part, or
    #: a family not listed: the backbone's preset, nst.backbones.registry.LAYER_PRESETS)
    family_layers: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    #: backbone family -> the layer the encoder is cut at (not listed: the preset's content
    #: layer), for methods with an `encoder_layer` field
    encoder_layers: dict[str, str] = field(default_factory=dict)
    #: the loss network is the encoder, truncated at its layer (adain): content at the encoder
    #: layer, style layers up to it
    encoder_loss: bool = False
    encoder_families: tuple[str, ...] = ()  # the backbone families its encoder may be; () any
    paper: str = ""  # what the method reproduces, as the report and `nst methods` cite it
    #: trained on every image of the `styles` folder at once, its style chosen by name (cin)
    style_bank: bool = False

    def layers_on(self, backbone: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(content, style) loss layers of this method on `backbone`."""
        preset = default_layers(backbone)
        content, style = self.family_layers.get(family(backbone), ((), ()))
        return content or preset[0], style or preset[1]

    def encoder_layer(self, encoder: str) -> str:
        """The layer this method cuts `encoder` at when the config names none."""
        return self.encoder_layers.get(family(encoder)) or default_layers(encoder)[0][0]

    def config_class(self) -> Any:
        """An optimisation method's config class (imported on first use)."""
        return _load(self.config)

    def runner(self) -> Callable[..., Any]:
        """An optimisation method's run function (imported on first use)."""
        return _load(self.run)  # type: ignore[no-any-return]

    @property
    def takes_style(self) -> bool:
        """Whether the style is an input (adain, stytr, gatys) or built into a network trained
        for one style (johnson): the one way nst asks it."""
        return self.kind == "optimisation" or "style" in self.inputs

    @property
    def trained(self) -> bool:
        return self.kind == "network"


GATYS = Method(
    "gatys",
    "optimisation",
    "the image optimised against a loss network",
    inputs=CONTENT_STYLE,
    config="nst.config:TransferConfig",
    run="nst.optimize.transfer:stylize",
    paper="Gatys, Ecker & Bethge, CVPR 2016",
)
STROTSS = Method(
    "strotss",
    "optimisation",
    "the image optimised as a Laplacian pyramid: relaxed optimal transport, self-similarity",
    inputs=CONTENT_STYLE,
    config="nst.config:StrotssConfig",
    run="nst.optimize.strotss:strotss",
    paper="Kolkin, Salavon & Shakhnarovich, CVPR 2019",
)
JOHNSON = Method(
    "johnson",
    "network",
    "one network per style, perceptual loss",
    module="nst.models.johnson",
    options={"width": "width", "output": "output_layer"},
    fields=("width", "style", "style_size"),
    defaults={"backbone": "vgg16", "alpha": 1.0, "beta": 4.0e5},
    loss="perceptual",
    loss_options=LOSS_OPTIONS,
    family_layers={"vgg": (("relu2_2",), ("relu1_2", "relu2_2", "relu3_3", "relu4_3"))},
    paper="Johnson, Alahi & Fei-Fei, ECCV 2016",
)
CIN = Method(
    "cin",
    "network",
    "one network for a bank of styles: conditional instance normalisation",
    module="nst.models.cin",
    options={"width": "width", "styles": "style_names", "output": "output_layer"},
    fields=("width", "style_size"),
    defaults=JOHNSON.defaults,
    loss="style_bank",
    loss_options=LOSS_OPTIONS,
    family_layers=JOHNSON.family_layers,
    style_bank=True,
    paper="Dumoulin, Shlens & Kudlur, ICLR 2017",
)
ADAIN = Method(
    "adain",
    "network",
    "arbitrary style: adaptive instance normalisation",
    module="nst.models.adain",
    inputs=CONTENT_STYLE,
    options={
        "encoder": "encoder",
        "layer": "encoder_layer",
        "decoder_width": "decoder_width",
        "output": "output_layer",
    },
    build_options={"weights": "encoder_weights"},
    fields=("encoder", "encoder_weights", "decoder_width", "encoder_layer"),
    defaults={"encoder": "vgg19", "alpha": 1.0, "beta": 10.0},
    loss="adain",
    family_layers={"vgg": ((), VGG_ADAIN_STYLE)},
    encoder_layers={"vgg": "relu4_1"},
    encoder_loss=True,
    paper="Huang & Belongie, ICCV 2017",
)
STYTR = Method(
    "stytr",
    "network",
    "arbitrary style: a transformer with LoRA encoders",
    module="nst.models.stytr",
    inputs=CONTENT_STYLE,
    options={
        "encoder": "encoder",
        "lora_rank": "lora_rank",
        "lora_alpha": "lora_alpha",
        "lora_targets": "lora_targets",
        "decoder_layers": "decoder_layers",
        "decoder_width": "decoder_width",
        "output": "output_layer",
    },
    build_options={"weights": "encoder_weights"},
    fields=(
        "encoder",
        "encoder_weights",
        "decoder_width",
        "lora_rank",
        "lora_alpha",
        "lora_targets",
        "decoder_layers",
        "identity1",
        "identity2",
    ),
    defaults={"encoder": "deit_small", "backbone": "vgg19", "alpha": 7.0, "beta": 10.0},
    loss="stytr",
    family_layers={
        "vgg": (("relu4_1", "relu5_1"), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"))
    },
    encoder_families=("vit",),
    paper="StyTr2: Deng et al., CVPR 2022",
)
ONNX = Method(
    "onnx",
    "onnx",
    "an external network as an ONNX file (nst.models.external)",
    inputs=CONTENT_STYLE,
)

#: the entries (plug-ins add theirs through the nst.methods entry points)
METHODS: Registry[Method] = Registry(
    "method",
    {"nst.models.registry": ("gatys", "strotss", "johnson", "cin", "adain", "stytr", "onnx")},
)
for _entry in (GATYS, STROTSS, JOHNSON, CIN, ADAIN, STYTR, ONNX):
    METHODS.add(_entry.name, _entry)
#: method name -> its network factory, registered by the method's module
NETWORKS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator of a network factory: `@register("johnson")` (its Method entry names it)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        NETWORKS[name] = factory
        return factory

    return wrap


def get_method(name: str) -> Method:
    """The entry of method `name`; unknown: one NstError naming the registered ones."""
    method = METHODS.get(name)
    if not isinstance(method, Method) or method.name != name:
        raise NstError(
            f"entry point {name!r} of group nst.methods is not an "
            "nst.models.registry.Method of that name"
        )
    return method


def list_methods(kind: str | None = None) -> list[str]:
    """Every method's name (of one `kind` when given); plug-ins are loaded to read their kind."""
    return [n for n in METHODS.names() if kind is None or get_method(n).kind == kind]


def describe_methods() -> str:
    """The registry as a table: name, kind, inputs, where it comes from, what it is."""
    rows = [("method", "kind", "inputs", "from", "description")]
    for name in METHODS.names():
        m = get_method(name)
        source = "nst" if METHODS.builtin(name) else f"plug-in {plugins(METHODS.group)[name].value}"
        inputs = "config.inputs" if m.kind == "onnx" else "+".join(m.inputs)
        paper = f" ({m.paper})" if m.paper else ""
        rows.append((name, m.kind, inputs, source, m.description + paper))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    )


def model_inputs(model: nn.Module) -> tuple[str, ...]:
    """The image inputs of `model`'s forward, in order: ("content",) or ("content", "style")."""
    return tuple(getattr(model, "inputs", CONTENT))


def list_models() -> list[str]:
    """The methods whose network nst builds and trains."""
    return list_methods("network")


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
    method = get_method(name) if name in METHODS else None
    if method is None or not method.trained:
        raise NstError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    if name not in NETWORKS:
        importlib.import_module(method.module)
    if name not in NETWORKS:
        raise NstError(f"{method.module} does not register a network {name!r} (@register)")
    return NETWORKS[name]


def _load(target: str) -> Any:
    """The object "module:name" names, its module imported on first use."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
