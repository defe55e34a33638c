"""What the training loop shows of the network while it trains: samples and validations.

Samples: the first `val_images` photos of the training folder, stylised every `sample_every`
steps in eval mode, saved as samples/step_NNNNNN.png (and given to the hooks); the final
network's stylisation of them is the TrainResult's `validation`.

Validations: `train(..., validate=fn, validate_at=steps)` calls fn(Validation) after each of
those steps (after that step's log and checkpoint), on rank 0 only, with the network in eval
mode under torch.no_grad; every module's train/eval mode is restored afterwards (the frozen
encoders of adain and stytr stay in eval mode). The caller evaluates whatever it likes on its
own held-out photos, e.g. through `Validation.run`: the network's output on a batch and the
training loss on it (the validation loss). An exception raised by fn (e.g. optuna.TrialPruned:
a study stopping a poor trial) ends the training there: nothing is half-written (checkpoints
are atomic, losses.jsonl holds whole rows up to that step), no model.pt is written, and the
process group is left as usual. Under torchrun only rank 0 validates, so the other ranks wait
for it at their next collective; an exception there stops rank 0 alone (use it in one process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.images import save_image
from nst.models.registry import model_inputs
from nst.runtime import autocast


@dataclass(frozen=True)
class Validation:
    """What a `validate` callback receives: the step just finished, the (unwrapped) network in
    eval mode, its device and the training objective."""

    step: int
    network: nn.Module
    device: torch.device
    objective: Any  # the method's training loss (nst.train.losses)

    @property
    def takes_style(self) -> bool:
        return "style" in model_inputs(self.network)

    def run(
        self, content: torch.Tensor, style: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(outputs, loss terms) of a batch of photos (and, for adain and stytr, one style image
        per photo, of the photos' size): the stylised batch on the CPU in float32, and the
        training loss's terms on it, each a mean over the batch."""
        s = None if style is None else style.to(self.device)
        y, losses = self.objective(self.network, content.to(self.device), s)
        return y.detach().float().cpu(), {k: float(v) for k, v in losses.items()}


Validate = Callable[[Validation], Any]


def run_validation(
    validate: Validate, step: int, net: nn.Module, device: torch.device, objective: Any
) -> None:
    """validate(Validation(...)) in eval mode under no_grad; every module's mode restored."""
    with evaluating(net):
        validate(Validation(step, net, device, objective))


@contextmanager
def evaluating(net: nn.Module) -> Iterator[None]:
    """`net` in eval mode under no_grad; every module's train/eval mode restored on exit."""
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, mode in modes:
            module.training = mode


def stylize_row(
    net: nn.Module,
    vals: tuple[torch.Tensor, torch.Tensor | None],
    dtype: str,
    device: torch.device,
) -> torch.Tensor | None:
    """The validation photos stylised by `net` in eval mode (no dropout, the output layer's
    clamp: what `nst apply` gives; arbitrary-style: with the first style image), side by side
    in one 1 x 3 x size x (n * size) float32 image; None without photos."""
    val, val_style = vals
    if not len(val):
        return None
    with evaluating(net), autocast(device, dtype):
        styled = (net(val) if val_style is None else net(val, val_style)).float()
    return torch.cat(list(styled), dim=-1).unsqueeze(0)


def sample(
    net: nn.Module,
    vals: tuple[torch.Tensor, torch.Tensor | None],
    step: int,
    out: Path,
    hooks: Any,
    dtype: str,
    device: torch.device,
) -> None:
    """stylize_row as samples/step_NNNNNN.png, given to the hooks' on_sample."""
    row = stylize_row(net, vals, dtype, device)
    if row is None:
        return
    save_image(row, out / "samples" / f"step_{step:06d}.png")
    if hooks:
        hooks.on_sample(step, row)
