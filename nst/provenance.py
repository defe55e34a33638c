"""Facts that make a run reproducible: code version, packages, machine, file hashes.

Dependency-free at import (torch is imported by the functions that take a device), so that
commands that only hash files, such as `nst fetch`, do not pay for importing torch.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

PACKAGES = ("nst", "torch", "torchvision", "timm", "numpy", "pillow", "mlflow", "optuna", "dvc")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_state(path: str | Path = ".") -> dict[str, str]:
    """Commit and dirty flag of the git checkout containing `path` ("unknown" outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(path), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": "unknown"}
    return {"commit": commit, "dirty": str(dirty).lower()}


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_support(device: torch.device) -> str:
    """'native' when the hardware computes bf16 matrix products, 'emulated' when it does not
    (emulated bf16 is tens of times slower than fp32)."""
    import torch

    if device.type == "cuda":
        return "native" if torch.cuda.is_bf16_supported(including_emulation=False) else "emulated"
    flags = cpu_flags()
    return "native" if flags & {"avx512_bf16", "amx_bf16"} else "emulated"


def device_description(device: torch.device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} cpu x{torch.get_num_threads()} threads"


def command_line() -> str:
    """The command that is running, quoted so that it can be pasted back into a shell (an
    empty value stays '' instead of vanishing and shifting the options after it)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
