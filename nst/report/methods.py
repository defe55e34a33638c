"""The "Methods" section: results/methods/ (written by `nst methods`, nst.methods.run) as a
content x style grid with one column per method, content metric against style metric per
method (mean and interval, nst.report.intervals; marker area from seconds per image), the
training curves of every trained network (each run's losses.jsonl: the total loss against
step, then each method's loss terms), a table of every metric's mean and interval with time
and memory, and the weights of every network involved (loss networks, encoders, each trained
network's checkpoint, the judge). Only files are read: nothing is imported from nst.methods;
a missing or partial results/methods/ or losses.jsonl is a one-line note.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nst.report import figures as figs
from nst.report.data import MethodsResults, comparison_names, load_methods
from nst.report.grid import image_grid
from nst.report.intervals import Interval, describe, design, interval
from nst.report.networks import network_table
from nst.report.page import Cell, Section, Table
from nst.report.training import curves_plot, training_curves

TITLE = "Methods compared"
CONTENT_METRIC, STYLE_METRIC = "ssim", "style_gram_dist"
NON_METRICS = ("method", "content", "style", "image", "judge", "degenerate")


def methods_sections(results_dir: str | Path, found: MethodsResults | None = None) -> list[Section]:
    """One section per methods comparison under results_dir (results/methods/ first, then e.g.
    results/style_losses/), none when there is none (`found`: results/methods/, read already
    by nst.report.data.load_methods)."""
    sections = []
    for name in comparison_names(results_dir):
        one = found if found is not None and name == "methods" else load_methods(results_dir, name)
        if one is None:
            continue
        title = TITLE if name == "methods" else f"{TITLE}: {name}"
        if one.error:
            note = one.error.replace(str(one.root), f"results/{name}/") + "."
            sections.append(Section(title, note=note))
        else:
            sections.append(methods_section(one, title, name))
    return sections


def methods_section(found: MethodsResults, title: str = TITLE, name: str = "methods") -> Section:
    """The section of comparison `name` (results/<name>/); its figures are named after it
    (methods-grid; methods-style_losses-grid), unique on the page and in its assets."""
    summary, rows = found.summary, found.rows
    methods = [m for m in found.methods if m in set(rows["method"])]
    curves, problems, untrained = training_curves(found)
    bad = degenerate_methods(rows)
    unranked = (
        "Not ranked, their outputs being no stylisation: "
        + "; ".join(f"{m} ({why})" for m, why in bad.items())
        + "."
        if bad
        else ""
    )
    section = Section(
        title,
        note=" ".join(
            filter(None, [banner(found), judge_note(found), left_out(found), unranked, *problems])
        ),
    )
    grid = _grid(found, methods)
    if grid is not None:
        section.plots.append(grid)
    scatter = _scatter(rows, methods)
    if scatter is not None:
        section.plots.append(scatter)
    plot = curves_plot(curves, untrained)
    if plot is not None:
        section.plots.append(plot)
    if name != "methods":
        section.plots = [
            replace(p, name=p.name.replace("methods-", f"methods-{name}-", 1))
            for p in section.plots
        ]
    budget = budget_table(found)
    section.tables += [
        _metric_table(found, methods),
        _paired_table(found, methods),
        network_table(found),
        *([budget] if budget.rows else []),  # a comparison that trains nothing has no budget
    ]
    split = summary.get("split", {})
    section.tables.append(
        Table(
            ["fact", "value"],
            [
                ["profile", str(summary.get("profile", "–"))],
                ["image size", f"{summary.get('size', '–')} px"],
                [
                    "test photos (never trained on or selected on)",
                    ", ".join(split.get("contents", [])),
                ],
                [
                    "test styles (never seen by a study or an arbitrary-style training)",
                    ", ".join(split.get("styles", [])),
                ],
                ["test pairs", design(rows)],
                *split_rows(split),
                ["data source", str(summary.get("data_source") or "–")],
            ],
            "The protocol: every method on the same content x style pairs of the test split "
            f"({split.get('rule', '')}, seed {split.get('seed', '–')}); the networks train on the "
            "train and validation photos (adain, stytr: styles), never a test one; johnson trains "
            "one network per test style, cin one network for the test styles.",
        )
    )
    section.code = [
        f"nst methods {summary.get('spec', 'experiments/methods.yaml')} --profile "
        f"{summary.get('profile', 'quick')} --data {summary.get('data', 'data')} "
        "--out results"
    ]
    return section


def judge_note(found: MethodsResults) -> str:
    """The judge, and when it shares a family with a network the methods depended on, what that
    means for the feature metrics (nst.metrics.features.shared_family_note); "" without a judge."""
    judge = found.judge
    if not judge:
        return ""
    text = (
        f"Judge: {judge.get('backbone')}, none of the networks the methods depended on "
        f"({judge.get('excluded') or '–'})."
    )
    if judge.get("shared_family"):
        from nst.metrics.features import shared_family_note

        text += f" Note: the {shared_family_note(judge)}."
    return text


def split_rows(split: dict[str, Any]) -> list[list[Cell]]:
    """Rows "photos: train / validation / test" and "styles: ..." with each part's size."""
    counts = split.get("counts", {})
    return [
        [
            f"{noun}: train / validation / test",
            " / ".join(str(counts[kind].get(p, "–")) for p in ("train", "validation", "test")),
        ]
        for kind, noun in (("content", "photos"), ("style", "styles"))
        if kind in counts
    ]


def banner(found: MethodsResults) -> str:
    """The section's random-weights line (the page banner says it too, nst.report.networks),
    or "" when every network involved was pretrained."""
    random = found.random_networks()
    parts = []
    if random:
        parts.append(
            f"Random weights: {found.random_networks_text()} ran with seeded random weights (table below): "
            f"{'its' if len(random) == 1 else 'their'} images check the harness, not "
            "the method."
        )
    if found.judge_pretrained is False:
        parts.append(
            "The judge ran with random weights: its held-out metrics are not measurements."
        )
    return " ".join(parts)


def left_out(found: MethodsResults) -> str:
    """The methods the profile left out, each with the spec's reason."""
    gone = found.summary.get("left_out") or {}
    profile = found.summary.get("profile", "this")
    return " ".join(
        f"{name} is left out of the {profile} profile: {why}" for name, why in gone.items()
    )


def budget_table(found: MethodsResults) -> Table:
    """Each trained method's training budget here against its paper's (the spec's own config,
    nst.methods.spec REFERENCE_KEYS): a small budget is a different experiment, not the
    paper's result."""
    body: list[list[Cell]] = []
    for name, info in found.methods.items():
        config, reference = info.get("config") or {}, info.get("reference") or {}
        if not info.get("runs") or "steps" not in config:  # optimised per image: no training
            continue
        steps, batch = config.get("steps"), config.get("batch_size", "?")
        paper = reference.get("steps")
        counts: dict[str, Any] = next(
            (r["parameters"] for r in info.get("runs", []) if r.get("parameters")), {}
        )
        params = f"{counts['trainable']:,} of {counts['total']:,}" if counts.get("total") else "?"
        body.append(
            [
                name,
                f"{steps:,} of {paper:,}" if paper else f"{steps:,}",
                f"{batch} (paper {reference.get('batch_size', '?')})",
                f"{info.get('train_size', '?')} px",
                params,
            ]
        )
    caption = (
        "Each trained network's budget: training steps here of the paper's schedule, "
        "batch size, crop side, and its trained parameters of all (frozen encoders "
        "included). A network trained for a fraction of its schedule shows what the "
        "method does early, not the paper's result."
    )
    return Table(
        ["method", "steps (of the paper's)", "batch", "training crops", "parameters trained"],
        body,
        caption,
    )


def _grid(found: MethodsResults, methods: list[str]) -> figs.Plot | None:
    """A row per pair: its content and style images (when the data folder is still there),
    then one column per method."""
    root, rows = found.root, found.rows
    pairs = rows[["content", "style"]].drop_duplicates().values.tolist()
    inputs = [[_input(found, "content", c), _input(found, "style", s)] for c, s in pairs]
    shown = any(p is not None for pair in inputs for p in pair)
    cells: list[list[Path | str | None]] = []
    for (content, style), sources in zip(pairs, inputs, strict=True):
        line: list[Path | str | None] = [*sources] if shown else []
        for m in methods:
            hit = rows[
                (rows["method"] == m) & (rows["content"] == content) & (rows["style"] == style)
            ]
            line.append(root / str(hit["image"].iloc[0]) if len(hit) else None)
        cells.append(line)
    # two short lines: a long "content x style" label would run into the next row's
    labels = [f"{Path(str(c)).stem}\nx {Path(str(s)).stem}" for c, s in pairs]
    columns = (["content", "style"] if shown else []) + methods
    caption = (
        "Every test content x style pair (rows): "
        + ("its content and style images, then " if shown else "")
        + "one column per method."
    )
    return image_grid(cells, labels, columns, "methods-grid", caption, empty="not run")


def _input(found: MethodsResults, kind: str, name: object) -> Path | None:
    """A pair's content or style image in the data folder the comparison read (summary.json's
    `data`, as given or beside results/), or None when it is not there any more."""
    data = Path(str(found.summary.get("data") or "data"))
    folders = (
        [data / kind] if data.is_absolute() else [data / kind, found.root.parents[1] / data / kind]
    )
    for folder in folders:
        if (folder / str(name)).is_file():
            return folder / str(name)
    return None


def _scatter(rows: pd.DataFrame, methods: list[str]) -> figs.Plot | None:
    if CONTENT_METRIC not in rows or STYLE_METRIC not in rows or not methods:
        return None
    fig, axes = figs._figure(width=6.0, height=4.4)
    ax = axes[0, 0]
    seconds = {m: float(rows.loc[rows["method"] == m, "seconds"].mean()) for m in methods}
    top = max(max(seconds.values()), 1e-9)
    for m in methods:
        mine = rows[rows["method"] == m]
        x, y = _interval(mine, STYLE_METRIC), _interval(mine, CONTENT_METRIC)
        xerr = np.abs(np.array([[x.mean], [x.mean]]) - np.array(x.bounds).reshape(2, 1))
        yerr = np.abs(np.array([[y.mean], [y.mean]]) - np.array(y.bounds).reshape(2, 1))
        ax.errorbar(x.mean, y.mean, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.6")
        ax.scatter(
            [x.mean],
            [y.mean],
            s=30 + 400 * seconds[m] / top,
            alpha=0.8,
            label=f"{m} ({seconds[m]:.3g} s/image, n={y.n})",
        )
    ax.set_xlabel(figs.label(STYLE_METRIC))
    ax.set_ylabel(figs.label(CONTENT_METRIC))
    figs.legend_beside(ax, "method")
    caption = (
        f"Content ({CONTENT_METRIC}) against style ({STYLE_METRIC}) per method: the mean "
        f"over the test pairs with its interval ({describe(pairs=True)}); marker area "
        "grows with seconds per image."
    )
    return figs.Plot("methods-tradeoff", figs._render(fig), caption)


def _interval(mine: pd.DataFrame, column: str) -> Interval:
    """The mean of one method's `column` over its pairs, with the pair rule's interval."""
    values = pd.to_numeric(mine[column], errors="coerce")
    return interval(values, column, mine["content"].tolist(), mine["style"].tolist())


def degenerate_methods(rows: pd.DataFrame) -> dict[str, str]:
    """Method -> why it is not ranked: its outputs are degenerate (nst.metrics.degenerate:
    near-uniform, or the photo itself) in at least half of its pairs, e.g. "near-uniform in 4
    of 4 pairs". Results written before the check have no `degenerate` column: {}."""
    if "degenerate" not in rows.columns:
        return {}
    out: dict[str, str] = {}
    for method, mine in rows.groupby("method", sort=False):
        reasons = mine["degenerate"].astype("string").fillna("")
        bad = reasons[reasons != ""]
        if len(bad) and 2 * len(bad) >= len(mine):
            out[str(method)] = f"{' / '.join(sorted(set(bad)))} in {len(bad)} of {len(mine)} pairs"
    return out


def _metric_table(found: MethodsResults, methods: list[str]) -> Table:
    from nst.metrics.features import FEATURE_METRICS  # imports torch: only when a table is built

    rows = found.rows
    metrics = [c for c in rows.columns if c not in (*NON_METRICS, "seconds", "peak_memory_mb")]
    # the network-free metrics first, the judge's after them: they stand side by side
    metrics.sort(key=lambda c: (c in FEATURE_METRICS, c))
    judge = found.judge.get("backbone")
    body: list[list[Cell]] = []
    for c in ["seconds", "peak_memory_mb", *metrics]:
        label = figs.label(c) + (f" (judge {judge})" if judge and c in FEATURE_METRICS else "")
        body.append(
            [
                label,
                *(
                    _interval(rows[rows["method"] == m], c).text(figs.nice, sample=False)
                    for m in methods
                ),
            ]
        )
    bad = degenerate_methods(rows)
    if bad:
        body.append(["degenerate outputs (not ranked)", *(bad.get(m, "none") for m in methods)])
    caption = (
        f"Every metric's mean over the test pairs ({design(rows)}) with its interval "
        f"({describe(pairs=True)}), and seconds and peak memory per image (CPU: the "
        "process's peak resident set so far, an upper bound). The network-free metrics "
        "come first; the judge's feature metrics after them."
    )
    if found.judge.get("shared_family"):
        caption += f" The judge shares the {found.judge['shared_family']} family with the methods' networks (note above)."
    return Table(["metric", *methods], body, caption)


def _paired_table(found: MethodsResults, methods: list[str]) -> Table:
    """A - B per pair of methods and metric: the mean of the per-pair differences with its
    interval, and which is better only where the interval excludes zero."""
    from nst.metrics.features import FEATURE_METRICS, NETWORK_FREE
    from nst.report.intervals import paired_difference, verdict

    # the network-free metrics, then the judge's
    metrics = [m for m in (*NETWORK_FREE, *FEATURE_METRICS) if m in found.rows.columns]
    rows = found.rows.assign(**{m: pd.to_numeric(found.rows[m], errors="coerce") for m in metrics})
    body: list[list[Cell]] = []
    bad = degenerate_methods(rows)
    for i, a in enumerate(methods):
        for b in methods[i + 1 :]:
            line: list[Cell] = [f"{a} − {b}"]
            unranked = [f"{m}'s outputs are {bad[m]}" for m in (a, b) if m in bad]
            if unranked:  # a flat or unchanged image "wins" on ssim, tv, patch_energy
                body.append(
                    line + [f"not ranked: {'; '.join(unranked)}"] + [""] * (len(metrics) - 1)
                )
                continue
            for metric in metrics:
                diff = paired_difference(rows, metric, a, b)
                better = figs.metric_direction(metric) == "maximize"
                line.append(f"{diff.text(figs.nice, sample=False)}: {verdict(diff, a, b, better)}")
            body.append(line)
    arrows = {m: "↑" if figs.metric_direction(m) == "maximize" else "↓" for m in metrics}
    caption = (
        "Paired differences: every method ran on the same test pairs "
        f"({design(rows)}), so A − B is taken pair by pair, its mean shown with its "
        f"interval ({describe(pairs=True)}). "
        '"A better" is written only where that interval excludes zero on A\'s side; '
        "otherwise the difference is not resolved, and with fewer than 3 photos or styles "
        '("too few") nothing is: the range of the per-pair differences is shown '
        "instead. A method whose outputs are degenerate (near-uniform, or the photo "
        "itself, in at least half its pairs: nst.metrics.degenerate) is not ranked, "
        "since a flat image wins on ssim, tv and patch_energy. ↑ higher is better, ↓ "
        "lower is better."
    )
    headers = ["methods", *(f"{m} {arrows[m]}" for m in metrics)]
    return Table(headers, body, caption)
