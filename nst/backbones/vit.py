"""Vision transformers (ViT, Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021) from timm.

An image is cut into P x P patches (P = 16 here); each patch becomes a token, and a class
token (plus a distillation token for distilled DeiT) is prepended. Block i maps the token
sequence to a new one; its output, with the class/distillation tokens removed and the
patch tokens laid out on their (H/P) x (W/P) grid, is the NCHW feature map `block{i}`.

Dropping the prefix tokens matters for style: a Gram matrix is a spatial statistic
(G = F F^T / M over the M positions), and a global token among the positions mixes a
summary of the whole image into it. With `keep_cls=True` the class token is offered as a
separate N x C x 1 x 1 feature `block{i}_cls` for experiments that want it.

Registry names -> timm models (all patch 16, trained at 224 px; position embeddings are
interpolated for other sizes, `dynamic_img_size=True`):

    deit_tiny            deit_tiny_patch16_224             ImageNet-1k, DeiT recipe
    deit_small           deit_small_patch16_224            ImageNet-1k, DeiT recipe
    deit_base            deit_base_patch16_224             ImageNet-1k, DeiT recipe
    deit_small_distilled deit_small_distilled_patch16_224  + distillation token
    vit_small            vit_small_patch16_224             ImageNet-21k -> 1k (AugReg)

ImageNet weights come only from a local cache, never from the network: the Hugging Face
hub cache timm uses ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub,
in models--timm--<model>.<tag>/snapshots/<revision>/model.safetensors) or the original
checkpoint in the torch hub cache ($TORCH_HOME/hub/checkpoints/<file>.pth).
"""

from __future__ import annotations

import os
import typing
import warnings
from pathlib import Path

import timm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file as load_safetensors
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

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
from nst.images import pad_to_multiple

#: registry name -> timm model name
TIMM_MODELS = {
    "deit_tiny": "deit_tiny_patch16_224",
    "deit_small": "deit_small_patch16_224",
    "deit_base": "deit_base_patch16_224",
    "deit_small_distilled": "deit_small_distilled_patch16_224",
    "vit_small": "vit_small_patch16_224",
}


class PatchPaddingWarning(UserWarning):
    """An input side was not a multiple of the patch size and was padded."""


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, resolved from the environment at call time (not import time)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def imagenet_cache_files(timm_name: str) -> tuple[Path, list[Path]]:
    """(the expected HF-cache file, the cached files that exist) for a timm model's default tag.

    The expected path names `<revision>` literally when no snapshot exists, so that an error
    message tells the user exactly where a copy has to go.
    """
    cfg = timm.get_pretrained_cfg(timm_name)
    assert cfg is not None and cfg.hf_hub_id, timm_name
    repo = hf_hub_cache() / ("models--" + cfg.hf_hub_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    revision = ref.read_text().strip() if ref.is_file() else "<revision>"
    expected = repo / "snapshots" / revision / "model.safetensors"
    found = [expected] if expected.is_file() else sorted(repo.glob("snapshots/*/model.safetensors"))
    if cfg.url:  # the original release file, as torch.hub.load_state_dict_from_url caches it
        legacy = Path(torch.hub.get_dir()) / "checkpoints" / str(cfg.url).rsplit("/", 1)[-1]
        found += [legacy] if legacy.is_file() else []
    return expected, found


def load_weights_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a torch file (weights_only), each read once; unwraps
    {'model': ...} (the DeiT release format) and {'state_dict': ...}."""
    if path.suffix != ".safetensors":
        return load_state_dict_file(path, wrappers=("model", "state_dict"))
    try:
        return load_safetensors(str(path))
    except (SafetensorError, OSError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise NstError(f"cannot load weights {path}: {reason}") from None


class ViT(Backbone):
    """A frozen timm vision transformer with per-block NCHW features."""

    model: typing.Any  # a timm VisionTransformer; nn.Module attributes are untyped
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, name: str, model: typing.Any, weights_info: WeightsInfo, keep_cls: bool):
        super().__init__()
        self.name = name
        self.model = model
        self.weights_info = weights_info
        self.keep_cls = keep_cls
        self.num_prefix_tokens = int(model.num_prefix_tokens)
        self.size_multiple = self.patch_size = int(model.patch_embed.patch_size[0])
        n = len(model.blocks)
        blocks = tuple(f"block{i}" for i in range(n))
        self.layer_names = blocks + (tuple(f"{b}_cls" for b in blocks) if keep_cls else ())
        cfg = model.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1))
        self.freeze()

    def pad_to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Reflect-pad the bottom/right so both sides are multiples of the patch size."""
        p = self.size_multiple
        h, w = x.shape[-2:]
        ph, pw = -h % p, -w % p
        if ph or pw:
            warnings.warn(
                f"{self.name}: input {h}x{w} is not a multiple of the patch size {p}; "
                f"reflect-padded to {h + ph}x{w + pw} (resize inputs to multiples of {p} to avoid this)",
                PatchPaddingWarning,
                stacklevel=3,
            )
            x = pad_to_multiple(x, p)
        return x

    def features(
        self, x: torch.Tensor, layers: tuple[str, ...] | list[str]
    ) -> dict[str, torch.Tensor]:
        """Run blocks 0..deepest requested and return their patch-token maps (N x C x H/P x W/P)."""
        self.check_layers(layers)
        blocks = sorted({int(layer.removesuffix("_cls").removeprefix("block")) for layer in layers})
        h = (self.pad_to_patches(x) - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        maps: typing.Any = self.model.forward_intermediates(
            h,
            indices=blocks,
            return_prefix_tokens=True,
            stop_early=True,
            output_fmt="NCHW",
            intermediates_only=True,
        )
        out: dict[str, torch.Tensor] = {}
        for i, (spatial, prefix) in zip(blocks, maps, strict=True):
            out[f"block{i}"] = spatial
            # prefix: N x num_prefix_tokens x C, class token first
            out[f"block{i}_cls"] = prefix[:, 0, :, None, None]
        return {layer: out[layer] for layer in layers}


def build_vit(
    name: str, weights: str = "auto", seed: int = 0, keep_cls: bool = False, pooling: str = "max"
) -> ViT:
    """Build a registered ViT. `pooling` is a CNN option, accepted and ignored so that one
    config can switch between VGG and ViT backbones."""
    del pooling
    timm_name = TIMM_MODELS[name]
    expected, found = imagenet_cache_files(timm_name)
    if weights == "imagenet" and not found:
        raise NstError(
            f"ImageNet weights for {name} ({timm_name}) not found: expected {expected} "
            f"(run `nst weights fetch {name}`, set HF_HOME/HF_HUB_CACHE or copy the file there; "
            "use --weights random or a path otherwise)"
        )
    kind, path = resolve_weights(weights, name, found[0] if found else expected)
    model = seeded(
        seed,
        lambda: typing.cast(
            VisionTransformer, timm.create_model(timm_name, pretrained=False, dynamic_img_size=True)
        ),
    )
    if kind == "random":
        return ViT(name, model, random_weights(name, seed, model), keep_cls)
    assert path is not None
    state = load_weights_file(path)
    try:
        # converts the original DeiT/JAX layouts and resizes position embeddings if needed
        state = checkpoint_filter_fn(state, model)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as err:
        raise NstError(
            f"{path}: not a timm {timm_name} state dict: {str(err).splitlines()[-1].strip()}"
        ) from None
    info = file_weights_info(kind, path)
    return ViT(name, model, info, keep_cls)


def _register(name: str) -> None:
    @register(name)
    def factory(
        weights: str = "auto", seed: int = 0, keep_cls: bool = False, pooling: str = "max"
    ) -> ViT:
        return build_vit(name, weights, seed, keep_cls, pooling)

    factory.__doc__ = f"{name}: timm {TIMM_MODELS[name]}"


for _name in TIMM_MODELS:
    _register(_name)
