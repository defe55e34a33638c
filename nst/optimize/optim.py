"""Optimisers of the pixels: Adam/AdamW/SGD/L-BFGS, the lr schedule, and L-BFGS evaluation reuse."""

from __future__ import annotations

import torch

from nst.config import TransferConfig


def make_optimizer(config: TransferConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    name = config.optimizer
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    # One of our steps is one L-BFGS iteration; the history persists across step() calls.
    # Its own tolerances are off: pixel gradients can be below 1e-7 while the image still
    # changes visibly, and stopping is decided by config.steps and config.stop_rtol.
    return torch.optim.LBFGS(
        params,
        lr=config.lr,
        max_iter=1,
        # torch derives the line search's evaluation budget from max_eval (default
        # max_iter * 5 // 4 = 1 here, i.e. no search at all): give it torch's max_ls of 25
        max_eval=1 + 25,
        history_size=config.lbfgs_history,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn=None if config.lbfgs_line_search == "none" else "strong_wolfe",
    )


def make_schedule(
    config: TransferConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning rate over the run: constant, or cosine from config.lr to 0 at the last step
    (Adam at a constant lr ends in a noise floor of size ~lr; decaying it settles the pixels)."""
    if config.lr_schedule == "constant" or config.optimizer == "lbfgs":
        return None  # L-BFGS: the line search sets the step length
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)


class ReusedEvaluation:
    """The last loss evaluation (point, gradient, terms, value), returned again for the same point."""

    def __init__(self) -> None:
        self.x: torch.Tensor | None = None
        self.grad: torch.Tensor | None = None
        self.terms: dict[str, torch.Tensor] = {}
        self.value = torch.zeros(())

    def store(self, x: torch.Tensor, terms: dict[str, torch.Tensor], value: torch.Tensor) -> None:
        assert x.grad is not None
        self.x, self.grad = x.detach().clone(), x.grad.detach().clone()
        self.terms, self.value = {k: v.detach() for k, v in terms.items()}, value

    def lookup(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor] | None:
        if self.x is None or self.grad is None or not torch.equal(self.x, x.detach()):
            return None
        x.grad = self.grad.clone()
        return self.terms, self.value
