"""Where and how a run computes, one rule each for every chapter (optimisation, training,
the methods comparison, apply): the device, the dtype, the seed, the peak memory and what a
diverged run raises.

    resolve_device  "auto" -> cuda when available, else cpu; a bad or unavailable device is
                    one NstError naming the valid ones
    DTYPES          the compute dtypes a config names: float32, bfloat16; float16 in training
                    only (autocast with a gradient scaler: nst.train.loop)
    autocast        the autocast context of a config's dtype (off for float32)
    deterministic   torch's deterministic algorithms, cuDNN without autotuning, a fixed cuBLAS
                    workspace, for a run whose bytes must repeat (the previous mode after it)
    noting_nondeterminism
                    the ops that ran without a deterministic kernel in deterministic mode
    seed_everything torch, python `random` and numpy seeded alike
    peak_memory_mb  on CUDA the peak allocated since the last reset of the peak statistics; on
                    the CPU the process's peak resident set so far (ru_maxrss: it never goes
                    down, an upper bound for any part of the run)
    placed          a module on a device in a dtype, copied only when it is not there
    NonFiniteLoss   the loss became NaN or infinite: the run diverged (what the caller catches
                    to tell a diverged trial from a broken one)
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import resource
import warnings
from collections.abc import Iterator
from typing import TypeVar

import numpy as np
import torch

from nst import NstError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


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


def autocast(device: torch.device, dtype: str) -> torch.autocast:
    """Mixed precision as a config names it: autocast to bf16 or fp16, off for float32."""
    return torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "float32")


@contextlib.contextmanager
def deterministic(on: bool) -> Iterator[None]:
    """The deterministic mode for the block, the previous one restored after it.

    On: torch.use_deterministic_algorithms(True, warn_only=True), cuDNN's deterministic
    convolutions without autotuning (cudnn.benchmark off) and cuBLAS's fixed workspace
    (CUBLAS_WORKSPACE_CONFIG, read when cuBLAS starts: set before the first CUDA matmul). An op
    with no deterministic CUDA kernel (bilinear interpolation's and adaptive pooling's backward:
    stytr's CAPE) warns instead of raising; `noting_nondeterminism` collects their names for
    the run's record: the mode says where the bytes can differ instead of refusing the method.
    Off: cudnn.benchmark on, the fastest kernels autotuned for the fixed training shapes.
    """
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = on, not on
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous[2:]


#: how torch's deterministic mode (warn_only) begins its warning about an op without a
#: deterministic kernel: "<op> does not have a deterministic implementation, but ..."
NONDETERMINISTIC = "does not have a deterministic implementation"


@contextlib.contextmanager
def noting_nondeterminism(ops: list[str], active: bool = True) -> Iterator[None]:
    """Append to `ops` the name of each op that ran without a deterministic kernel in the
    block (deterministic mode's warnings, which it consumes); other warnings pass on."""
    if not active:
        yield
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message)
        if NONDETERMINISTIC in text:
            op = text.split()[0]
            if op not in ops:
                ops.append(op)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
