"""Where and how a run computes, one rule each for every chapter (optimisation, training,
the methods comparison, apply): the device, the dtype, the seed, the peak memory and what a
diverged run raises.

    resolve_device  "auto" -> cuda when available, else cpu; a bad or unavailable device is
                    one NstError naming the valid ones
    DTYPES          the compute dtypes a config names: float32, bfloat16 (autocast)
    seed_everything torch, python `random` and numpy seeded alike
    peak_memory_mb  on CUDA the peak allocated since the last reset of the peak statistics; on
                    the CPU the process's peak resident set so far (ru_maxrss: it never goes
                    down, an upper bound for any part of the run)
    placed          a module on a device in a dtype, copied only when it is not there
    NonFiniteLoss   the loss became NaN or infinite: the run diverged (what the caller catches
                    to tell a diverged trial from a broken one)
"""

from __future__ import annotations

import copy
import random
import resource
from typing import TypeVar

import numpy as np
import torch

from nst import NstError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class NonFiniteLoss(NstError):
    """The loss became NaN or infinite: the run diverged."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NstError(f"device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NstError(f"device {name!r}: CUDA is not available on this machine; use --device cpu")
    return device


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


M = TypeVar("M", bound=torch.nn.Module)


def placed(module: M, device: torch.device, dtype: torch.dtype) -> M:
    """`module` on `device` in `dtype`: itself when it is there already, else a copy (a
    caller's backbone, reused across runs, is never moved under it)."""
    p = next(module.parameters(), None)
    if p is None or (p.dtype == dtype and p.device == device):
        return module
    return copy.deepcopy(module).to(device=device, dtype=dtype)
