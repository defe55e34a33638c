"""A feed-forward network on disk: the checkpoint format and `load_model(path) -> (model, meta)`.

A checkpoint is a plain mapping that `torch.load(..., weights_only=True)` reads, so loading
never runs pickled code:

    format  FORMAT ("nst.feedforward/1")
    meta    {"method": "johnson", "options": {"width": 32}, "step": N, "config": {...}, ...}
            method + options rebuild the network (nst.models.get_model(method, **options));
            networks with a frozen pretrained encoder (adain, stytr) hold its weights in the
            state dict, so they are rebuilt with weights="random" (no warning) and loaded
    model   the network's state dict
    train   (training checkpoints only) optimiser, scheduler, RNG states, data position:
            nst.train.checkpoint

Apply, export and serving code needs only `load_model`; the training state is ignored here.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst import NstError
from nst.backbones.base import RandomWeightsWarning
from nst.models.registry import get_model, model_options

FORMAT = "nst.feedforward/1"


class CheckpointError(NstError):
    """A checkpoint that cannot be used, with the reason in one line."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint mapping at `path`, read weights-only; any problem is a CheckpointError."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path}: is a directory, expected a .pt file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Unsupported global" in str(err):
            # weights_only refuses globals it does not know: pickled code or arbitrary objects
            raise CheckpointError(
                f"checkpoint {path}: refusing to load pickled Python objects (not a "
                "weights-only nst checkpoint)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path}: corrupt or truncated (not a torch checkpoint)"
        ) from None
    except (OSError, EOFError, RuntimeError, ValueError, KeyError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"checkpoint {path}: corrupt or truncated ({reason})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(
            f"checkpoint {path}: not an nst feed-forward checkpoint (format {found!r}, "
            f"expected {FORMAT!r})"
        )
    meta = data.get("meta")
    if not isinstance(meta, dict) or not isinstance(data.get("model"), dict):
        raise CheckpointError(f"checkpoint {path}: meta or model state missing")
    return data


def describe(meta: dict[str, Any]) -> str:
    """e.g. "johnson (width=32)"."""
    options = ", ".join(f"{k}={v}" for k, v in sorted(meta.get("options", {}).items()))
    return f"{meta.get('method')} ({options})"


def check_compatible(
    meta: dict[str, Any], method: str, options: dict[str, Any], path: str | Path
) -> None:
    """Raise a CheckpointError when the checkpoint holds another method or other options."""
    want = {"method": method, "options": dict(options)}
    if meta.get("method") != method or dict(meta.get("options", {})) != want["options"]:
        raise CheckpointError(
            f"checkpoint {path} holds a {describe(meta)} network, but this run is "
            f"{describe(want)}: use a matching --method/--width or another --out"
        )


def build_model(data: dict[str, Any], path: str | Path) -> nn.Module:
    """The network a checkpoint mapping describes, with its weights loaded."""
    meta = data["meta"]
    method, options = str(meta.get("method")), dict(meta.get("options", {}))
    try:
        if "weights" in model_options(method):
            # a frozen encoder's weights are in the checkpoint: build it random, quietly
            options.setdefault("weights", "random")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            model = get_model(method, **options)
    except (NstError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from None
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit a {describe(meta)} network "
            f"({str(err).splitlines()[0]})"
        ) from None
    return model


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode on `device`, meta) from a checkpoint (module docstring)."""
    data = read_checkpoint(path)
    model = build_model(data, path)
    return model.to(device).eval(), data["meta"]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside torch.compile's and DistributedDataParallel's wrappers (itself
    otherwise)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model
