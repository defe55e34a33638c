"""Run profiles: how big a study is, independent of what it searches.

An experiment file says *what* to search; a profile says *how much* compute to spend on it.
The same experiment runs as

    smoke  tiny images, a handful of steps, one pair, two trials: tests and CI (seconds)
    quick  the default: 128 px, 60 steps, two pairs, eight trials: `make repro` runs the five
           shipped studies in about 15 minutes on 2 CPU cores
    full   the protocol: 512 px, 500 steps, 20 content x 40 style images (800 pairs), on a GPU;
           the trial budget is the experiment's own

Precedence, lowest first: TransferConfig defaults < experiment `fixed` < profile (this file)
< experiment `profiles.<name>` < command-line flags (--trials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nst import NstError


@dataclass(frozen=True)
class Profile:
    name: str
    config: dict[str, Any] = field(default_factory=dict)  # TransferConfig fields (size, steps, ...)
    pairs: dict[str, Any] = field(default_factory=dict)  # {count}
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
        config={"size": 128, "steps": 60, "device": "cpu"},
        pairs={"count": 2},
        budget={"trials": 8, "timeout_s": 170},
        reports=6,
        doc="default: 128 px, 60 steps, 2 pairs, 8 trials (about 3 min per study on 2 cores)",
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

DEFAULT_PROFILE = "quick"


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise NstError(f"unknown profile {name!r}; use one of {', '.join(PROFILES)}")
    return PROFILES[name]
