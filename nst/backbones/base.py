"""What every backbone shares: the features() contract, frozen weights, weight resolution."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nst import NstError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class WeightsInfo:
    """Which weights a backbone runs with: recorded with every run for reproducibility."""

    identity: str  # e.g. "imagenet:vgg19-dcbb9e9d.pth", "random:seed=0", "file:/path/w.pth"
    sha256: str  # of the weight file, or of the tensors for random weights
    pretrained: bool

    @property
    def kind(self) -> str:
        return self.identity.split(":", 1)[0]


class RandomWeightsWarning(UserWarning):
    """Emitted whenever a backbone runs without pretrained weights."""


class Backbone(nn.Module):
    """A frozen feature extractor with named layers."""

    name: str
    layer_names: tuple[str, ...]
    weights_info: WeightsInfo
    #: side lengths should be multiples of this (ViT patch size; 1 for CNNs)
    size_multiple: int = 1

    def features(
        self, x: torch.Tensor, layers: tuple[str, ...] | list[str]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def check_layers(self, layers: tuple[str, ...] | list[str]) -> None:
        bad = [layer for layer in layers if layer not in self.layer_names]
        if bad:
            raise NstError(
                f"{self.name} has no layer(s) {', '.join(bad)}; valid layers: {', '.join(self.layer_names)}"
            )

    def freeze(self) -> Backbone:
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def file_weights_info(kind: str, path: Path) -> WeightsInfo:
    """Identity of weights read from a file: the cache file's name for `imagenet`, the full
    path for a user's file, and the file's sha256 either way."""
    identity = f"{kind}:{path.name if kind == 'imagenet' else path}"
    return WeightsInfo(identity, file_sha256(path), pretrained=True)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely: weights_only=True refuses pickled code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for bad files
        raise NstError(f"cannot load weights {path}: {str(err).splitlines()[0]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NstError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def warn_random(name: str, seed: int) -> None:
    message = (
        f"{name} runs with RANDOM weights (seed {seed}), not ImageNet ones: results are not "
        "comparable with pretrained-feature NST. Put the pretrained file in the torch/timm cache "
        "or pass --weights PATH."
    )
    warnings.warn(message, RandomWeightsWarning, stacklevel=3)


def resolve_weights(spec: str, name: str, cache_file: Path) -> tuple[str, Path | None]:
    """Decide where weights come from: returns (kind, file) with kind imagenet|random|file.

    imagenet: `cache_file` must exist (it is never downloaded here);
    auto:     imagenet when the cache file exists, else random (with a loud warning later);
    random:   seeded random initialisation;
    anything else is a path to a state dict.
    """
    if spec == "imagenet":
        if not cache_file.exists():
            raise NstError(
                f"ImageNet weights for {name} not found: expected {cache_file} (set TORCH_HOME "
                "or copy the file there; use --weights random or a path otherwise)"
            )
        return "imagenet", cache_file
    if spec == "auto":
        return ("imagenet", cache_file) if cache_file.exists() else ("random", None)
    if spec == "random":
        return "random", None
    path = Path(spec).expanduser()
    if not path.is_file():
        raise NstError(
            f"weights {spec!r}: no such file; use imagenet, random, auto or a path to a state dict"
        )
    return "file", path
