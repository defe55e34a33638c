"""The loss log of a training run, <out>/losses.jsonl: one JSON line per step with every loss
term of the global batch.

The losses stay on the device between log points (a per-step check would synchronise the
device each step); `drain` moves the pending steps' values to the host, checks them (the first
non-finite step is a NonFiniteLoss naming it, raised before anything is saved, so the last
good checkpoint stays intact) and returns them as rows; `append` writes rows, `trim` drops
the rows after a resumed checkpoint's step (steps a killed run computed again).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from nst.runtime import NonFiniteLoss

LOSS_LOG = "losses.jsonl"


def drain(
    pending: list[tuple[int, torch.Tensor]], terms: tuple[str, ...]
) -> list[dict[str, float]]:
    """The pending steps' losses as rows, after checking them: a non-finite one is an NstError."""
    if not pending:
        return []
    stacked = torch.stack([v for _, v in pending]).cpu()
    steps = [s for s, _ in pending]
    pending.clear()
    finite = torch.isfinite(stacked).all(dim=1)
    if not bool(finite.all()):
        i = int((~finite).nonzero()[0])
        shown = ", ".join(f"{t}={float(v):.4g}" for t, v in zip(terms, stacked[i], strict=True))
        raise NonFiniteLoss(
            f"training diverged: non-finite loss at step {steps[i]} ({shown}); stopped before "
            "saving, the last checkpoint is intact: lower --lr or the loss weights"
        )
    return [
        {"step": s, **dict(zip(terms, map(float, row), strict=True))}
        for s, row in zip(steps, stacked, strict=True)
    ]


def append(path: Path, rows: list[dict[str, float]]) -> None:
    with path.open("a") as f:
        f.writelines(json.dumps(row) + "\n" for row in rows)


def trim(path: Path, last_step: int) -> None:
    """Drop the rows after `last_step`: steps a killed run computed again after resuming."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if json.loads(r)["step"] <= last_step]
    path.write_text("".join(r + "\n" for r in kept))
