"""The "Methods" section: results/methods/ (written by `nst methods`, nst.methods.run) as a
content x style grid with one column per method, content metric against style metric per
method (mean and interval, nst.report.intervals; marker area from seconds per image), a table
of every metric's mean and interval with time and memory, and the weights of every network
involved (loss networks, encoders, the judge). Only files are read: nothing is imported from
nst.methods, and a missing or partial results/methods/ is a one-line note.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nst.report import figures as figs
from nst.report.intervals import describe, interval
from nst.report.page import Cell, Section, Table

TITLE = "Methods compared"
CONTENT_METRIC, STYLE_METRIC = "ssim", "style_gram_dist"
NON_METRICS = ("method", "content", "style", "image")


def methods_sections(results_dir: str | Path) -> list[Section]:
    """[the Methods section] when results_dir/methods/ exists, else []."""
    root = Path(results_dir) / "methods"
    if not root.is_dir():
        return []
    try:
        summary = json.loads((root / "summary.json").read_text())
        rows = pd.read_csv(root / "results.csv")
    except (OSError, ValueError) as err:
        note = f"results/methods/ is incomplete ({str(err).splitlines()[0]}): re-run `nst methods`."
        return [Section(TITLE, note=note)]
    return [methods_section(root, summary, rows)]


def methods_section(root: Path, summary: dict[str, Any], rows: pd.DataFrame) -> Section:
    methods = [m for m in summary.get("methods", {}) if m in set(rows["method"])]
    section = Section(TITLE, note=banner(summary))
    grid = _grid(root, rows, methods)
    if grid is not None:
        section.plots.append(grid)
    scatter = _scatter(rows, methods)
    if scatter is not None:
        section.plots.append(scatter)
    section.tables += [_metric_table(rows, methods), network_table(summary)]
    split = summary.get("split", {})
    section.tables.append(Table(["fact", "value"], [
        ["profile", str(summary.get("profile", "–"))],
        ["image size", f"{summary.get('size', '–')} px"],
        ["evaluated photos (never trained on)", ", ".join(split.get("eval_contents", []))],
        ["styles", ", ".join(split.get("eval_styles", []))],
        ["training photos", str(split.get("train_contents", "–"))],
        ["adain/stytr trained on", str(split.get("arbitrary_styles", "–"))],
        ["data source", str(summary.get("data_source") or "–")],
    ], "The held-out protocol: every method on the same content x style pairs."))  # fmt: skip
    section.code = [f"nst methods {summary.get('spec', 'experiments/methods.yaml')} --profile "
                    f"{summary.get('profile', 'quick')} --data {summary.get('data', 'data')} "
                    "--out results"]  # fmt: skip
    return section


def banner(summary: dict[str, Any]) -> str:
    """The random-weights line, or "" when every network involved was pretrained."""
    random = list(summary.get("random_weights_methods") or [])
    judge = summary.get("judge") or {}
    parts = []
    if random:
        parts.append(f"Random weights: {', '.join(random)} ran a network with seeded random "
                     "weights (table below): their images check the harness, not the method.")  # fmt: skip
    if judge and str(judge.get("pretrained")).lower() != "true":
        parts.append(
            "The judge ran with random weights: its held-out metrics are not measurements."
        )
    return " ".join(parts)


def _grid(root: Path, rows: pd.DataFrame, methods: list[str]) -> figs.Plot | None:
    pairs = rows[["content", "style"]].drop_duplicates().values.tolist()
    cells: list[list[Path | str | None]] = []
    for content, style in pairs:
        line: list[Path | str | None] = []
        for m in methods:
            hit = rows[
                (rows["method"] == m) & (rows["content"] == content) & (rows["style"] == style)
            ]
            line.append(root / str(hit["image"].iloc[0]) if len(hit) else None)
        cells.append(line)
    labels = [f"{c} x {s}" for c, s in pairs]
    caption = "Every held-out content x style pair (rows), one column per method."
    return figs.image_grid(cells, labels, methods, "methods-grid", caption, empty="not run")


def _scatter(rows: pd.DataFrame, methods: list[str]) -> figs.Plot | None:
    if CONTENT_METRIC not in rows or STYLE_METRIC not in rows or not methods:
        return None
    fig, axes = figs._figure(width=6.0, height=4.4)
    ax = axes[0, 0]
    seconds = {m: float(rows.loc[rows["method"] == m, "seconds"].mean()) for m in methods}
    top = max(max(seconds.values()), 1e-9)
    for m in methods:
        mine = rows[rows["method"] == m]
        x, y = (
            interval(mine[STYLE_METRIC], STYLE_METRIC),
            interval(mine[CONTENT_METRIC], CONTENT_METRIC),
        )
        xerr = np.abs(np.array([[x.mean], [x.mean]]) - np.array(x.bounds).reshape(2, 1))
        yerr = np.abs(np.array([[y.mean], [y.mean]]) - np.array(y.bounds).reshape(2, 1))
        ax.errorbar(x.mean, y.mean, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.6")
        ax.scatter([x.mean], [y.mean], s=30 + 400 * seconds[m] / top, alpha=0.8,
                   label=f"{m} ({seconds[m]:.3g} s/image, n={y.n})")  # fmt: skip
    ax.set_xlabel(figs.label(STYLE_METRIC))
    ax.set_ylabel(figs.label(CONTENT_METRIC))
    ax.legend(fontsize=8)
    caption = (f"Content ({CONTENT_METRIC}) against style ({STYLE_METRIC}) per method: the mean "
               f"with its interval ({describe()}); marker area grows with seconds per image.")  # fmt: skip
    return figs.Plot("methods-tradeoff", figs._render(fig), caption)


def _metric_table(rows: pd.DataFrame, methods: list[str]) -> Table:
    columns = ["seconds", "peak_memory_mb"] + sorted(
        c for c in rows.columns if c not in (*NON_METRICS, "seconds", "peak_memory_mb")
    )
    body: list[list[Cell]] = []
    for c in columns:
        values = pd.to_numeric(rows[c], errors="coerce")
        body.append(
            [figs.label(c), *(interval(values[rows["method"] == m], c).text() for m in methods)]
        )
    caption = (f"Every metric's mean with its interval ({describe()}), and seconds and peak "
               "memory per image (CPU: the process's peak resident set so far, an upper bound).")  # fmt: skip
    return Table(["metric", *methods], body, caption)


def network_table(summary: dict[str, Any]) -> Table:
    body: list[list[Cell]] = []
    for name, info in summary.get("methods", {}).items():
        for n in info.get("networks", []):
            body.append([name, str(n.get("role")), str(n.get("backbone")), str(n.get("weights")),
                         "yes" if n.get("pretrained") else "no"])  # fmt: skip
    judge = summary.get("judge") or {}
    if judge:
        body.append(["(all)", "judge (held-out)", str(judge.get("backbone")),
                     f"{judge.get('weights')} sha256 {str(judge.get('sha256', ''))[:12]}",
                     "yes" if str(judge.get("pretrained")).lower() == "true" else "no"])  # fmt: skip
    caption = "Every network involved: loss networks, encoders and the judge, with their weights."
    return Table(["method", "role", "network", "weights", "pretrained"], body, caption)
