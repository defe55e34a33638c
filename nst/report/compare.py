"""Cross-study sections of the report's index page.

A comparison is found by what a study searched, not by its file name: the backbone
comparison (VGG vs DeiT vs EfficientNet, with a table of which arms ran with pretrained
weights) is the study whose trials vary `backbone`, the optimiser comparison
varies `optimizer`, the initialisation comparison varies `init`. Each shows the best result
per group side by side, and per metric the mean with an interval over the group's complete
trials, the same in tables and figures (nst.report.intervals). The content x style grid
collects the best trials' results of every study.
"""

from __future__ import annotations

from pathlib import Path

from nst import NstError
from nst.backbones.registry import family
from nst.report import figures as figs
from nst.report.data import StudyResults
from nst.report.grid import THUMB, image_grid
from nst.report.intervals import count, describe, design_text, interval, pair_counts
from nst.report.networks import backbone_table, family_note
from nst.report.page import Cell, Section, Table
from nst.study.attrs import PAIRS

MAX_GRID = 8  # content images (rows) and styles (columns) at most: thumbnails stay legible


def cross_study_sections(studies: list[StudyResults]) -> list[Section]:
    return [
        group_section(studies, "backbone", "Backbones: VGG vs DeiT vs EfficientNet"),
        group_section(studies, "optimizer", "Optimisers"),
        group_section(studies, "init", "Initialisation"),
        content_style_section(studies),
    ]


def find_study(studies: list[StudyResults], param: str) -> StudyResults | None:
    """The study that compares values of `param` (prefer one whose name mentions it). A value
    counts as searched when any trial used it, complete or not: a study whose other values
    were all pruned still searched them."""
    column = f"params_{param}"
    found = [s for s in studies if column in s.trials and s.trials[column].nunique() >= 2]
    found.sort(key=lambda s: (param[:4] not in s.name, s.name))
    return found[0] if found else None


def group_section(studies: list[StudyResults], param: str, title: str) -> Section:
    study = find_study(studies, param)
    if study is None:
        return Section(
            title, note=f"Not available: no study searched `{param}` with 2 or more values."
        )
    column = f"params_{param}"
    frame = study.complete
    groups = sorted(frame[column].dropna().astype(str).unique())
    directions = {o.name: o.direction for o in study.objectives}
    section = Section(f"{title} (study {study.name})")
    section.note = _incomplete_note(study, column, groups)
    if not groups:
        return section
    if param == "backbone" and not any(family(g) == "vit" for g in groups):
        section.note = " ".join(
            [f"No DeiT trial completed in this study: comparing {', '.join(groups)}.", section.note]
        ).strip()
    section.tables.append(metric_table(study, column, groups))
    paired = paired_settings_table(study, column, groups)
    if paired is not None:
        section.tables.append(paired)
    arms = backbone_table(study) if param == "backbone" else None
    if arms is not None:
        section.tables.append(arms)
    grid = best_per_group_grid(study, column, groups, param)
    if grid:
        section.plots.append(grid)
    if study.curves is not None and "trial" in study.curves:
        curves = study.curves.merge(
            frame[["number", column]].astype({column: str}), left_on="trial", right_on="number"
        )
        for x in ("step", "seconds"):
            what = (
                "optimiser step (mean; band: " + describe() + ")"
                if x == "step"
                else "wall-clock time"
            )
            plot = figs.group_curves(
                curves,
                column,
                x,
                f"{param}-curves-{x}",
                f"Total loss against {what}, one colour per {param}.",
            )
            if plot:
                section.plots.append(plot)
    cost = [c for c in frame.columns if "peak_memory" in c] + ["duration_s"]
    plot = figs.group_values(
        frame,
        column,
        [o.name for o in study.objectives] + cost,
        f"{param}-values",
        f"Objectives, peak memory and trial duration per {param}: bars are means, error bars "
        f"the table's intervals ({describe()}), dots are trials; n under each bar.",
        directions,
    )
    if plot:
        section.plots.append(plot)
    return section


def _incomplete_note(study: StudyResults, column: str, groups: list[str]) -> str:
    """Which searched values have no complete trial, and what became of their trials."""
    trials = study.trials.dropna(subset=[column]).astype({column: str})
    missing = sorted(set(trials[column]) - set(groups))
    if not missing:
        return ""
    parts = []
    for value in missing:
        states = trials.loc[trials[column] == value, "state"].map(_state).value_counts()
        counts = sorted(states.items(), key=lambda kv: (-kv[1], kv[0]))
        parts.append(f"{value} ({', '.join(f'{n} {s}' for s, n in counts)})")
    lead = (
        "No complete trial at all"
        if not groups
        else f"Only {len(groups)} of {len(groups) + len(missing)} searched values have complete trials"
    )
    return f"{lead}; searched without a complete trial: {'; '.join(parts)}."


def _state(state: object) -> str:
    return {"FAIL": "failed"}.get(str(state), str(state).lower())


def metric_table(study: StudyResults, column: str, groups: list[str]) -> Table:
    frame = study.complete.astype({column: str})
    directions = {o.name: o.arrow for o in study.objectives}
    metrics = [o.name for o in figs.objectives_of(study)]
    metrics += [
        c
        for c in frame.columns
        if c.startswith("metric_") and c.removeprefix("metric_") not in metrics
    ]
    metrics += [c for c in ("duration_s",) if c in frame]
    rows: list[list[Cell]] = []
    for metric in metrics:
        name = metric.removeprefix("metric_")
        direction = figs.metric_direction(name)
        arrow = directions.get(name) or {"maximize": "↑", "minimize": "↓"}.get(direction or "", "")
        row: list[Cell] = [f"{name} {arrow}".strip()]
        for g in groups:
            row.append(interval(frame.loc[frame[column] == g, metric], metric).text(figs.nice))
        rows.append(row)
    caption = (
        f"Mean [interval] (n complete trials) of every metric per "
        f"{column.removeprefix('params_')}: {describe()}. ↑ higher is better, ↓ lower is better."
        + family_note(study)
    )
    return Table(["metric", *groups], rows, caption)


def paired_settings_table(study: StudyResults, column: str, groups: list[str]) -> Table | None:
    """Each setting against the best one, pair by pair: every trial of a study ran the same
    pairs (pairs.csv), so per pair a setting's value is the mean over its complete trials, and
    setting - best is compared pair by pair (nst.report.intervals.paired_difference); None
    without pairs.csv or with fewer than two settings."""
    from nst.metrics.features import NETWORK_FREE  # imports torch: only when a table is built
    from nst.report.intervals import paired_difference, verdict

    if study.pairs is None or len(groups) < 2 or "trial" not in study.pairs:
        return None
    setting = study.complete[["number", column]].astype({column: str})
    frame = study.pairs.merge(setting, left_on="trial", right_on="number")
    metrics = [o.name for o in figs.objectives_of(study) if o.name in frame]
    metrics += [m for m in NETWORK_FREE if m in frame and m not in metrics]
    if frame.empty or not metrics:
        return None
    first = metrics[0]
    higher = {
        m: figs.metric_direction(m) == "maximize"
        or any(o.name == m and o.direction == "maximize" for o in study.objectives)
        for m in metrics
    }
    per_pair = frame.groupby([column, "content", "style"], as_index=False)[metrics].mean()
    n_pairs, photos, styles = pair_counts(per_pair)
    means = per_pair.groupby(column)[first].mean()
    best = str(means.idxmax() if higher[first] else means.idxmin())
    body: list[list[Cell]] = []
    for g in [g for g in groups if g != best and g in set(per_pair[column])]:
        line: list[Cell] = [f"{g} − {best}"]
        for m in metrics:
            diff = paired_difference(per_pair, m, g, best, by=column)
            line.append(
                f"{diff.text(figs.nice, sample=False)}: {verdict(diff, g, best, higher[m])}"
            )
        body.append(line)
    caption = (
        f"Each {column.removeprefix('params_')} against the best by {first} ({best}), pair by "
        f"pair: every trial ran the same {count(n_pairs, 'pair')} ({design_text(photos, styles)}), so per pair a setting's value is the mean over "
        f"its complete trials, and the difference's mean is shown with its interval "
        f"({describe(pairs=True)}). The interval covers the photos and styles, not the other "
        'settings the trials drew (a grid sampler gives every setting the same ones). "better" '
        'only where the interval excludes zero ("too few": under 3 photos or styles, the '
        "range instead, nothing resolved)." + family_note(study)
    )
    headers = ["setting − best", *(f"{m} {'↑' if higher[m] else '↓'}" for m in metrics)]
    return Table(headers, body, caption)


def best_per_group_grid(
    study: StudyResults, column: str, groups: list[str], param: str
) -> figs.Plot | None:
    """Rows: content/style pairs; columns: content, style, then the best result per group."""
    objective = figs.objectives_of(study)[0] if figs.objectives_of(study) else None
    if objective is None:
        return None
    sources = study.pair_sources()
    best = {}
    for g in groups:
        trial = study.best_by(objective, study.complete[study.complete[column].astype(str) == g])
        if trial is not None:
            best[g] = int(trial["number"])
    pairs = sorted({k for (t, k) in study.images if t in best.values()} | set(sources))
    cells: list[list[Path | None]] = []
    for k in pairs:
        content, style = sources.get(k, (None, None))
        cells.append(
            [study.resolve(content), study.resolve(style)]
            + [study.images.get((best[g], k)) if g in best else None for g in groups]
        )
    labels = [_pair_label(sources[k]) if k in sources else f"pair {k}" for k in pairs]
    cols = ["content", "style", *[f"{param}={g} (#{best.get(g, '–')})" for g in groups]]
    caption = (
        f"Best result per {param} (by {objective.name}) for each content/style pair; "
        f"thumbnails at most {THUMB} px."
    )
    return image_grid(cells, labels, cols, f"{param}-images", caption)


def _pair_label(pair: tuple[str, str]) -> str:
    return f"{Path(pair[0]).stem}\nx {Path(pair[1]).stem}"


def content_style_section(studies: list[StudyResults]) -> Section:
    """One result per content (rows) x style (columns) pair, named by study and trial, chosen by
    GRID_RULE among the best trials of every study."""
    candidates: dict[tuple[str, str], list[tuple[StudyResults, int, Path]]] = {}
    sources: dict[str, Path | None] = {}
    # studies whose networks are all pretrained first, then the others, each in name order
    for study in sorted(studies, key=lambda s: s.random_weights):
        for best in study.summary.get("best_trials") or []:
            for pair in best.get(PAIRS) or []:
                if not isinstance(pair, dict) or not pair.get("content") or not pair.get("style"):
                    continue
                result = study.resolve(pair.get("result"))
                c, s = str(pair["content"]), str(pair["style"])
                sources.setdefault(c, study.resolve(c))
                sources.setdefault(s, study.resolve(s))
                if result is not None:
                    entry = (study, int(best.get("number", -1)), result)
                    candidates.setdefault((c, s), []).append(entry)
    title = "Content x style grid"
    if not candidates:
        return Section(
            title, note="Not available: no best trial lists its content/style pairs and results."
        )
    chosen, skipped = _choose(candidates, sources)
    results = {k: v[2] for k, v in chosen.items()}
    all_contents = sorted({c for c, _ in candidates})
    all_styles = sorted({s for _, s in candidates})
    contents, styles = all_contents[:MAX_GRID], all_styles[:MAX_GRID]
    cells: list[list[Path | str | None]] = [["", *[sources.get(s) for s in styles]]]
    # a pair that ran but gave no stylisation says so; one no study ran is "not run"
    cells += [
        [
            sources.get(c),
            *[
                results.get((c, s)) or ("no stylisation" if (c, s) in candidates else None)
                for s in styles
            ],
        ]
        for c in contents
    ]
    named = [["", *([""] * len(styles))]]
    named += [["", *(_from(chosen.get((c, s))) for s in styles)] for c in contents]
    labels = ["style →", *[Path(c).stem for c in contents]]
    cols = ["content ↓", *[Path(s).stem for s in styles]]
    caption = (
        f"One result per pair, {count(len(contents), 'content image')} (rows) x "
        f"{count(len(styles), 'style')} (columns), {count(len(results), 'pair')} with a "
        f"result; first row and column show the inputs; under each result, its study and "
        f"trial. {GRID_RULE}"
    )
    plot = image_grid(
        cells, labels, cols, "content-style", caption, empty="not run", cell_labels=named
    )
    note = _grid_note(studies, all_contents, all_styles, results)
    if skipped:
        note += (
            f" {count(skipped, 'best-trial result')} left out as no stylisation "
            "(near-uniform, or the photo itself)."
        )
    return Section(title, note=note.strip(), plots=[plot] if plot else [])


#: how content_style_section picks a pair's result, said in its caption
GRID_RULE = (
    "Rule: among each study's best trials that ran the pair (its best trial, or its Pareto "
    "front in trial order), studies whose networks are all pretrained come first, then the "
    "rest, each in name order; the first result that is a stylisation wins (not "
    "near-uniform, not the photo itself: nst.metrics.degenerate)."
)


def _choose(
    candidates: dict[tuple[str, str], list[tuple[StudyResults, int, Path]]],
    sources: dict[str, Path | None],
) -> tuple[dict[tuple[str, str], tuple[StudyResults, int, Path]], int]:
    """GRID_RULE's pick per pair, and how many results were skipped as degenerate."""
    from nst.images import load_image  # torch: only when a grid is built
    from nst.metrics.degenerate import degenerate

    chosen: dict[tuple[str, str], tuple[StudyResults, int, Path]] = {}
    skipped = 0
    for (c, s), entries in candidates.items():
        photo = sources.get(c)
        for entry in entries:
            try:
                why = degenerate(load_image(entry[2]), load_image(photo)) if photo else ""
            except NstError:
                why = ""  # unreadable: the grid says "missing" for it
            if why:
                skipped += 1
                continue
            chosen[(c, s)] = entry
            break
    return chosen, skipped


def _from(entry: tuple[StudyResults, int, Path] | None) -> str:
    return f"{entry[0].name} #{entry[1]}" if entry else ""


def _grid_note(
    studies: list[StudyResults],
    contents: list[str],
    styles: list[str],
    results: dict[tuple[str, str], Path],
) -> str:
    """Why the grid is smaller than the data: each study runs `pairs.count` pairs of it."""
    notes = []
    if len(contents) > MAX_GRID or len(styles) > MAX_GRID:
        notes.append(
            f"First {min(len(contents), MAX_GRID)} of {len(contents)} content images and "
            f"{min(len(styles), MAX_GRID)} of {len(styles)} styles shown."
        )
    data = [s.provenance.get("data") or {} for s in studies]
    sizes = {
        (d["content"], d["styles"])
        for d in data
        if isinstance(d.get("content"), int) and isinstance(d.get("styles"), int)
    }
    counts = sorted(
        {int((s.provenance.get("params") or {}).get("pairs", {}).get("count", 0)) for s in studies}
        - {0}
    )
    if len(sizes) == 1:
        n_content, n_styles = sizes.pop()
        if len(results) < n_content * n_styles:
            each = f" (`pairs.count` = {', '.join(map(str, counts))} per study)" if counts else ""
            notes.append(
                f"{count(len(results), 'pair')} of the data's {n_content} x {n_styles} = "
                f"{n_content * n_styles} content x style pairs {'has' if len(results) == 1 else 'have'} "
                f"results: each study runs only a sample of the pairs{each}, the same sample when "
                "the studies share `pairs.seed`."
            )
    return " ".join(notes)
