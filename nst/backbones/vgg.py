"""VGG16 and VGG19 (Simonyan & Zisserman, 2015) with named layers, as used by Gatys et al.

Layer names follow the paper: conv{block}_{index}, relu{block}_{index}, pool{block}.
ReLUs are not in-place, so conv and relu layers are distinct features. Pooling can be max
(the trained network) or average (what Gatys et al. used for nicer gradients).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from nst import NstError
from nst.backbones.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Backbone,
    WeightsInfo,
    file_weights_info,
    load_state_dict_file,
    random_weights,
    resolve_weights,
    seeded,
)
from nst.backbones.registry import register

_TORCHVISION = {
    "vgg16": ("D", torchvision.models.VGG16_Weights.IMAGENET1K_V1),
    "vgg19": ("E", torchvision.models.VGG19_Weights.IMAGENET1K_V1),
}


def torchvision_features(arch: str) -> nn.Sequential:
    """torchvision's VGG feature stack alone, initialised as torchvision does (Kaiming normal,
    fan-out); building the classifier too would cost 100M parameters we never use."""
    features = make_layers(cfgs[_TORCHVISION[arch][0]])
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return features


def imagenet_url(arch: str) -> str:
    """torchvision's ImageNet file, e.g. https://download.pytorch.org/models/vgg19-dcbb9e9d.pth."""
    return str(_TORCHVISION[arch][1].url)


def imagenet_cache_file(arch: str) -> Path:
    """Where torchvision keeps the ImageNet file: $TORCH_HOME/hub/checkpoints/<name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / imagenet_url(arch).rsplit("/", 1)[-1]


def layer_names(features: nn.Sequential) -> list[str]:
    names, block, index = [], 1, 1
    for module in features:
        if isinstance(module, nn.Conv2d):
            names.append(f"conv{block}_{index}")
        elif isinstance(module, nn.ReLU):
            names.append(f"relu{block}_{index}")
            index += 1
        elif isinstance(module, nn.MaxPool2d):
            names.append(f"pool{block}")
            block, index = block + 1, 1
    return names


class VGG(Backbone):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, arch: str, features: nn.Sequential, pooling: str, weights_info: WeightsInfo):
        super().__init__()
        self.name = arch
        self.weights_info = weights_info
        self.layer_names = tuple(layer_names(features))
        modules: list[nn.Module] = []
        for module in features:
            if isinstance(module, nn.ReLU):
                module = nn.ReLU(inplace=False)
            elif isinstance(module, nn.MaxPool2d) and pooling == "avg":
                module = nn.AvgPool2d(kernel_size=2, stride=2)
            modules.append(module)
        self.layers = nn.ModuleList(modules)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.freeze()

    def truncate(self, layer: str) -> VGG:
        """Keep the layers up to `layer`."""
        self.check_layers([layer])
        keep = self.layer_names.index(layer) + 1
        self.layers = nn.ModuleList(list(self.layers)[:keep])
        self.layer_names = self.layer_names[:keep]
        return self

    def features(
        self, x: torch.Tensor, layers: tuple[str, ...] | list[str]
    ) -> dict[str, torch.Tensor]:
        """Run the network up to the deepest requested layer and return those layers' outputs."""
        self.check_layers(layers)
        wanted = set(layers)
        last = max(self.layer_names.index(layer) for layer in layers)
        out: dict[str, torch.Tensor] = {}
        h = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        for i in range(last + 1):
            h = self.layers[i](h)
            if self.layer_names[i] in wanted:
                out[self.layer_names[i]] = h
        return {layer: out[layer] for layer in layers}

    def min_side(self, layers: tuple[str, ...] | list[str]) -> int:
        """2^k for the k 2x2 poolings up to the deepest requested layer: each floors a side to
        half, and a pooling needs at least 2 px (pool5 needs 32 px, relu5_1 16)."""
        last = max(self.layer_names.index(layer) for layer in layers)
        return 2 ** sum(name.startswith("pool") for name in self.layer_names[: last + 1])


def build_vgg(arch: str, weights: str = "auto", pooling: str = "max", seed: int = 0) -> VGG:
    if pooling not in ("max", "avg"):
        raise NstError(f"pooling {pooling!r}: use max or avg")
    kind, path = resolve_weights(weights, arch, imagenet_cache_file(arch))
    if kind == "random":
        features = seeded(seed, lambda: torchvision_features(arch))
        return VGG(arch, features, pooling, random_weights(arch, seed, features))
    assert path is not None
    state = load_state_dict_file(path)
    features = make_layers(cfgs[_TORCHVISION[arch][0]])
    features_state = {
        k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")
    }
    missing = set(features.state_dict()) - set(features_state)
    if missing:
        raise NstError(
            f"{path}: not a torchvision {arch} state dict (missing {', '.join(sorted(missing)[:3])} "
            "under features.)"
        )
    try:
        features.load_state_dict(features_state)
    except RuntimeError as err:
        raise NstError(
            f"{path}: does not fit {arch}: {str(err).splitlines()[-1].strip()}"
        ) from None
    info = file_weights_info(kind, path)
    return VGG(arch, features, pooling, info)


@register("vgg16")
def vgg16(weights: str = "auto", pooling: str = "max", seed: int = 0) -> VGG:
    return build_vgg("vgg16", weights, pooling, seed)


@register("vgg19")
def vgg19(weights: str = "auto", pooling: str = "max", seed: int = 0) -> VGG:
    return build_vgg("vgg19", weights, pooling, seed)
