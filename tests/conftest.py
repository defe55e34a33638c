"""Shared fixtures. Tests never touch the network beyond 127.0.0.1 and never phone home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "manifest.json").exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def tiny_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth 'photo' and a striped 'painting', 1x3x32x32 in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    content = torch.stack([x, y, (x + y) / 2]).unsqueeze(0)
    stripes = (torch.sin(x * 40) > 0).float()
    style = torch.stack([stripes, 1 - stripes, stripes * 0.5]).unsqueeze(0)
    return content, style


@pytest.fixture
def isolated_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so `auto` weights never pick up a real cache."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home
