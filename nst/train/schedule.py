"""The learning-rate schedules of training: the factor LambdaLR multiplies config.lr by.

The references' schedules are here so that every method can train as its paper did:
AdaIN (naoto0804/pytorch-AdaIN train.py) lr 1e-4 / (1 + 5e-5 t), StyTr2 (diyiiyiii/StyTR-2
train.py) a 10k-step linear warm-up 5e-5 -> 2e-4, then 2e-4 / (1 + 1e-5 (t - 10k)); Johnson
(pytorch/examples fast_neural_style) a constant 1e-3.
"""

from __future__ import annotations

import numpy as np

from nst.train.config import TrainConfig

#: the warm-up's first factor: StyTr2's warm-up starts at a quarter of its post-warm-up lr
#: (5e-4 * 0.1 = 5e-5 against 2e-4) and rises linearly to it
WARMUP_START = 0.25


def lr_factor(config: TrainConfig, step: int) -> float:
    """The lr at `step` over config.lr. With W warm-up steps and t = step - W after them:

        warm-up (step < W):  0.25 + 0.75 * step / W
        constant:            1
        cosine:              (1 + cos(pi * t / (steps - W))) / 2     1 down to 0 at the end
        inverse:             1 / (1 + lr_decay * t)                 the references' decay

    AdaIN's reference is inverse with lr 1e-4 and decay 5e-5, StyTr2's a 10k-step warm-up then
    inverse with lr 2e-4 and decay 1e-5 (warm-up and decay as in diyiiyiii/StyTR-2's train.py).
    Only cosine depends on `steps`, so only it refuses a resume that changes them."""
    w = config.warmup
    if step < w:
        return WARMUP_START + (1.0 - WARMUP_START) * step / w
    t = step - w
    if config.lr_schedule == "cosine":
        span = config.steps - w
        return 0.5 * (1.0 + float(np.cos(np.pi * min(t, span) / span)))
    if config.lr_schedule == "inverse":
        return 1.0 / (1.0 + config.lr_decay * t)
    return 1.0
