"""The backbone registry: a name -> a factory of Backbones (`@register("vgg19")`).

The names are declared here with the module that registers them (nst.registry: one registry
mechanism for backbones, methods and losses; plug-ins through the entry-point group
nst.backbones), so listing them (the CLI's choices, `nst --help`) imports no torch; a family's
module is imported when one of its backbones is first built. tests/test_startup.py checks each module registers exactly the
names declared for it. Each family also declares its default content and style layers
(LAYER_PRESETS), torch-free too, so that the config can fill them in without building a network,
and its default recipe (RECIPES): the settings a run on that family gets when it names none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nst import NstError
from nst.registry import Registry, plugins

if TYPE_CHECKING:
    from nst.backbones.base import Backbone

#: module -> the backbones it registers
FAMILIES: dict[str, tuple[str, ...]] = {
    "nst.backbones.vgg": ("vgg16", "vgg19"),
    "nst.backbones.efficientnet": (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    ),
    "nst.backbones.vit": (
        "deit_tiny",
        "deit_small",
        "deit_base",
        "deit_small_distilled",
        "vit_small",
    ),
}


def family(name: str) -> str:
    """The family a backbone belongs to ("vgg", "efficientnet", "vit"; a plug-in's: its
    package), "" when unregistered: networks of one family share an architecture and
    training, so one judging another's features is not an independent judge
    (nst.metrics.features)."""
    for module, names in FAMILIES.items():
        if name in names:
            return module.rsplit(".", 1)[1]
    plugin = plugins(BACKBONES.group).get(name)
    return plugin.value.split(".")[0].split(":")[0] if plugin else ""


#: module -> (content layers, style layers) of its backbones, used when a config names none.
#: VGG: Gatys et al. 2016 (relu4_2 content, the first ReLU of each block for style).
#: ViT/DeiT (12 blocks): a late-middle block for content, every other early block for style,
#: the depths at which the patch-token Grams still carry texture rather than class layout.
#: EfficientNet-Lite: stage3 (stride 16, like relu4_2) for content; the stem and stages 0-4
#: (strides 2..16, like relu1_1..relu4_1/relu5_1) for style.
LAYER_PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "nst.backbones.vgg": (("relu4_2",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")),
    "nst.backbones.vit": (("block8",), ("block1", "block3", "block5", "block7")),
    "nst.backbones.efficientnet": (
        ("stage3",),
        ("stem", "stage0", "stage1", "stage2", "stage3", "stage4"),
    ),
}
#: module -> the TransferConfig fields a run on its backbones starts from (nst.config
#: TransferConfig.recipe); fields a family leaves out are the dataclass defaults.
#: EfficientNet-Lite (docs/transfer.md "Default recipes"): what experiments/recipe.yaml found on the
#: pretrained Lite0 (a grid of optimiser x steps x style ratio, judged by the held-out Lite2):
#: L-BFGS at lr 1 from the photo left a lower held-out style distance than Adam at every step
#: budget, 100 steps the lowest (0.588-0.594; 50 steps 0.595, 300 steps 0.63); the style ratio
#: did not matter within 1e3..1e5, so beta stays at 1e4. 100 steps at 256 px take 5-7 s on 2
#: cores, 2.17x faster per image than the tutorial's 300 Adam steps (benchmarks/bench_recipe).
#: VGG and ViT: the dataclass defaults (the PyTorch tutorial's Adam at lr 0.02, 300 steps), not
#: re-tuned: no ImageNet VGG or DeiT file exists on the machines this was measured on.
RECIPES: dict[str, dict[str, object]] = {
    "nst.backbones.vgg": {},
    "nst.backbones.vit": {},
    "nst.backbones.efficientnet": {
        "optimizer": "lbfgs",
        "lr": 1.0,
        "steps": 100,
        "beta": 1.0e4,
        "gamma": 0.0,
        "init": "content",
        "size": 256,
    },
}
#: name -> the factory of a Backbone (the module's `@register`; plug-ins: nst.registry)
BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone", FAMILIES)
register = BACKBONES.register


def list_backbones() -> list[str]:
    return BACKBONES.names()


def _module(name: str) -> str:
    """The family module of a built-in backbone; "" for a plug-in's."""
    if name not in BACKBONES:
        raise NstError(f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}")
    return BACKBONES.module.get(name, "")


def default_layers(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(content layers, style layers) a config uses for backbone `name` when it names none
    (a plug-in's factory declares them as its `layer_presets` attribute)."""
    module = _module(name)
    if module:
        return LAYER_PRESETS[module]
    presets = getattr(BACKBONES.get(name), "layer_presets", None)
    if presets is None:
        raise NstError(
            f"plug-in backbone {name!r} declares no layer presets: name content_layers and "
            "style_layers"
        )
    return tuple(presets[0]), tuple(presets[1])


def default_recipe(name: str) -> dict[str, object]:
    """The TransferConfig fields backbone `name`'s family runs with when a run names none."""
    module = _module(name)
    return dict(RECIPES[module]) if module else {}


def get_backbone(name: str, weights: str = "auto", **options: object) -> Backbone:
    """Build a registered backbone. weights: imagenet | random | auto | path to a state dict."""
    return BACKBONES.get(name)(weights=weights, **options)
