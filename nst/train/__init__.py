"""Training feed-forward stylisation networks (nst.models) with a perceptual loss.

Reading guide: config.py (TrainConfig) -> data.py (the content stream: seeded shuffles and
crops, a resumable position, the rank split) -> losses.py (the registry of training losses:
each runs the network and names its terms) -> perceptual.py (johnson's: nst.perceptual, the
loss image optimisation minimises) and arbitrary.py (adain's, stytr's) -> checkpoint.py
(atomic, complete training state) ->
distributed.py (torchrun, DDP) -> validate.py (samples; the `validate` callback on held-out
photos) -> loop.py (`train`, the one loop) -> tracking.py (MLflow).

TrainConfig is importable without torch (the CLI builds its options from it); `train` and
`TrainResult` are imported from nst.train.loop on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nst.train.config import TrainConfig

if TYPE_CHECKING:
    from nst.train.loop import TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in ("train", "TrainResult"):
        from nst.train import loop

        return getattr(loop, name)
    raise AttributeError(f"module 'nst.train' has no attribute {name!r}")
