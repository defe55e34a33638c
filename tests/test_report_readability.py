"""What a reader of the report sees (issue 19): intervals inside the metric's range and the
same in tables and figures, values searched by pruned trials, numeric parameter axes, the
data's source and the time budget, and the content x style grid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
from fake_study import fake_study, noise_png
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from nst.report import figures as figs
from nst.report.build import build_report
from nst.report.compare import content_style_section, group_section
from nst.report.data import load_results, load_study
from nst.report.intervals import value_range

BOTH = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
NUMBER = r"(-?[\d.]+(?:e[-+]?\d+)?)"
CELL = re.compile(rf"{NUMBER} (?:\[{NUMBER}, {NUMBER}\]|\(range {NUMBER}–{NUMBER}, )?.*n=(\d+)")


def edit(root: Path, trials: dict[str, object] | None = None, **summary: object) -> None:
    """Change a fake study's trials.csv columns (name -> values) and summary.json keys."""
    if trials:
        frame = pd.read_csv(root / "trials.csv")
        for column, values in trials.items():
            frame[column] = values
        frame.to_csv(root / "trials.csv", index=False)
    data = json.loads((root / "summary.json").read_text())
    for key, value in summary.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    (root / "summary.json").write_text(json.dumps(data))


def ylabels(fig: Figure) -> set[str]:
    return {a.get_ylabel().split()[0] for a in fig.axes if a.get_ylabel()}


def error_bars(ax: Axes) -> list[tuple[float, float]]:
    """The vertical intervals drawn on `ax`, left to right: error-bar segments, or seaborn's
    2-point vertical lines."""
    found = [
        (float(seg[0][0]), float(min(seg[0][1], seg[1][1])), float(max(seg[0][1], seg[1][1])))
        for c in ax.collections
        if isinstance(c, LineCollection)
        for seg in c.get_segments()
        if len(seg) == 2 and seg[0][0] == seg[1][0] and seg[0][1] != seg[1][1]
    ]
    for line in ax.lines:
        x, y = line.get_xdata(), line.get_ydata()
        if len(x) == 2 and x[0] == x[1] and y[0] != y[1]:
            found.append((float(x[0]), float(min(y)), float(max(y))))
    return [(low, high) for _, low, high in sorted(found)]


def parse(cell: str) -> tuple[str, str, str, int]:
    """'m [lo, hi] (n=3)' or 'm (range lo–hi, n=2)' -> the numbers as printed."""
    match = CELL.match(cell)
    assert match, cell
    mean, ci_lo, ci_hi, r_lo, r_hi, n = match.groups()
    return mean, ci_lo or r_lo or "", ci_hi or r_hi or "", int(n)


def test_intervals_stay_in_range_and_tables_and_figures_agree(
    tmp_path: Path, rendered: list[Figure]
) -> None:
    # vgg19: trials 0, 2, 4 (n=3, a t interval far past SSIM 1 and below 0 MiB unclipped);
    # deit_tiny: 1 and 3 complete, 5 failed (n=2: min-max), 6 pruned
    root = fake_study(
        tmp_path / "results",
        tmp_path / "data",
        "backbones",
        {"backbone": ["vgg19", "deit_tiny"]},
        BOTH,
        n=7,
    )
    edit(
        root,
        {
            "state": ["COMPLETE"] * 5 + ["FAIL", "PRUNED"],
            "ssim": [0.99, 0.2, 0.5, 0.3, 0.98, 0.9, 0.1],
            "metric_peak_memory_mb": [10.0, 900.0, 3000.0, 1000.0, 20.0, 5.0, 5.0],
        },
    )
    study = load_results(tmp_path / "results")[0]
    section = group_section([study], "backbone", "Backbones")
    table = section.tables[0]
    assert table.headers == ["metric", "deit_tiny", "vgg19"]
    rows = {str(r[0]).split()[0]: [str(c) for c in r[1:]] for r in table.rows}
    values = next(f for f in rendered if {"ssim", "duration_s"} <= ylabels(f))
    panels = {a.get_ylabel().split()[0]: a for a in values.axes}
    for metric in ("ssim", "peak_memory_mb", "duration_s", "style_gram_dist"):
        low_bound, high_bound = value_range(metric)
        drawn = error_bars(panels[metric])
        for cell, (drawn_low, drawn_high) in zip(rows[metric], drawn, strict=True):
            mean, low, high, n = parse(cell)
            assert n >= 2 and low_bound <= float(low) <= float(mean) <= float(high) <= high_bound
            # the figure draws the table's interval: the same numbers, as printed
            assert [f"{drawn_low:.4g}", f"{drawn_high:.4g}"] == [low, high], metric
    assert rows["ssim"][1].endswith("(n=3)") and ", 1]" in rows["ssim"][1]  # clipped at SSIM 1
    assert rows["peak_memory_mb"][1].startswith("1010 [0, ")  # clipped at 0 MiB
    assert rows["ssim"][0] == "0.25 (range 0.2–0.3, n=2)"  # two trials: their min and max
    assert "min–max instead when n < 3" in table.caption


def test_a_value_only_pruned_trials_used_still_counts_as_searched(tmp_path: Path) -> None:
    root = fake_study(
        tmp_path / "results",
        tmp_path / "data",
        "optimizers",
        {"optimizer": ["adam", "lbfgs", "sgd", "adamw"]},
        [("total", "minimize")],
        n=8,
    )
    edit(
        root,
        {
            "state": [
                "COMPLETE",
                "PRUNED",
                "PRUNED",
                "PRUNED",
                "COMPLETE",
                "PRUNED",
                "FAIL",
                "PRUNED",
            ]
        },
    )
    build_report(tmp_path / "results", tmp_path / "reports", reconstruction_steps=0)
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "<h2>Optimisers (study optimizers)</h2>" in index
    assert (
        "Only 1 of 4 searched values have complete trials; searched without a complete trial: "
        "adamw (2 pruned); lbfgs (2 pruned); sgd (1 failed, 1 pruned)." in index
    )
    # code is code in HTML, and stays backticked in Markdown
    assert "Not available: no study searched <code>backbone</code> with 2 or more values." in index
    assert "`" not in re.sub(r"<pre>.*?</pre>", "", index, flags=re.S)
    readme = (tmp_path / "reports" / "README.md").read_text()
    assert "no study searched `backbone` with 2 or more values" in readme


def test_a_log_scale_float_is_plotted_on_a_log_axis_with_short_ticks(
    tmp_path: Path, rendered: list[Figure]
) -> None:
    lrs = [0.0012345678901234567, 0.012345678901234567, 0.12345678901234567]
    root = fake_study(
        tmp_path / "results",
        tmp_path / "data",
        "optimizers",
        {"optimizer": ["adam", "sgd"], "lr": lrs},
        [("total", "minimize")],
    )
    search = {
        "optimizer": {"type": "categorical", "choices": ["adam", "sgd"]},
        "lr": {"type": "float", "low": 1e-3, "high": 1.0, "log": True, "step": None},
    }
    edit(root, provenance={"params": {"search": search}})
    assert figs.slices(load_study(root)) is not None
    panels = {a.get_xlabel().split()[0]: a for a in rendered[-1].axes}
    lr = panels["lr"]
    assert lr.get_xscale() == "log" and "log scale" in lr.get_xlabel()
    low, high = lr.get_xlim()
    assert low < 1e-3 and high > 1.0  # the searched range, not just the sampled values
    ticks = [t.get_text() for t in lr.get_xticklabels() if low <= t.get_position()[0] <= high]
    assert ticks and all(len(t) <= 6 for t in ticks), ticks
    assert "0.01" in ticks and "0.1" in ticks
    assert panels["optimizer"].get_xscale() == "linear"  # categories stay categories


def test_data_source_and_time_budget_on_the_study_page_and_the_index(tmp_path: Path) -> None:
    root = fake_study(
        tmp_path / "results", tmp_path / "data", "init", {"init": ["content", "noise"]}, BOTH
    )
    edit(
        root,
        elapsed_s=171.4,
        provenance={
            "data": {"source": "embedded", "content": 4, "styles": 4},
            "params": {"budget": {"trials": 8, "timeout_s": 170}, "pairs": {"count": 2, "seed": 0}},
        },
    )
    build_report(tmp_path / "results", tmp_path / "reports", reconstruction_steps=0)
    page = (tmp_path / "reports" / "init.html").read_text()
    index = (tmp_path / "reports" / "index.html").read_text()
    stopped = "8 trials or 170 s: stopped at the time budget after 6 of 8 trials (171 s)"
    for html in (page, index):
        assert stopped in html
    assert "the offline embedded sample (<code>source: embedded</code> in the data lock, " in page
    assert "Data: study init used the offline embedded sample" in index
    assert "<td>embedded</td>" in index


def test_a_grid_study_that_ran_every_cell_says_so_not_interrupted(tmp_path: Path) -> None:
    """backbones.yaml's quick grid has 6 cells and a budget of 8 trials: Optuna stops after
    the sixth, and the page says the grid is done instead of blaming a stopped worker."""
    from nst.study.space import grid_cells
    from nst.study.spec import load_experiment

    experiments = Path(__file__).resolve().parents[1] / "experiments"
    spec = load_experiment(experiments / "backbones.yaml").with_profile("quick")
    assert grid_cells(spec) == 6 and spec.budget["trials"] == 8
    assert grid_cells(load_experiment(experiments / "init.yaml")) is None
    root = fake_study(
        tmp_path / "results", tmp_path / "data", "init", {"init": ["content", "noise"]}, BOTH
    )
    edit(
        root,
        elapsed_s=67.0,
        grid_cells=6,
        provenance={"params": {"budget": {"trials": 8, "timeout_s": 300}}},
    )
    build_report(tmp_path / "results", tmp_path / "reports", reconstruction_steps=0)
    for page in ("init.html", "index.html"):
        html = (tmp_path / "reports" / page).read_text()
        assert "8 trials or 300 s: the grid&#39;s 6 cells all ran" in html, page
        assert "interrupted" not in html


def test_outputs_record_where_the_data_came_from(tmp_path: Path) -> None:
    from nst.study.outputs import data_facts

    data = tmp_path / "data"
    noise_png(data / "content" / "a.png", 0)
    assert data_facts(data, tmp_path / "results" / "s") == {"source": "unlocked"}
    files = {
        "content/a.png": {"kind": "content", "source": "mirror"},
        "style/b.png": {"kind": "style", "source": "mirror"},
    }
    (data / "lock.json").write_text(json.dumps({"source": "mirror", "files": files}))
    assert data_facts(data, tmp_path / "results" / "s") == {
        "source": "mirror",
        "content": 1,
        "styles": 1,
    }
    # no data folder: the study ran on the embedded sample
    assert data_facts(None, tmp_path / "results" / "s")["source"] == "embedded"


def test_content_style_grid_has_a_row_per_content_and_a_column_per_style(
    tmp_path: Path, rendered: list[Figure]
) -> None:
    data = tmp_path / "data"
    root = fake_study(tmp_path / "results", data, "init", {"init": ["content", "noise"]}, BOTH)
    photo2 = noise_png(data / "content" / "photo2.png", 2)
    summary = json.loads((root / "summary.json").read_text())
    best = summary["best_trials"]
    c0, c1 = (best[0]["pairs"][k]["content"] for k in (0, 1))
    s0, s1 = (best[0]["pairs"][k]["style"] for k in (0, 1))
    result = best[0]["pairs"][0]["result"]
    noise_png(root / result, 999)  # not photo0's own noise (the fixture draws both from seed 0)
    best[0]["pairs"] = [
        {"content": c, "style": s, "result": result}
        for c, s in ((c0, s0), (c1, s0), (str(photo2), s1))
    ]
    best[1]["pairs"] = []
    edit(
        root,
        best_trials=best,
        provenance={
            "data": {"source": "embedded", "content": 4, "styles": 4},
            "params": {"pairs": {"count": 3}},
        },
    )
    section = content_style_section(load_results(tmp_path / "results"))
    grid = rendered[-1]
    assert len(grid.axes) == (1 + 3) * (1 + 2)  # a header row and column, 3 contents x 2 styles
    corner = grid.axes[0]
    assert not any(s.get_visible() for s in corner.spines.values()), "an empty framed corner"
    assert "3 content images (rows) x 2 styles (columns), 3 pairs with a result" in (
        section.plots[0].caption
    )
    assert "3 pairs of the data's 4 x 4 = 16 content x style pairs have results" in section.note
    assert "`pairs.count` = 3 per study" in section.note
    # one content image: singular
    best[0]["pairs"] = best[0]["pairs"][:1]
    edit(root, best_trials=best)
    section = content_style_section(load_results(tmp_path / "results"))
    assert "1 content image (rows) x 1 style (columns), 1 pair with a result" in (
        section.plots[0].caption
    )
    assert "1 pair of the data's 4 x 4 = 16 content x style pairs has results" in section.note


def test_no_legend_covers_a_panel(tmp_path: Path, rendered: list[Figure]) -> None:
    """Every legend of every figure of a report (Pareto front, history, loss curves, group
    curves, ...) sits beside or below its panel: none overlaps the data area of an axes."""
    results = tmp_path / "results"
    fake_study(results, tmp_path / "data", "optimizers", {"optimizer": ["adam", "lbfgs"]}, BOTH)
    fake_study(results, tmp_path / "data", "init", {"init": ["content", "noise"]}, BOTH)
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    checked = 0
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in rendered:
        renderer = FigureCanvasAgg(fig).get_renderer()
        panels = [ax.get_window_extent(renderer) for ax in fig.axes]
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box = legend.get_window_extent(renderer)
            checked += 1
            for panel in panels:
                assert not box.overlaps(panel), f"a legend over a panel of {ax.get_title()!r}"
    assert checked >= 3  # the Pareto front, the history, and the curves have legends
