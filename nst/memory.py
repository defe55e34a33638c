"""The peak memory a run will need, predicted before any work, and the refusal of one that
would not fit.

    peak MiB = base + per_mp * megapixels of the largest pass                (whole image)
    peak MiB = base + max(per_mp * pass + INPUT * image, BUFFERS * image)   (in tiles)

`per_mp` is the network's cost per megapixel of a pass (its activations, and their gradients
for image optimisation), `base` what the process holds before (the interpreter, torch, the
network). A tiled run keeps the whole image: while the passes run, the decoded photo and its
float tensor and the blend's sums (INPUT, 31 bytes per pixel); at the end the input, the output, the blending
weights and the 8-bit image being written (BUFFERS, kind apply:buffers). Each line is
measured, not guessed: `python -m benchmarks.calibrate_memory` runs the commands at two sizes,
each in its own process (peak resident memory, ru_maxrss), fits the line and writes
nst/memory.json with the machine it measured on. Kinds:

    transfer:<backbone>      nst transfer (Adam, the backbone's preset layers, float32); L-BFGS
                             adds its history analytically: 2 x lbfgs_history x 3 x 4 bytes
                             per pixel (the curvature pairs, one image each)
    apply:johnson            nst apply of a width-32 network (another width scales per_mp)
    apply:adain:<encoder>:<layer>
    apply:buffers            the end of a tiled nst apply, per megapixel of the image
    train:johnson:<backbone> nst train, per megapixel of a step's batch (batch x crop^2):
    train:adain:<encoder>:<layer>   the network, its loss network, their gradients, Adam

A kind with no calibration has no estimate (the run goes ahead, saying so with --dry-run).
The calibration is of the CPU's resident memory; on CUDA no estimate is made. bfloat16 runs
are estimated as float32 (an upper bound: not calibrated separately).

`check(estimate, budget)` refuses, in one NstError line, a run whose estimate exceeds the
budget (`--max-memory`, else the memory available now: /proc/meminfo MemAvailable plus what
this process already holds), naming the largest size that would fit.
"""

from __future__ import annotations

import functools
import json
import math
import re
import resource
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst import NstError

CALIBRATION = Path(__file__).with_name("memory.json")
UNITS = {
    "": 2**20,
    "b": 1,
    "k": 2**10,
    "kb": 2**10,
    "m": 2**20,
    "mb": 2**20,
    "g": 2**30,
    "gb": 2**30,
}


#: MiB per megapixel a tiled run holds while its passes run: Pillow's RGB (3 bytes per pixel),
#: the float32 tensor (12), and the blend's weighted sum and summed weights (16,
#: nst.models.tiles.blend; left out before, a 24 MP adain run in 1536 px tiles predicted at
#: 3.75 GiB peaked at 4.25)
INPUT = 31 * 1e6 / 2**20


@dataclass(frozen=True)
class Cost:
    """One kind of run's calibrated line (module docstring), MiB and MiB per megapixel."""

    base: float
    per_mp: float


@dataclass(frozen=True)
class Estimate:
    """A predicted peak: `mib`, and what it is made of, to name the largest size that fits."""

    kind: str
    mib: float
    cost: Cost
    pass_mp: float  # megapixels of the largest pass
    kept_mp: float = 0.0  # megapixels of the whole image a tiled run keeps
    buffers: float = 0.0  # MiB per kept megapixel at the end (apply:buffers)
    extra_per_mp: float = 0.0  # analytic MiB per pass megapixel (L-BFGS history)

    def __str__(self) -> str:
        return f"{self.mib:,.0f} MiB ({self.kind}: {self.pass_mp:.2f} MP per pass)"

    def largest_mp(self, budget_mib: float) -> float:
        """The pass megapixels that would fit `budget_mib` (0 when the whole image's buffers
        alone would not)."""
        room = budget_mib - self.cost.base
        if self.buffers * self.kept_mp > room:
            return 0.0
        return max(0.0, (room - INPUT * self.kept_mp) / (self.cost.per_mp + self.extra_per_mp))


def calibration(path: Path | None = None) -> dict[str, Cost]:
    """The calibrated kinds (nst/memory.json), {} when the file is absent."""
    return _read(path or CALIBRATION)


@functools.cache
def _read(path: Path) -> dict[str, Cost]:
    # read once per process: --tile auto asks for up to nine estimates per image
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {k: Cost(**v) for k, v in data.get("kinds", {}).items()}


def estimate(
    kind: str,
    pass_mp: float,
    kept_mp: float = 0.0,
    *,
    scale: float = 1.0,
    extra_per_mp: float = 0.0,
) -> Estimate | None:
    """The predicted peak of a run of `kind` whose largest pass has `pass_mp` megapixels
    (tiled: keeping an image of `kept_mp`); `scale` multiplies the network's per-megapixel
    cost (johnson's width / 32). None when `kind` is not calibrated."""
    known = calibration()
    cost = known.get(kind)
    if cost is None:
        return None
    cost = Cost(cost.base, cost.per_mp * scale)
    buffers = known["apply:buffers"].per_mp if kept_mp and "apply:buffers" in known else 0.0
    passes = cost.base + (cost.per_mp + extra_per_mp) * pass_mp + INPUT * kept_mp
    mib = max(passes, cost.base + buffers * kept_mp)
    return Estimate(kind, mib, cost, pass_mp, kept_mp, buffers, extra_per_mp)


def lbfgs_mib_per_mp(history: int) -> float:
    """L-BFGS's curvature pairs: 2 x history images of 3 float32 channels, MiB per megapixel."""
    return 2 * history * 3 * 4 * 1e6 / 2**20


def parse_size(text: str) -> float:
    """'4GB', '512M', '2.5g', '3000' (MiB) -> MiB; anything else is one line."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in UNITS or float(m.group(1)) <= 0:
        raise NstError(f"--max-memory {text!r}: give a size such as 4GB, 512MB or 3000 (MiB)")
    return float(m.group(1)) * UNITS[unit] / 2**20


def available_mib() -> float:
    """Memory this process could use now: MemAvailable plus what it holds already."""
    try:
        text = Path("/proc/meminfo").read_text()
        free = int(re.search(r"MemAvailable:\s+(\d+) kB", text).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        return math.inf
    with open("/proc/self/statm") as f:
        held = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    return free + held


def check(found: Estimate | None, budget: float, source: str, size_name: str, side_of: Any) -> None:
    """Refuse (one NstError line) a run whose estimate exceeds `budget` MiB (`source`: where
    the budget came from); `side_of(mp)` names the setting `size_name` at which a pass has
    `mp` megapixels, the largest that would fit."""
    if found is None or found.mib <= budget:
        return
    fits = found.largest_mp(budget)
    hint = f"{size_name} {side_of(fits)} would fit" if fits > 0.001 else "no size would fit"
    raise NstError(refusal(found, budget, source, hint))


def refusal(found: Estimate, budget: float, source: str, hint: str) -> str:
    """The one line of a run that would not fit, and `hint`: what would."""
    return f"this run needs about {found}, more than the {budget:,.0f} MiB {source}: {hint}"


def describe(found: Estimate | None, budget: float, source: str, kind: str) -> str:
    """What --dry-run prints of a prediction against its budget."""
    if found is None:
        return f"no memory estimate ({kind} is not calibrated on the CPU)"
    return f"about {found}; {budget:,.0f} MiB {source}"


def budget(max_memory: str | None) -> tuple[float, str]:
    """(MiB, where from): --max-memory when given, else the memory available now."""
    if max_memory:
        return parse_size(max_memory), f"of --max-memory {max_memory}"
    return available_mib(), "available (MemAvailable)"


def on_cuda(device: str) -> bool:
    """Whether a run on `device` computes on a GPU (auto: when CUDA is available), where the
    CPU's calibration does not apply."""
    if device == "auto":
        import torch  # only for auto: every caller imports it to run anyway

        return bool(torch.cuda.is_available())
    return device.startswith("cuda")


def config_kind(config: Any) -> str:
    """nst.memory's kind of a run of `config`: train:<method>:<loss network or encoder> (a
    TrainConfig), strotss:<backbone> (not calibrated) or transfer:<backbone>."""
    if hasattr(config, "batch_size"):
        if config.method == "adain":
            return f"train:adain:{config.encoder}:{config.encoder_layer}"
        network = config.backbone if config.method == "johnson" else config.encoder
        return f"train:{config.method}:{network}"
    return f"{'strotss' if hasattr(config, 'scales') else 'transfer'}:{config.backbone}"


def config_estimate(config: Any, aspect: float = 1.0) -> Estimate | None:
    """The peak of running `config`: a TrainConfig (nst train: batch_size x size^2 pixels per
    step) or an image optimisation config (nst transfer, nst strotss: its largest stage, a
    content of short/long side `aspect`; 1 by default, the square, an upper bound). None on
    CUDA or for a kind not calibrated."""
    if on_cuda(str(config.device)):
        return None
    if hasattr(config, "batch_size"):
        return estimate(config_kind(config), config.batch_size * config.size**2 / 1e6)
    long_side = max(getattr(config, "pyramid", ()) or (config.size,))
    lbfgs = getattr(config, "optimizer", "") == "lbfgs"
    extra = lbfgs_mib_per_mp(config.lbfgs_history) if lbfgs else 0.0
    return estimate(config_kind(config), long_side**2 * aspect / 1e6, extra_per_mp=extra)


def check_config(
    config: Any,
    max_memory: str | None = None,
    aspect: float = 1.0,
    show: Callable[[str], object] | None = None,
) -> None:
    """Refuse, in one line naming the --size that would fit, a run of `config` predicted not to
    fit `max_memory` (else the memory available now): `nst transfer`, `nst strotss`, `nst
    train`, and each study trial (it fails alone, before any work, and the study goes on).
    `show` (--dry-run) is given the prediction first."""
    found = config_estimate(config, aspect)
    limit, source = budget(max_memory)
    if show is not None:
        show(describe(found, limit, source, config_kind(config)))
    per = config.batch_size if hasattr(config, "batch_size") else aspect  # pixels per side^2
    check(found, limit, source, "--size", lambda fits: int((fits * 1e6 / per) ** 0.5))
