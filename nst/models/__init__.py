"""Feed-forward stylisation networks: one forward pass per image instead of an optimisation.

Reading guide: registry.py (names -> factories, torch-free to list) -> johnson.py (the
Johnson et al. 2016 transformation network) -> io.py (a checkpoint's network and its meta:
`load_model(path) -> (model, meta)`, the entry point for apply, export and serving).

Every network maps an Nx3xHxW RGB batch in [0, 1] to a batch of the same shape in [0, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nst.models.registry import get_model, list_models, register

if TYPE_CHECKING:
    from nst.models.io import load_model

__all__ = ["get_model", "list_models", "load_model", "register"]


def __getattr__(name: str) -> Any:
    # load_model needs torch; listing the models (the CLI's choices) must not
    if name == "load_model":
        from nst.models import io

        return io.load_model
    raise AttributeError(f"module 'nst.models' has no attribute {name!r}")
