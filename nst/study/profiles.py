"""Run profiles: how big a study is, independent of what it searches.

An experiment file says *what* to search; a profile says *how much* compute to spend on it.
The same experiment runs as

    smoke  tiny images, a handful of steps, one pair, two trials: tests and CI (seconds)
    quick  the default: 256 px, 60 steps, two pairs, eight trials: `make repro` runs the five
           shipped studies in a few minutes on 2 CPU cores. 256 px is the smallest size at
           which a result reads as a painting; 60 steps of the pretrained Lite0's recipe
           (L-BFGS, nst.backbones.registry.RECIPES) converge (the loss falls by under 1% over
           its last 10 steps)
    full   the protocol: 512 px, 500 steps, 20 content x 40 style images (800 pairs), on a GPU;
           the trial budget is the experiment's own

A training study (`method: johnson | adain | stytr`) has its own sizes (TRAIN_PROFILES):

    smoke  32 px crops, 4 steps of batch 2, one held-out photo (and style), two trials
    quick  128 px, 100 steps of batch 2, one held-out photo (two styles for adain and stytr),
           eight trials; the shipped experiments set their own budget (train_johnson: 4 trials
           of 300 steps, a network that renders the photo in the style's colours and strokes)
    full   256 px, 4000 steps (a tenth of Johnson's schedule: enough to rank settings), 20
           held-out photos x 40 styles, on a GPU; the trial budget is the experiment's own

`reports` is the number of validations per training run, spread evenly over its steps.
Checkpoints are written at the end only (and deleted when the trial ends), no samples.

Precedence, lowest first: config defaults < experiment `fixed` < profile (this file)
< experiment `profiles.<name>` < command-line flags (--trials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nst import NstError


@dataclass(frozen=True)
class Profile:
    name: str
    config: dict[str, Any] = field(default_factory=dict)  # config fields (size, steps, ...)
    pairs: dict[str, Any] = field(default_factory=dict)  # {count}; training: {content, styles}
    budget: dict[str, Any] = field(default_factory=dict)  # {trials, timeout_s}
    reports: int = 5  # intermediate values reported to the pruner per pair
    doc: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        config={"size": 32, "steps": 5, "device": "cpu"},
        pairs={"count": 1},
        budget={"trials": 2, "timeout_s": 120},
        reports=5,
        doc="tests and CI: 32 px, 5 steps, 1 pair, 2 trials",
    ),
    "quick": Profile(
        "quick",
        config={"size": 256, "steps": 60, "device": "cpu"},
        pairs={"count": 2},
        budget={"trials": 8, "timeout_s": 300},
        reports=6,
        doc="default: 256 px, 60 steps, 2 pairs, 8 trials (about 2 min per study on 2 cores)",
    ),
    "full": Profile(
        "full",
        config={"size": 512, "steps": 500, "device": "auto"},
        pairs={"count": 800},  # the protocol: 20 content x 40 style images
        budget={},  # the experiment's own budget
        reports=10,
        doc="the protocol: 512 px, 500 steps, 800 pairs (20 x 40), a GPU, the experiment's budget",
    ),
}

#: what a training run of a study never needs: checkpoints mid-run, samples, training photos
#: as "validation" samples (the study validates on held-out photos itself)
_TRAIN_QUIET = {"checkpoint_every": 0, "sample_every": 0, "val_images": 0}

TRAIN_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke",
        config={
            "size": 32,
            "steps": 4,
            "batch_size": 2,
            "log_every": 1,
            "device": "cpu",
            **_TRAIN_QUIET,
        },
        pairs={"content": 1, "styles": 1},
        budget={"trials": 2, "timeout_s": 120},
        reports=2,
        doc="tests and CI: 32 px, 4 steps of batch 2, 1 held-out photo, 2 trials",
    ),
    "quick": Profile(
        "quick",
        config={
            "size": 128,
            "steps": 100,
            "batch_size": 2,
            "log_every": 5,
            "device": "cpu",
            **_TRAIN_QUIET,
        },
        pairs={"content": 1, "styles": 2},
        budget={"trials": 8, "timeout_s": 300},
        reports=5,
        doc="default: 128 px, 100 steps of batch 2, 1 held-out photo (x 2 styles), 8 trials",
    ),
    "full": Profile(
        "full",
        config={"size": 256, "steps": 4000, "log_every": 10, "device": "auto", **_TRAIN_QUIET},
        pairs={"content": 20, "styles": 40},
        budget={},
        reports=10,
        doc="256 px, 4000 steps, 20 held-out photos x 40 styles, a GPU, the experiment's budget",
    ),
}

DEFAULT_PROFILE = "quick"


def get_profile(name: str, trained: bool = False) -> Profile:
    """The profile `name` of an optimisation study, or of a training study (`trained`)."""
    if name not in PROFILES:
        raise NstError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return (TRAIN_PROFILES if trained else PROFILES)[name]
