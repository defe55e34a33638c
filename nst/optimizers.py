"""The optimisers and learning-rate schedules of every run: the pixels of image optimisation
and the weights of a trained network are optimised by the same factory.

    make_optimizer(config, params)  adam | adamw | sgd | lbfgs (image optimisation only)
    make_schedule(config, optimizer) LambdaLR(lr_factor) (None for L-BFGS: its line search
                                     sets the step length)

A config is any nst config with the optimiser part: optimizer, lr, lr_schedule, steps, and
where it has them weight_decay, momentum, warmup, lr_decay and the L-BFGS settings.

The schedules are the references', so that every method can train as its paper did: AdaIN
(naoto0804/pytorch-AdaIN train.py) lr 1e-4 / (1 + 5e-5 t); StyTr2 (diyiiyiii/StyTR-2
train.py) a 10k-step linear warm-up 5e-5 -> 2e-4, then 2e-4 / (1 + 1e-5 (t - 10k)); Johnson
(pytorch/examples fast_neural_style) a constant 1e-3. Image optimisation uses constant or
cosine (Adam at a constant lr ends in a noise floor of size ~lr; decaying it settles the
pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

#: the warm-up's first factor: StyTr2's warm-up starts at a quarter of its post-warm-up lr
#: (5e-4 * 0.1 = 5e-5 against 2e-4) and rises linearly to it
WARMUP_START = 0.25


def lr_factor(config: Any, step: int) -> float:
    """The lr at `step` over config.lr. With W warm-up steps and t = step - W after them:

        warm-up (step < W):  0.25 + 0.75 * step / W
        constant:            1
        cosine:              (1 + cos(pi * t / (steps - W))) / 2     1 down to 0 at the end
        inverse:             1 / (1 + lr_decay * t)                 the references' decay

    Only cosine depends on `steps`, so only it refuses a resume that changes them."""
    w = int(getattr(config, "warmup", 0))
    if step < w:
        return WARMUP_START + (1.0 - WARMUP_START) * step / w
    t = step - w
    if config.lr_schedule == "cosine":
        span = config.steps - w
        return 0.5 * (1.0 + float(np.cos(np.pi * min(t, span) / span)))
    if config.lr_schedule == "inverse":
        return 1.0 / (1.0 + config.lr_decay * t)
    return 1.0


def make_optimizer(config: Any, params: Sequence[torch.Tensor]) -> torch.optim.Optimizer:
    name, decay = config.optimizer, float(getattr(config, "weight_decay", 0.0))
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=decay)
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
    config: Any, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """config.lr times lr_factor at each step; None for L-BFGS (the line search sets the step)."""
    if config.optimizer == "lbfgs":
        return None
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(config, s))
