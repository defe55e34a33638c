"""The one interval the report shows around a mean, in tables and figures alike.

What the interval must cover depends on how the values were drawn.

**Means over content x style pairs** (a method's results, a trial's pairs): the pairs are
not independent draws. 20 photos x 40 styles = 800 pairs share 20 photos and 40 styles, so a
photo that stylises well lifts 40 values at once; a Student-t interval over the 800 values
treats them as 800 independent draws and is far too narrow (tests/test_intervals.py measures
its coverage). The interval is the two-way cluster ("pigeonhole") bootstrap of Owen (2007,
"The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)): each of RESAMPLES replicates draws the
photos with replacement and, independently, the styles with replacement; a pair (c, s)
counts w_c x w_s times (its photo's and its style's multiplicities), the replicate's
statistic is the weighted mean over the observed pairs, and the interval is the 2.5 and 97.5
percentiles of the replicates (seed SEED, so the same values give the same interval).

- at least MIN_N_FOR_CI photos and styles: the two-way bootstrap ("2-way");
- one photo (or one style) and at least MIN_N_FOR_CI of the other: the bootstrap over the
  other alone -- the interval is then about that one photo's (style's) population of pairs;
- otherwise (e.g. 2 photos x 2 styles): the smallest and largest value instead: two photos
  cannot say how a third would fare, and a resample of two clusters has only three outcomes;
- one pair: no interval.

**Means over independent units** (trials of a study, each one draw of the sampler):

- n >= MIN_N_FOR_CI: the 95% Student-t interval of the mean (nst.report.data.mean_ci);
- 1 < n < MIN_N_FOR_CI: the smallest and largest value; n <= 1: no interval.

Either interval is clipped to the values the quantity can take (an SSIM above 1 or a negative
memory is no statement about the data). The ranges come from nst.metrics.METRICS where a metric
declares one; RANGES below adds the quantities nst.metrics does not own.

**Paired differences** (`paired_difference`): every method ran on the same pairs, so method A
and method B are compared pair by pair: d(c, s) = A(c, s) - B(c, s), and the interval of the
mean of d follows the pair rule above. "A is better than B" (`verdict`) is said only when that
interval excludes zero on A's better side; otherwise the difference is "not resolved".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nst.report.data import mean_ci
from nst.study.spec import LOSS_TERMS

MIN_N_FOR_CI = 3
RESAMPLES = 2000
SEED = 0
LEVEL = 0.95
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
    kind: str  # "2-way" | "bootstrap" (pairs) | "ci" (Student t) | "range" | "none"
    photos: int = 0  # distinct photos and styles of a mean over pairs (0: not pairs)
    styles: int = 0
    resamples: int = 0

    @property
    def bounds(self) -> tuple[float, float]:
        """(low, high), or (mean, mean) without an interval (a zero-length error bar)."""
        return (self.mean, self.mean) if self.kind == "none" else (self.low, self.high)

    @property
    def sample(self) -> str:
        """'n=800: 20 photos x 40 styles' for pairs, 'n=12' otherwise."""
        if self.photos:
            return f"n={self.n}: {self.design}"
        return f"n={self.n}"

    @property
    def design(self) -> str:
        """'20 photos x 40 styles', '1 photo x 2 styles'."""
        return design_text(self.photos, self.styles)

    def text(self, fmt: Callable[[float], str] = "{:.4g}".format, sample: bool = True) -> str:
        """'0.5 [0.3, 0.7] (n=4)', '0.5 (range 0.4–0.6, n=2)', '0.5 (n=1)' or '– (n=0)';
        sample=False leaves out the "(n=...)" part (a table whose caption states it)."""
        if self.n == 0:
            return "– (n=0)"
        tail = f", {self.sample}" if sample else ""
        if self.kind == "range":
            return f"{fmt(self.mean)} (range {fmt(self.low)}–{fmt(self.high)}{tail})"
        if self.kind != "none":
            return f"{fmt(self.mean)} [{fmt(self.low)}, {fmt(self.high)}]" + (
                f" ({self.sample})" if sample else ""
            )
        return fmt(self.mean) + (f" ({self.sample})" if sample else "")


def interval(
    values: pd.Series | np.ndarray | Sequence[float],
    name: str,
    photos: Sequence[object] | None = None,
    styles: Sequence[object] | None = None,
) -> Interval:
    """The mean of the finite `values` of quantity `name` with the report's interval: the pair
    rule when each value's photo and style are given, the independent-units rule otherwise."""
    x = np.asarray(values, dtype=float)
    keep = np.isfinite(x)
    if photos is None or styles is None:
        return _clip(_units(x[keep]), name, x[keep])
    c = np.asarray(list(photos), dtype=object)[keep]
    s = np.asarray(list(styles), dtype=object)[keep]
    return _clip(_pairs(x[keep], c, s), name, x[keep])


def _units(x: np.ndarray) -> Interval:
    mean, low, high, n = mean_ci(x)
    if n <= 1:
        return Interval(mean, math.nan, math.nan, n, "none")
    if n < MIN_N_FOR_CI:
        return Interval(mean, float(x.min()), float(x.max()), n, "range")
    return Interval(mean, low, high, n, "ci")


def _pairs(x: np.ndarray, photos: np.ndarray, styles: np.ndarray) -> Interval:
    n = len(x)
    ci, nc = _codes(photos)
    si, ns = _codes(styles)
    mean = float(x.mean()) if n else math.nan
    if n <= 1:
        return Interval(mean, math.nan, math.nan, n, "none", nc, ns)
    if min(nc, ns) >= MIN_N_FOR_CI or (min(nc, ns) == 1 and max(nc, ns) >= MIN_N_FOR_CI):
        low, high = two_way_bootstrap(x, ci, si)
        kind = "2-way" if min(nc, ns) > 1 else "bootstrap"
        return Interval(mean, low, high, n, kind, nc, ns, RESAMPLES)
    return Interval(mean, float(x.min()), float(x.max()), n, "range", nc, ns)


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    uniques, codes = np.unique(labels.astype(str), return_inverse=True)
    return codes, len(uniques)


def two_way_bootstrap(
    x: np.ndarray,
    photo: np.ndarray,
    style: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile interval of the mean of `x` under the pigeonhole bootstrap (module
    docstring); `photo` and `style` are each value's integer codes 0..k-1. A factor with one
    level is not resampled (its weight is 1)."""
    rng = np.random.default_rng(seed)
    nc, ns = int(photo.max()) + 1, int(style.max()) + 1
    wc = rng.multinomial(nc, np.full(nc, 1 / nc), size=resamples).astype(float)
    ws = rng.multinomial(ns, np.full(ns, 1 / ns), size=resamples).astype(float)
    w = wc[:, photo] * ws[:, style]  # resamples x n: each pair's multiplicity
    total = w.sum(axis=1)
    # a replicate may draw only photos and styles that share no observed pair (an incomplete
    # grid): it has no mean and is left out
    stats = (w @ x)[total > 0] / total[total > 0]
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _clip(found: Interval, name: str, x: np.ndarray) -> Interval:
    if found.kind in ("none", "range"):
        return found
    lo, hi = value_range(name)
    # a declared range never cuts off observed values (they would show a wrong declaration)
    lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return Interval(
        found.mean,
        max(found.low, lo),
        min(found.high, hi),
        found.n,
        found.kind,
        found.photos,
        found.styles,
        found.resamples,
    )


def paired_difference(
    frame: pd.DataFrame, metric: str, a: str, b: str, by: str = "method"
) -> Interval:
    """The mean over the pairs both ran of A - B (rows of `frame` with `by` == a, b; columns
    content, style, `metric`), with the pair rule's interval. Unclipped: a difference can take
    either sign."""
    cols = ["content", "style", metric]
    left = frame.loc[frame[by] == a, cols].rename(columns={metric: "a"})
    right = frame.loc[frame[by] == b, cols].rename(columns={metric: "b"})
    both = left.merge(right, on=["content", "style"]).dropna()
    d = both["a"].astype(float) - both["b"].astype(float)
    keep = np.isfinite(d.to_numpy())
    return _pairs(
        d.to_numpy()[keep], both["content"].to_numpy()[keep], both["style"].to_numpy()[keep]
    )


def verdict(diff: Interval, a: str, b: str, higher_is_better: bool) -> str:
    """'a better', 'b better' when the paired interval excludes zero, else 'not resolved'
    (with too few photos or styles for an interval, 'not resolved (too few)')."""
    if diff.kind in ("none", "range"):
        return "not resolved (too few)"
    if diff.low > 0 or diff.high < 0:
        a_higher = diff.low > 0
        return f"{a if a_higher == higher_is_better else b} better"
    return "not resolved"


def count(n: int, noun: str) -> str:
    """'1 photo', '2 photos'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def design_text(photos: int, styles: int) -> str:
    """'20 photos x 40 styles': the design of a mean over pairs."""
    return f"{count(photos, 'photo')} x {count(styles, 'style')}"


def pair_counts(frame: pd.DataFrame) -> tuple[int, int, int]:
    """(pairs, photos, styles): the distinct content x style pairs of a frame's rows."""
    distinct = frame[["content", "style"]].drop_duplicates()
    return len(distinct), distinct["content"].nunique(), distinct["style"].nunique()


def design(frame: pd.DataFrame) -> str:
    """'2 photos x 2 styles = 4 pairs' of a frame's rows (columns content, style)."""
    pairs, photos, styles = pair_counts(frame)
    return f"{design_text(photos, styles)} = {count(pairs, 'pair')}"


def describe(pairs: bool = False) -> str:
    """The interval method in words, for captions."""
    if pairs:
        return (
            f"95% two-way (photo x style) cluster bootstrap, {RESAMPLES} seeded resamples "
            f"(Owen 2007); min–max instead when fewer than {MIN_N_FOR_CI} photos or styles"
        )
    return (
        f"95% Student-t confidence interval of the mean over trials, clipped to the values the "
        f"quantity can take; min–max instead when n < {MIN_N_FOR_CI}"
    )
