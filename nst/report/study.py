"""The sections of one study's page: best trials, Pareto front, importances, history, loss
curves, parameter slices, every trial with its MLflow run, and the provenance with the
commands that reproduce the study."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from nst.data.lock import DATA_LOCK_SHA256
from nst.report import figures as figs
from nst.report.data import StudyResults
from nst.report.grid import THUMB, image_grid
from nst.report.networks import backbone_table, judge_text, network_rows, networks_text
from nst.report.page import MAX_TRIAL_ROWS, Cell, Links, Section, Table
from nst.study.attrs import MLFLOW_RUN_ID, PAIRS


def study_sections(study: StudyResults, links: Links) -> list[Section]:
    return [
        summary_section(study, links),
        best_trials_section(study, links),
        _plot_section("Pareto front", figs.pareto_front(study), _pareto_note(study)),
        _plot_section(
            "Parameter importances",
            figs.importances(study),
            "no importances in summary.json"
            + (
                f" ({study.summary['importances_note']})"
                if study.summary.get("importances_note")
                else " (they need at least 2 complete trials and a searched parameter)"
            ),
        ),
        _plot_section("Optimisation history", figs.history(study), "no complete trials"),
        loss_section(study),
        _plot_section(
            "Parameter slices", figs.slices(study), "no searched parameters or no complete trials"
        ),
        trials_section(study, links),
        provenance_section(study),
    ]


def _plot_section(title: str, plot: figs.Plot | None, missing: str) -> Section:
    return (
        Section(title, plots=[plot]) if plot else Section(title, note=f"Not available: {missing}.")
    )


def _pareto_note(study: StudyResults) -> str:
    if len(study.objectives) < 2:
        return f"single objective ({study.objectives[0].name}), so no Pareto front"
    return "no complete trial with both objective values"


def _failures(failures: list[dict]) -> str:
    """'2: non-finite loss: ... (retried as 5)', one per failed trial, or 'none'."""
    return (
        "; ".join(
            f"{f.get('number')}: {f.get('reason')}"
            + (f" (retried as {f['retried_as']})" if f.get("retried_as") is not None else "")
            for f in failures
        )
        or "none"
    )


def _skipped(paths: list[str]) -> str:
    """How many unreadable data images the study skipped, and which."""
    if not paths:
        return "0"
    names = ", ".join(Path(p).name for p in paths[:5]) + (", ..." if len(paths) > 5 else "")
    return f"{len(paths)} unreadable, skipped: {names}"


def summary_section(study: StudyResults, links: Links) -> Section:
    s = study.summary
    states = study.states
    mlflow = s.get("mlflow") or {}
    rows: list[list[Cell]] = [
        ["objectives", ", ".join(f"{o.name} ({o.direction})" for o in study.objectives)],
        ["searched", ", ".join(study.params) or "–"],
        [
            "trials",
            f"{s.get('n_trials', len(study.trials))}: "
            + (", ".join(f"{k} {v}" for k, v in states.items()) or "–"),
        ],
        ["trial budget", budget_text(study) or "–"],
        ["data", data_text(study) or "unknown (summary.json does not record the data's source)"],
        ["failed trials", _failures(s.get("failures") or [])],
        ["skipped images", _skipped(s.get("skipped_images") or [])],
        ["profile", str(s.get("profile", "–"))],
        ["Optuna storage", str(s.get("storage", "–"))],
        [
            "MLflow",
            f"{mlflow.get('tracking_uri', '–')}, experiment {mlflow.get('experiment', '–')}",
        ],
        ["MLflow parent run", links.run(study, mlflow.get("parent_run_id"))],
        ["weights", ", ".join(study.weights) or "–"],
        ["network", f"{networks_text(study)}; {study.backbone_choice or 'choice not recorded'}"],
        ["judge", judge_text(study)],
    ]
    dash = links.dashboard(study)
    if dash:
        rows.append(["Optuna dashboard", dash])
    return Section(
        "Summary",
        tables=[
            Table(["field", "value"], rows, "What was searched, and where the runs are stored.")
        ],
    )


def budget_text(study: StudyResults) -> str:
    """'8 trials or 170 s: stopped at the time budget after 6 trials (171 s)', or ''."""
    trials, timeout, ran = study.budget()
    if trials is None:
        return ""
    elapsed = study.elapsed_s()
    limits = f"{trials} trials" + (f" or {timeout:.0f} s" if timeout else "")
    if ran >= trials:
        return f"{limits}: all {trials} ran"
    cells = study.summary.get("grid_cells")
    if isinstance(cells, int) and ran >= cells:
        return f"{limits}: the grid's {cells} cells all ran"
    took = f" ({elapsed:.0f} s)" if elapsed is not None else ""
    # Optuna checks its timeout between trials, so a timed-out run lasts at least timeout_s
    # (the fallback, first trial start to last end, can fall short of it by the set-up time)
    if timeout and elapsed is not None and elapsed >= 0.95 * timeout:
        return f"{limits}: stopped at the time budget after {ran} of {trials} trials{took}"
    return f"{limits}: {ran} of {trials} trials ran{took} (interrupted, or a worker stopped)"


def data_text(study: StudyResults) -> str:
    """What the data was, '' when summary.json does not say."""
    facts = study.provenance.get("data") or {}
    source = study.data_source
    if not source:
        return ""
    counts = (
        f", {facts['content']} content x {facts['styles']} style images"
        if isinstance(facts.get("content"), int) and isinstance(facts.get("styles"), int)
        else ""
    )
    if source == "embedded":
        return (
            f"the offline embedded sample (`source: embedded` in the data lock{counts}), not the "
            "COCO/WikiArt images: results are not comparable with fetched data"
        )
    return f"`source: {source}` in the data lock{counts}"


def best_trials_section(study: StudyResults, links: Links) -> Section:
    best = study.summary.get("best_trials") or []
    if not best:
        return Section("Best trials", note="Not available: summary.json lists no best trials.")
    names = [o.name for o in study.objectives]
    params = sorted({p for b in best for p in (b.get("params") or {})})
    rows: list[list[Cell]] = []
    cells: list[list[Path | None]] = []
    labels: list[str] = []
    for b in best:
        values = b.get("values") or {}
        rows.append(
            [cast(Cell, f"#{b.get('number')}")]
            + [figs.nice(_float(values.get(n))) for n in names]
            + [figs.nice((b.get("params") or {}).get(p, "–")) for p in params]
            + [links.run(study, b.get(MLFLOW_RUN_ID))]
        )
        for k, pair in enumerate(b.get(PAIRS) or []):
            pair = pair if isinstance(pair, dict) else {}
            result = study.resolve(pair.get("result")) or study.images.get(
                (_int(b.get("number")), k)
            )
            cells.append(
                [study.resolve(pair.get("content")), study.resolve(pair.get("style")), result]
            )
            labels.append(
                f"trial #{b.get('number')}\n"
                + "\nx ".join(Path(str(pair.get(key, "?"))).stem for key in ("content", "style"))
            )
    headers = (
        ["trial"] + [f"{o.name} {o.arrow}" for o in study.objectives] + params + ["MLflow run"]
    )
    table = Table(
        headers, rows, "The best trials (the Pareto set when there are several objectives)."
    )
    grid = image_grid(
        cells,
        labels,
        ["content", "style", "result"],
        "best-images",
        "Best trials: content image, style image and result side by side (thumbnails, long side "
        f"at most {THUMB} px).",
    )
    note = "" if grid else "Images not found: the best trials' image paths do not exist."
    return Section("Best trials", note=note, tables=[table], plots=[grid] if grid else [])


def loss_section(study: StudyResults) -> Section:
    plots = [p for p in (figs.loss_curves(study, "step"), figs.loss_curves(study, "seconds")) if p]
    if not plots:
        return Section(
            "Loss curves", note="Not available: no curves.csv (or it has no loss columns)."
        )
    return Section("Loss curves", plots=plots)


def trials_section(study: StudyResults, links: Links) -> Section:
    frame = study.trials.sort_values("number") if "number" in study.trials else study.trials
    if frame.empty:
        return Section("All trials", note="Not available: no trials.csv or it has no rows.")
    objectives = [o.name for o in figs.objectives_of(study)]
    params = [f"params_{p}" for p in study.params]
    extra = [c for c in ("duration_s",) if c in frame]
    rows: list[list[Cell]] = []
    for _, t in frame.head(MAX_TRIAL_ROWS).iterrows():
        rows.append(
            [cast(Cell, str(t.get("number", "?"))), str(t.get("state", "?"))]
            + [figs.nice(t[c]) for c in objectives + params + extra]
            + [links.run(study, t.get(MLFLOW_RUN_ID))]
        )
    headers = [
        "trial",
        "state",
        *objectives,
        *[p.removeprefix("params_") for p in params],
        *extra,
        "MLflow run",
    ]
    caption = "Every trial, linked to its MLflow run (per-step losses, images, parameters, tags)."
    note = (
        ""
        if len(frame) <= MAX_TRIAL_ROWS
        else f"First {MAX_TRIAL_ROWS} of {len(frame)} trials shown."
    )
    return Section("All trials", note=note, tables=[Table(headers, rows, caption)])


def provenance_section(study: StudyResults) -> Section:
    p = study.provenance
    if not p:
        return Section(
            "Provenance and reproduction",
            note="Not available: summary.json has no provenance.",
            code=reproduce_commands(study),
        )
    dirty = " (uncommitted changes)" if str(p.get("git_dirty")).lower() == "true" else ""
    versions = p.get("versions") or {}
    rows: list[list[Cell]] = [
        ["git commit", f"{p.get('git_commit', 'unknown')}{dirty}"],
        [
            DATA_LOCK_SHA256,  # the name `nst fetch` prints it under and MLflow tags it with
            str(p.get(DATA_LOCK_SHA256) or "– (embedded sample, no data/lock.json)"),
        ],
        ["started", str(p.get("started", "–"))],
        ["finished", str(p.get("finished", "–"))],
        ["host", str(p.get("host", "–"))],
        ["weights", ", ".join(study.weights) or "–"],
        *network_rows(study),
        ["versions", ", ".join(f"{k} {v}" for k, v in versions.items()) or "–"],
    ]
    rows += [[f"param {k}", figs.nice(v)] for k, v in _flatten(p.get("params") or {}).items()]
    caption = "Where, when and from what this study ran, on which network, judged by which."
    arms = backbone_table(study)
    return Section(
        "Provenance and reproduction",
        tables=[Table(["field", "value"], rows, caption), *([arms] if arms else [])],
        code=reproduce_commands(study),
    )


def reproduce_commands(study: StudyResults) -> list[str]:
    """Check out the code, then re-run through DVC (stage study@<name> of dvc.yaml, params from
    params.yaml) or directly with `nst study`."""
    commit = study.provenance.get("git_commit")
    profile = study.summary.get("profile") or "quick"
    trials = study.summary.get("n_trials")
    lines = [f"git checkout {commit}" if commit and commit != "unknown" else "# git commit unknown"]
    lines += [
        f"dvc repro study@{study.name}   # this study (and the data it needs), as recorded",
        f"dvc exp run -S profile={profile}"
        + (f" -S study.trials={trials}" if trials else "")
        + "   # the pipeline as a DVC experiment with these settings",
        f"nst study experiments/{study.name}.yaml --profile {profile} --out results/"
        + (f" --trials {trials}" if trials else "")
        + "   # without DVC",
    ]
    return lines


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return -1
