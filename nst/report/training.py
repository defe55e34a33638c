"""Training curves of the methods comparison: each trained network's losses.jsonl (written by
nst.train.loop, one JSON object per logged step: step, every loss term before weighting, and
the weighted total), read from the run folders summary.json names (relative to
results/methods/). One figure: the total loss of every network against step (johnson: one
network per style, labelled by style), then one panel of loss terms per method. A missing or
corrupt losses.jsonl is a note; a readable part of one still plots.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nst.report import figures as figs
from nst.report.data import MethodsResults

LOSS_LOG = "losses.jsonl"  # nst.train.losslog.LOSS_LOG
LINE_STYLES = ("-", "--", ":", "-.")
MAX_LABELLED = len(LINE_STYLES)  # networks of one method each in the legend; more share one
PER_ROW = 3  # method panels per row, under the total-loss panel


@dataclass(frozen=True)
class Curve:
    method: str
    label: str  # the method, and the style of a per-style network: "johnson (great_wave)"
    steps: pd.DataFrame  # step, total and every other loss term, sorted by step


def training_curves(found: MethodsResults) -> tuple[list[Curve], list[str], list[str]]:
    """(the curve of every run with a readable losses.jsonl, one note per missing or corrupt
    one, the methods that trained nothing: no runs in summary.json)."""
    curves, problems, untrained = [], [], []
    for name, info in found.methods.items():
        runs = [r for r in info.get("runs") or [] if isinstance(r, dict)]
        if not runs:
            untrained.append(name)
        for run in runs:
            label = _run_label(name, run)
            if not run.get("run"):
                problems.append(f"Training curve of {label}: no run folder in summary.json.")
                continue
            path = found.root / str(run["run"]) / LOSS_LOG
            steps, problem = read_losses(path)
            if problem:
                shown = f"results/methods/{run['run']}/{LOSS_LOG}"
                problems.append(f"Training curve of {label}: `{shown}` {problem}.")
            if steps is not None:
                curves.append(Curve(name, label, steps))
    return curves, problems, untrained


def _run_label(method: str, run: dict[str, Any]) -> str:
    style = str(run.get("style") or "*")
    return method if style == "*" else f"{method} ({Path(style).stem})"


def read_losses(path: Path) -> tuple[pd.DataFrame | None, str]:
    """(the logged steps, sorted, or None; what is wrong with the file, "" if nothing). A line
    that is not a JSON object with a numeric step and total is skipped and counted."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return None, "is missing"
    except UnicodeDecodeError:
        return None, "is corrupt (not UTF-8 text)"
    except OSError as err:
        return None, f"cannot be read ({err.strerror or type(err).__name__})"
    rows, bad = [], 0
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if not (isinstance(row, dict) and _finite(row.get("step")) and _finite(row.get("total"))):
            bad += 1
            continue
        rows.append({k: float(v) for k, v in row.items() if _finite(v)})
    if not rows:
        return None, f"is corrupt ({bad} unreadable lines, no step)" if bad else "is empty"
    steps = pd.DataFrame(rows).sort_values("step", kind="stable").reset_index(drop=True)
    return steps, f"has {bad} unreadable of {bad + len(rows)} lines (skipped)" if bad else ""


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def curves_plot(curves: list[Curve], untrained: list[str]) -> figs.Plot | None:
    """The total loss of every run against step, then one panel of loss terms per method."""
    if not curves:
        return None
    by_method: dict[str, list[Curve]] = {}
    for c in curves:
        by_method.setdefault(c.method, []).append(c)
    fig, flat = _layout(len(by_method))
    ax = flat[0]
    colour = 0
    for method, mine in by_method.items():  # many per-style networks: one colour, one entry
        many = len(mine) > MAX_LABELLED
        for k, c in enumerate(mine):
            label = c.label if not many else f"{method} ({len(mine)} networks)" if k == 0 else None
            ax.plot(
                c.steps["step"],
                c.steps["total"],
                color=f"C{colour % 10}",
                label=label,
                **_marks(c.steps, many),
            )
            colour += 0 if many else 1
        colour += 1 if many else 0
    _axes(ax, pd.concat([c.steps["total"] for c in curves]), "total loss (unitless, weighted)")
    ax.set_title("total loss of every trained network", fontsize=10)
    figs.legend_beside(ax, "network")
    for ax, (method, mine) in zip(flat[1:], by_method.items(), strict=False):
        terms = list(dict.fromkeys(t for c in mine for t in c.steps if t not in ("step", "total")))
        many = len(mine) > MAX_LABELLED
        for j, term in enumerate(terms):
            for k, c in enumerate(mine):
                if term in c.steps:
                    ax.plot(
                        c.steps["step"],
                        c.steps[term],
                        color=f"C{j % 10}",
                        linestyle="-" if many else LINE_STYLES[k % len(LINE_STYLES)],
                        label=term if k == 0 else None,
                        **_marks(c.steps, many),
                    )
        values = [c.steps[t] for c in mine for t in terms if t in c.steps]
        _axes(
            ax,
            pd.concat(values) if values else pd.Series(dtype=float),
            "loss term (unitless, unweighted)",
        )
        if 1 < len(mine) <= MAX_LABELLED:  # the line style tells the networks apart
            for k, c in enumerate(mine):
                ax.plot(
                    [],
                    [],
                    color="0.35",
                    linestyle=LINE_STYLES[k % len(LINE_STYLES)],
                    label=c.label.removeprefix(f"{method} (").removesuffix(")"),
                )
        ax.set_title(f"{method}: loss terms", fontsize=10)
        if terms:
            title = "term" if len(mine) == 1 else f"term (a line per network, {len(mine)})"
            figs.legend_beside(
                ax, title if many else "term" if len(mine) == 1 else "term, network", True
            )
    per_style = sorted({c.method for c in curves if c.label != c.method})
    caption = (
        f"Training curves of {len(curves)} trained network{'s' if len(curves) != 1 else ''}"
        f" (each run's {LOSS_LOG}): the total loss against step"
        + (
            f" ({', '.join(per_style)}: one network per style, labelled by style up to "
            f"{MAX_LABELLED})"
            if per_style
            else ""
        )
        + ", then each method's loss terms before weighting (line style per network); "
        "log scale where the values span more than 100x."
    )
    if untrained:
        they = "it optimises" if len(untrained) == 1 else "they optimise"
        caption += (
            f" No curve for {', '.join(untrained)}: {they} each image from scratch, "
            "no network is trained."
        )
    return figs.Plot("methods-curves", figs._render(fig), caption)


def _layout(methods: int) -> tuple[Figure, list[Any]]:
    """The total-loss panel across the top, then up to PER_ROW method panels a row."""
    cols = max(1, min(methods, PER_ROW))
    rows = math.ceil(methods / cols)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(12.0, 3.6 + 3.4 * rows), layout="constrained")
        grid = fig.add_gridspec(1 + rows, cols)
        axes = [fig.add_subplot(grid[0, :])]
        axes += [fig.add_subplot(grid[1 + i // cols, i % cols]) for i in range(methods)]
    return fig, axes


def _marks(steps: pd.DataFrame, many: bool = False) -> dict[str, Any]:
    """Markers on a short curve, so that a run of a few logged steps still shows its points;
    thin, translucent lines where one method has many networks."""
    marks: dict[str, Any] = {"marker": "o", "markersize": 3} if len(steps) <= 30 else {}
    return {**marks, "linewidth": 0.8, "alpha": 0.5} if many else {**marks, "linewidth": 1.2}


def _axes(ax, values: pd.Series, ylabel: str) -> None:  # type: ignore[no-untyped-def]
    figs._maybe_log(ax, values)
    ax.set_xlabel(figs.label("step").replace("optimiser steps", "training steps"))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel + (", log scale" if ax.get_yscale() == "log" else ""))
