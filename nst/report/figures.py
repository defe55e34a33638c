"""The report's figures: seaborn/matplotlib plots rendered headless to PNG bytes.

Each function returns a `Plot` (PNG bytes plus a one-line caption) or None when its data is
missing, so the report can say so in one line instead. Figures are built on
matplotlib.figure.Figure directly (the Agg renderer, no pyplot): no global state, no display.
Every axis is labelled with its quantity and unit; metrics without a physical unit are
marked "unitless" and carry the direction of improvement (↑ higher is better, ↓ lower).
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nst.report.axes import is_numeric, numeric_axis, rotate_long_labels
from nst.report.data import Objective, StudyResults, pareto_mask
from nst.report.intervals import interval

UNITS = {
    "duration_s": "s",
    "runtime_s": "s",
    "seconds": "s",
    "seconds_per_step": "s",
    "peak_memory_mb": "MiB",
    "size": "px",
    "steps": "steps",
    "step": "optimiser steps",
    "alpha": "loss weight",
    "beta": "loss weight",
    "gamma": "loss weight",
    "lr": "step size",
    "init_blend": "content share",
    "color_emd_lab": "Lab units",
}


@dataclass(frozen=True)
class Plot:
    name: str  # file stem, unique within a page
    png: bytes
    caption: str


def label(name: str, directions: dict[str, str] | None = None) -> str:
    """Axis label: quantity (unit[, direction])."""
    bare = name.removeprefix("metric_").removeprefix("params_")
    unit = UNITS.get(bare) or next((u for k, u in UNITS.items() if bare.endswith(k)), "unitless")
    direction = (directions or {}).get(bare) or metric_direction(bare)
    arrow = {"maximize": ", ↑ better", "minimize": ", ↓ better"}.get(direction or "", "")
    return f"{bare} ({unit}{arrow})"


def metric_direction(name: str) -> str | None:
    """'maximize' or 'minimize' for a metric of nst.metrics, else None."""
    from nst.metrics import METRICS  # imports torch: loaded by the first label, not by the module

    info = METRICS.get(name.removeprefix("metric_"))
    return info.direction if info else None


def _render(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return buf.getvalue()


def _figure(ncols: int = 1, nrows: int = 1, width: float = 5.0, height: float = 3.6) -> tuple:
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def legend_beside(ax, title: str | None = None, below: bool = False) -> None:  # type: ignore[no-untyped-def]
    """The legend beside the panel (or below it), never over a curve or a point."""
    where = (
        {"loc": "upper center", "bbox_to_anchor": (0.5, -0.2), "ncols": 2}
        if below
        else {"loc": "upper left", "bbox_to_anchor": (1.01, 1)}
    )
    ax.legend(fontsize=8, title=title, title_fontsize=8, borderaxespad=0, **where)


def _directions(study: StudyResults) -> dict[str, str]:
    return {o.name: o.direction for o in study.objectives}


def _maybe_log(ax, values: pd.Series | np.ndarray, axis: str = "y") -> None:  # type: ignore[no-untyped-def]
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) and (v > 0).all() and v.max() / v.min() > 100:
        (ax.set_yscale if axis == "y" else ax.set_xscale)("log")


def pareto_front(study: StudyResults) -> Plot | None:
    """Scatter of the first two objectives over complete trials, the Pareto front joined."""
    if len(study.objectives) < 2:
        return None
    a, b = study.objectives[:2]
    frame = study.complete.dropna(subset=[a.name, b.name]) if a.name in study.trials else None
    if frame is None or b.name not in frame or frame.empty:
        return None
    values = frame[[a.name, b.name]].to_numpy(dtype=float)
    front = pareto_mask(values, [a.direction, b.direction])
    fig, axes = _figure(width=6, height=4.5)
    ax = axes[0, 0]
    ax.scatter(values[~front, 0], values[~front, 1], color="0.6", label="dominated trial")
    order = np.argsort(values[front, 0])
    ax.plot(
        values[front, 0][order], values[front, 1][order], "o-", color="C3", label="Pareto front"
    )
    # trials with (nearly) equal values share one label instead of overprinting each other
    near = 0.02 * np.maximum(np.ptp(values, axis=0), 1e-12)  # 2% of each axis' data range
    labels: list[tuple[float, float, list[str]]] = []
    for number, (x, y) in zip(frame["number"][front], values[front], strict=True):
        close = [lab for lab in labels if abs(lab[0] - x) <= near[0] and abs(lab[1] - y) <= near[1]]
        if not close:
            labels.append((x, y, []))
            close = [labels[-1]]
        close[0][2].append(f"#{number}")
    for x, y, names in labels:
        ax.annotate(",".join(names), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(label(a.name, _directions(study)))
    ax.set_ylabel(label(b.name, _directions(study)))
    legend_beside(ax)
    caption = (
        f"Pareto front of {a.name} vs {b.name}: {int(front.sum())} of {len(frame)} complete "
        "trials are not dominated (labels are trial numbers)."
    )
    return Plot("pareto", _render(fig), caption)


def importances(study: StudyResults) -> Plot | None:
    table = study.summary.get("importances") or {}
    rows = [
        (obj, p, float(v)) for obj, d in table.items() if isinstance(d, dict) for p, v in d.items()
    ]
    if not rows:
        return None
    frame = pd.DataFrame(rows, columns=["objective", "parameter", "importance"])
    fig, axes = _figure(width=6, height=0.5 + 0.45 * frame["parameter"].nunique() * len(table))
    sns.barplot(frame, x="importance", y="parameter", hue="objective", ax=axes[0, 0], orient="h")
    axes[0, 0].set_xlabel("importance (fraction of objective variance, unitless)")
    axes[0, 0].set_ylabel("searched parameter")
    sns.move_legend(axes[0, 0], "upper left", bbox_to_anchor=(1.01, 1), title="objective")
    caption = (
        "Parameter importances per objective (Optuna's evaluator; they sum to 1 per objective)."
    )
    return Plot("importances", _render(fig), caption)


def history(study: StudyResults) -> Plot | None:
    objectives = [o for o in study.objectives if o.name in study.trials]
    frame = study.complete
    if not objectives or frame.empty:
        return None
    fig, axes = _figure(ncols=len(objectives))
    for ax, obj in zip(axes[0], objectives, strict=True):
        data = frame[["number", obj.name]].dropna().sort_values("number")
        values = data[obj.name].astype(float)
        best = values.cummax() if obj.direction == "maximize" else values.cummin()
        ax.scatter(data["number"], values, color="C0", label="trial")
        ax.step(data["number"], best, where="post", color="C3", label="best so far")
        ax.set_xlabel("trial number (count)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label(obj.name, _directions(study)))
    legend_beside(axes[0, -1])  # one legend: the markers mean the same in every panel
    caption = "Optimisation history: each complete trial's objective value and the best so far."
    return Plot("history", _render(fig), caption)


def loss_curves(study: StudyResults, x: str) -> Plot | None:
    """Content, style and total loss per step (x="step") or against wall time (x="seconds")."""
    curves = study.curves
    terms = [t for t in ("content", "style", "total") if curves is not None and t in curves]
    if curves is None or curves.empty or x not in curves or not terms:
        return None
    data = curves.assign(trial=curves["trial"].astype(str)) if "trial" in curves else curves
    fig, axes = _figure(ncols=len(terms), width=4.2)
    for i, (ax, term) in enumerate(zip(axes[0], terms, strict=True)):
        units = "pair" if "pair" in data else None
        sns.lineplot(
            data,
            x=x,
            y=term,
            hue="trial" if "trial" in data else None,
            units=units,
            estimator=None,
            ax=ax,
            linewidth=1,
            legend=i == len(terms) - 1,
        )
        _maybe_log(ax, data[term])
        ax.set_xlabel(label(x))
        if x == "step":
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"{term} loss (unitless, weighted)")
    legend = axes[0, -1].get_legend()
    if legend is not None:
        if len(legend.get_texts()) > 12:
            legend.remove()
        else:  # beside the last panel, never over a curve
            sns.move_legend(axes[0, -1], "upper left", bbox_to_anchor=(1.01, 1), title="trial")
    what = "optimiser step" if x == "step" else "wall-clock time"
    caption = f"Loss curves against {what}: one line per trial and content/style pair."
    return Plot(f"curves-{x}", _render(fig), caption)


def slices(study: StudyResults) -> Plot | None:
    """Each searched parameter against each objective: numbers on a numeric axis (log-scaled
    when the search space is), categories as strips."""
    params = [p for p in study.params if study.complete[f"params_{p}"].notna().any()]
    objectives = [o for o in study.objectives if o.name in study.trials]
    frame = study.complete
    if not params or not objectives or frame.empty:
        return None
    fig, axes = _figure(ncols=len(params), nrows=len(objectives), width=3.6, height=3.0)
    for r, obj in enumerate(objectives):
        for c, param in enumerate(params):
            ax, column = axes[r, c], f"params_{param}"
            data = frame[[column, obj.name]].dropna()
            space = study.search_space(param)
            if is_numeric(data[column], space):
                sns.scatterplot(data.astype({column: float}), x=column, y=obj.name, ax=ax)
                numeric_axis(ax, data[column], space)
                ax.set_xlabel(label(param) + (", log scale" if ax.get_xscale() == "log" else ""))
            else:
                shown = data.assign(**{column: data[column].map(nice)})
                _swarm(shown, column, obj.name, ax, order=sorted(shown[column].unique()))
                ax.set_xlabel(f"{param} (category)")
            ax.set_ylabel(label(obj.name, _directions(study)))
    caption = "Slices: every complete trial's objective value against each searched parameter."
    return Plot("slices", _render(fig), caption)


def group_curves(curves: pd.DataFrame, group: str, x: str, name: str, caption: str) -> Plot | None:
    """Total loss against `x` with one colour per value of `group` (mean and the report's
    interval over trials and pairs when steps align, x="step"; raw lines against wall time)."""
    if curves.empty or x not in curves or "total" not in curves:
        return None
    fig, axes = _figure(width=7, height=4)
    ax = axes[0, 0]
    order = sorted(curves[group].dropna().astype(str).unique())  # the tables' column order
    if x == "step":
        band = partial(_bounds, name="total")  # the tables' interval, not seaborn's bootstrap
        sns.lineplot(curves, x=x, y="total", hue=group, hue_order=order, errorbar=band, ax=ax)
    else:
        units = curves["trial"].astype(str) + "/" + curves.get("pair", 0).astype(str)
        sns.lineplot(
            curves.assign(run=units),
            x=x,
            y="total",
            hue=group,
            hue_order=order,
            units="run",
            estimator=None,
            ax=ax,
            linewidth=1,
        )
    _maybe_log(ax, curves["total"])
    ax.set_xlabel(label(x))
    if x == "step":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("total loss (unitless, weighted)")
    if ax.get_legend() is not None:
        sns.move_legend(
            ax, "upper left", bbox_to_anchor=(1.01, 1), title=group.removeprefix("params_")
        )
    return Plot(name, _render(fig), caption)


def group_values(
    frame: pd.DataFrame,
    group: str,
    columns: Sequence[str],
    name: str,
    caption: str,
    directions: dict[str, str] | None = None,
) -> Plot | None:
    """Per-group bars (mean) with the report's interval (nst.report.intervals, the numbers of
    the metric table) and the trials as dots, one panel per column; n under each bar."""
    columns = [c for c in columns if c in frame and frame[c].notna().any()]
    if not columns or frame.empty:
        return None
    fig, axes = _figure(ncols=len(columns), width=3.8, height=3.4)
    data = frame.astype({group: str})
    groups = sorted(data[group].dropna().unique())
    x = np.arange(len(groups))
    for ax, column in zip(axes[0], columns, strict=True):
        spans = [interval(data.loc[data[group] == g, column], column) for g in groups]
        means = np.array([s.mean for s in spans])
        low, high = np.array([s.bounds for s in spans]).T
        ax.bar(x, means, width=0.7, color="C0", alpha=0.6, zorder=1)
        ax.errorbar(
            x,
            means,
            yerr=[means - low, high - means],
            fmt="none",
            ecolor="0.1",
            elinewidth=1.5,
            capsize=5,
            zorder=3,
            gid="interval",
        )
        _swarm(data, group, column, ax, color="0.2", order=groups)
        ax.set_xticks(x, [f"{g}\nn={s.n}" for g, s in zip(groups, spans, strict=True)])
        rotate_long_labels(ax)
        ax.set_xlabel(f"{group.removeprefix('params_')} (category)")
        ax.set_ylabel(label(column, directions))
    return Plot(name, _render(fig), caption)


def _bounds(values: pd.Series, name: str) -> tuple[float, float]:
    return interval(values, name).bounds


def _swarm(data: pd.DataFrame, x: str, y: str, ax, **style: object) -> None:  # type: ignore[no-untyped-def]
    """Dots per category laid out without random jitter, so the same results give the same PNG."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "points cannot be placed" on crowded swarms
        sns.swarmplot(data, x=x, y=y, ax=ax, size=4, **style)  # type: ignore[arg-type]
    rotate_long_labels(ax)


def objectives_of(study: StudyResults) -> list[Objective]:
    return [o for o in study.objectives if o.name in study.trials]


def nice(value: object) -> str:
    """A number as a short string (4 significant digits), anything else as str."""
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "–"
        return f"{value:.4g}"
    return str(value)
