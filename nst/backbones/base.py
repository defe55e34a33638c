"""What every backbone shares: the features() contract, frozen weights, weight resolution."""

from __future__ import annotations

import hashlib
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
from torch import nn

from nst import NstError
from nst.provenance import sha256_file

M = TypeVar("M", bound=nn.Module)

#: what torch.load raises for a file that is not a weights-only checkpoint: empty (EOFError),
#: text (KeyError, the legacy magic-number lookup), a truncated zip (RuntimeError), pickled
#: code or objects (UnpicklingError), unreadable (OSError); anything else is a bug to surface
LOAD_ERRORS = (OSError, EOFError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError)

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


class InputTooSmall(NstError):
    """An image too small, after resizing, to reach a backbone's requested layers."""


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

    #: the side of a token's patch (ViTs: the model's patch embedding); 0 for CNNs, whose
    #: features are maps of positions, not tokens
    patch_size: int = 0

    def truncate(self, layer: str) -> Backbone:
        """This backbone without the modules after `layer`, where the family can drop them (so
        a state dict holds only what is used); the others keep every module."""
        self.check_layers([layer])
        return self

    def layer_info(self, layer: str) -> tuple[int, int]:
        """(channels, stride in pixels) of `layer`, measured with one forward pass of a zero
        image (so it holds for any family, registered or plug-in)."""
        side = max(64, 4 * self.min_side([layer]))
        with torch.no_grad():
            f = self.features(torch.zeros(1, 3, side, side), [layer])[layer]
        return int(f.shape[1]), side // int(f.shape[-1])

    def min_side(self, layers: tuple[str, ...] | list[str]) -> int:
        """The smallest input side, in pixels, whose features reach every one of `layers`
        (one patch here; CNNs override it with their downsampling)."""
        return self.size_multiple

    def check_input(
        self, image: torch.Tensor, layers: tuple[str, ...] | list[str], what: str
    ) -> None:
        """Raise InputTooSmall, one line naming the size and the minimum, when `image` is too
        small for `layers`; `what` says which image, e.g. "content image resized to 48"."""
        need = self.min_side(layers)
        h, w = image.shape[-2:]
        if min(h, w) < need:
            deepest = max(layers, key=self.layer_names.index)
            raise InputTooSmall(
                f"{what} is {w}x{h} px (width x height), but {self.name} needs at least {need} px "
                f"on each side to reach layer {deepest}: use a larger size, fewer or shallower "
                "layers, or a less elongated image"
            )

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
    return WeightsInfo(identity, sha256_file(path), pretrained=True)


def load_state_dict_file(
    path: Path, wrappers: tuple[str, ...] = ("state_dict",)
) -> dict[str, torch.Tensor]:
    """Load a state dict safely (weights_only=True refuses pickled code), reading the file once;
    a checkpoint that wraps it as {key: state dict} is unwrapped for each key in `wrappers`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise NstError(f"cannot load weights {path}: {reason}") from None
    for key in wrappers:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NstError(f"{path}: not a state dict (a mapping of parameter names to tensors)")
    return state


def warn_random(name: str, seed: int, stacklevel: int = 3) -> None:
    message = (
        f"{name} runs with RANDOM weights (seed {seed}), not ImageNet ones: results are not "
        "comparable with pretrained-feature NST. Put the pretrained file in the torch/timm cache "
        "or pass --weights PATH."
    )
    warnings.warn(message, RandomWeightsWarning, stacklevel=stacklevel)


def seeded(seed: int, build: Callable[[], M]) -> M:
    """`build()` under torch.manual_seed(seed), leaving the caller's global RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def random_weights(name: str, seed: int, module: nn.Module) -> WeightsInfo:
    """The identity of a module's seeded random weights (their tensors' sha256), announced loudly:
    a run on random features must never pass for a pretrained one."""
    warn_random(name, seed, stacklevel=4)  # attributed, as before, to the registered factory
    return WeightsInfo(f"random:seed={seed}", tensors_sha256(module.state_dict()), pretrained=False)


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
                f"ImageNet weights for {name} not found: expected {cache_file} (run `nst weights "
                f"fetch {name}`, set TORCH_HOME or copy the file there; use --weights random or a path)"
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
