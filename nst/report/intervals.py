"""The one interval the report shows around a mean, in tables and figures alike.

- n >= MIN_N_FOR_CI: the 95% Student-t interval of the mean (nst.report.data.mean_ci),
  clipped to the values the quantity can take (an SSIM above 1 or a negative memory is no
  statement about the data, only about the normal approximation at small n);
- 1 < n < MIN_N_FOR_CI: the smallest and largest value instead, since a t interval with one
  or two degrees of freedom spans most of the range and says nothing;
- n <= 1: no interval.

The ranges come from nst.metrics.METRICS where a metric declares one; RANGES below adds the
quantities nst.metrics does not own (loss terms, trial duration).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nst.report.data import mean_ci
from nst.study.spec import LOSS_TERMS

MIN_N_FOR_CI = 3
INF = math.inf

#: possible values of what the report averages that nst.metrics does not declare
RANGES: dict[str, tuple[float, float]] = {
    **{term: (0.0, INF) for term in LOSS_TERMS},  # weighted sums of squares and norms
    "total_loss": (0.0, INF),
    "duration_s": (0.0, INF),
    "seconds": (0.0, INF),
}


def value_range(name: str) -> tuple[float, float]:
    """(low, high) a quantity can take; (-inf, inf) when nothing declares it."""
    bare = name.removeprefix("metric_")
    if bare in RANGES:
        return RANGES[bare]
    from nst.metrics import METRICS  # imports torch: only once a table or figure needs it

    info = METRICS.get(bare)
    return (float(info.range[0]), float(info.range[1])) if info else (-INF, INF)


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float  # NaN without an interval
    high: float
    n: int
    kind: str  # "ci" (clipped Student t) | "range" (min-max, small n) | "none"

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high), or (mean, mean) without an interval (a zero-length error bar)."""
        return (self.mean, self.mean) if self.kind == "none" else (self.low, self.high)

    def text(self, fmt: Callable[[float], str] = "{:.4g}".format) -> str:
        """'0.5 [0.3, 0.7] (n=4)', '0.5 (range 0.4–0.6, n=2)', '0.5 (n=1)' or '– (n=0)'."""
        if self.n == 0:
            return "– (n=0)"
        if self.kind == "ci":
            return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}] (n={self.n})"
        if self.kind == "range":
            return f"{fmt(self.mean)} (range {fmt(self.low)}–{fmt(self.high)}, n={self.n})"
        return f"{fmt(self.mean)} (n={self.n})"


def interval(values: pd.Series | np.ndarray | list[float], name: str) -> Interval:
    """The mean of the finite `values` of quantity `name` with the report's interval."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    mean, low, high, n = mean_ci(x)
    if n <= 1:
        return Interval(mean, math.nan, math.nan, n, "none")
    if n < MIN_N_FOR_CI:
        return Interval(mean, float(x.min()), float(x.max()), n, "range")
    lo, hi = value_range(name)
    # a declared range never cuts off observed values (they would show a wrong declaration)
    lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return Interval(mean, max(low, lo), min(high, hi), n, "ci")


def describe() -> str:
    """The interval method in words, for captions."""
    return (
        f"95% Student-t confidence interval of the mean, clipped to the values the quantity can "
        f"take; min–max instead when n < {MIN_N_FOR_CI}"
    )
