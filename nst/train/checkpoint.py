"""Training checkpoints: everything a run needs to continue bit-identically, written atomically.

On top of nst.models.io's format (format, meta, model) a training checkpoint holds

    train.optimizer   optimizer.state_dict()
    train.scheduler   scheduler.state_dict()
    train.step        the number of finished steps
    train.rng         torch CPU, every CUDA device, python `random`, numpy's global generator
    train.data        the content stream's position {epoch, index} (nst.train.data: the crops
                      are a function of the position, so it is the stream's whole RNG state)
    train.style_data  the style stream's position (arbitrary-style methods only)
    train.scaler      the fp16 gradient scaler's state (scale, growth tracker; dtype float16)
    meta.config       the TrainConfig, so that a resumed run continues with the same one

Every value is a tensor, number, string, list or dict, so the file loads with
torch.load(weights_only=True). A save writes a temporary file beside the target, fsyncs it and
renames it over the target (nst.imagefiles.atomic_write): a crash mid-save leaves the previous
checkpoint intact, and readers never see a half-written file.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nst import NstError
from nst.imagefiles import atomic_write
from nst.models.io import FORMAT, CheckpointError, check_compatible, read_checkpoint, unwrap
from nst.optimizers import lr_factor
from nst.train.config import RESUMABLE_KEYS, TrainConfig
from nst.train.data import Position

CHECKPOINT = "checkpoint.pt"  # the latest training checkpoint in a run's folder
MODEL = "model.pt"  # the final network without training state: what `nst apply` needs


def rng_state() -> dict[str, Any]:
    """Every global RNG's state as tensors and plain values."""
    np_state = np.random.get_state()
    assert isinstance(np_state, tuple)  # legacy MT19937 tuple, not the dict form
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": _to_lists(random.getstate()),
        "numpy": {
            "name": np_state[0],
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def model_meta(
    model: nn.Module, config: TrainConfig, step: int, extra: dict[str, Any]
) -> dict[str, Any]:
    net = unwrap(model)
    return {
        "method": config.method,
        "options": dict(getattr(net, "options", config.model_options)),
        "step": step,
        "config": config.to_dict(),
        **extra,
    }


def save_training(
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    step: int,
    position: Position,
    extra: dict[str, Any] | None = None,
    style_position: Position | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write the training checkpoint (module docstring) atomically to `path`."""
    data = {
        "format": FORMAT,
        "meta": model_meta(model, config, step, extra or {}),
        "model": unwrap(model).state_dict(),
        "train": {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "step": step,
            "rng": rng_state(),
            "data": position.to_dict(),
            **({"style_data": style_position.to_dict()} if style_position else {}),
            **({"scaler": scaler.state_dict()} if scaler and scaler.is_enabled() else {}),
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(data, f))
    return path


def save_model(
    path: Path,
    model: nn.Module,
    config: TrainConfig,
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """The network and its meta only (nst.models.load_model reads it)."""
    data = {
        "format": FORMAT,
        "meta": model_meta(model, config, step, extra or {}),
        "model": unwrap(model).state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(data, f))
    return path


def read_training(path: Path, config: TrainConfig | None = None) -> dict[str, Any]:
    """A training checkpoint's mapping, checked: it holds training state and, when `config`
    is given, a network of the same method and options."""
    data = read_checkpoint(path)
    if not isinstance(data.get("train"), dict):
        raise CheckpointError(
            f"checkpoint {path}: holds a network without training state; it cannot be resumed"
        )
    if config is not None:
        check_compatible(data["meta"], config.method, config.model_options, path)
    return data


def saved_config(data: dict[str, Any], path: Path) -> TrainConfig:
    try:
        return TrainConfig.from_dict(dict(data["meta"]["config"]))
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path}: no usable train config ({err})") from None


def style_position(data: dict[str, Any]) -> Position:
    """The style stream's saved position (arbitrary-style checkpoints; the start otherwise)."""
    saved = data["train"].get("style_data")
    return Position.from_dict(saved) if isinstance(saved, dict) else Position()


def restore(
    data: dict[str, Any],
    path: Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[int, Position]:
    """Load the state of `data` into the objects and the global RNGs: (step, data position)."""
    train = data["train"]
    try:
        unwrap(model).load_state_dict(data["model"])
        optimizer.load_state_dict(train["optimizer"])
        scheduler.load_state_dict(train["scheduler"])
        set_rng_state(train["rng"])
        if scaler is not None and scaler.is_enabled():
            scaler.load_state_dict(train["scaler"])
        return int(train["step"]), Position.from_dict(train["data"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0]
        raise CheckpointError(
            f"checkpoint {path}: cannot restore training state ({reason})"
        ) from None


def check_out(path: Path, config: TrainConfig, resume: bool) -> dict[str, Any] | None:
    """The checkpoint's mapping when resuming (its config must match `config` but for the
    RESUMABLE_KEYS), None for a new run; a new run never overwrites a checkpoint."""
    if resume:
        if not path.exists():
            raise NstError(f"--resume: no checkpoint at {path}; start without --resume")
        data = read_training(path, config)
        saved = saved_config(data, path)
        frozen = {k: v for k, v in saved.to_dict().items() if k not in RESUMABLE_KEYS}
        now = {k: v for k, v in config.to_dict().items() if k not in RESUMABLE_KEYS}
        if frozen != now:
            diff = sorted(k for k in frozen if frozen[k] != now[k])
            raise NstError(
                f"--resume: the config differs from the checkpoint's in {', '.join(diff)}"
            )
        if saved.lr_schedule == "cosine" and saved.steps != config.steps:
            step = int(data["train"]["step"])
            raise NstError(
                f"--resume with steps {config.steps} (the checkpoint's run has {saved.steps}) under "
                f"lr_schedule cosine would make the lr jump at step {step} from "
                f"{lr_factor(saved, step) * saved.lr:.3g} to "
                f"{lr_factor(config, step) * config.lr:.3g}: "
                f"keep --steps {saved.steps}, or train with lr_schedule constant or inverse"
            )
        return data
    if path.exists():
        raise NstError(
            f"{path} exists: pass --resume to continue that run, or choose another --out "
            "(a checkpoint is never overwritten by a new run)"
        )
    return None
