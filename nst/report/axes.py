"""Axis helpers of the report's figures: numeric parameter axes and category labels.

A searched float is a number, not a category: it is drawn on a numeric axis over the range
the study searched (log-scaled when the search space is), with ticks in 3 significant
digits, since matplotlib's default prints every digit of a sampled float.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter


def is_numeric(values: pd.Series, space: dict) -> bool:
    """A float or int search space; without a recorded one, numbers with more than 3 values."""
    if space:
        return space.get("type") in ("float", "int")
    return (
        pd.api.types.is_numeric_dtype(values)
        and not pd.api.types.is_bool_dtype(values)
        and values.nunique() > 3
    )


def numeric_axis(ax, values: pd.Series, space: dict) -> None:  # type: ignore[no-untyped-def]
    """The x axis of a numeric parameter over its searched range, ticks in 3 significant digits
    (matplotlib's default would print a float's every digit)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    lo = _number(space.get("low"), v.min() if len(v) else None)
    hi = _number(space.get("high"), v.max() if len(v) else None)
    log = (
        bool(space["log"])
        if "log" in space
        else bool(len(v) and (v > 0).all() and v.max() / v.min() > 100)
    )
    if log and lo is not None and hi is not None and 0 < lo < hi:
        ax.set_xscale("log")
        ax.set_xlim(lo / 1.25, hi * 1.25)
        wide = math.log10(hi / lo) >= 2
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        if lo is not None and hi is not None and hi > lo:
            ax.set_xlim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=space.get("type") == "int"))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.3g}"))


def _number(value: object, default: float | None) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else default


def rotate_long_labels(ax, room: int = 40) -> None:  # type: ignore[no-untyped-def]
    """Rotate category labels that would overlap side by side (layer lists): when the longest
    line times the number of labels exceeds `room` characters (a 3.6-inch panel at 10 pt)."""
    labels = ax.get_xticklabels()
    longest = max((len(line) for t in labels for line in t.get_text().splitlines()), default=0)
    if longest * len(labels) > room:
        ax.tick_params(axis="x", labelrotation=30)
        for tick in labels:
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
