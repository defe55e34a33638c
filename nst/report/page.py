"""The page model: pages of sections of text, tables, figures and links, rendered by templates/."""

from __future__ import annotations

import sqlite3
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nst import NstError
from nst.tracking.store import MODEL_VIEW

if TYPE_CHECKING:
    from nst.report import figures as figs
    from nst.report.data import (
        StudyResults,  # matplotlib is heavy; `nst report --help` must not import it
    )

DEFAULT_MLFLOW_URL = (
    "http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}?" + MODEL_VIEW
)

MAX_TRIAL_ROWS = 200

#: the layer reconstructions' long side (px) and steps: 128 px is the smallest at which a
#: reconstruction reads (48 px was a smear); after 100 Adam steps from noise Lite0's content
#: reconstructions from stage3 on were still noise, after 300 the cameraman reads up to stage4
RECONSTRUCTION_SIZE = 128
RECONSTRUCTION_STEPS = 300


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    page: bool = False  # href is a page slug: ".html" in HTML, ".md" (index: README.md) in Markdown


Cell = str | Link  # a table cell: text, or text with a link


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Section:
    title: str
    note: str = ""  # one line; shown when (part of) the section's data is missing
    plots: list[figs.Plot] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    code: list[str] = field(default_factory=list)  # shell commands


@dataclass
class Page:
    slug: str  # file stem: index, or the study name
    title: str
    banner: str
    intro: str
    sections: list[Section]
    nav: list[Link]


class Links:
    """Links to MLflow runs and to optuna-dashboard, from URL templates.

    The MLflow template may use {run_id}, {experiment_id} and {experiment}; the experiment id
    is read from summary.json or from a local sqlite tracking store. The optuna-dashboard
    template may use {study} and {study_id} (looked up in a local sqlite storage)."""

    def __init__(self, mlflow_template: str | None, optuna_template: str | None):
        self.mlflow = _check_template(mlflow_template, {"run_id", "experiment_id", "experiment"})
        self.optuna = _check_template(optuna_template, {"study", "study_id"})

    def run(self, study: StudyResults, run_id: object) -> Cell:
        if not isinstance(run_id, str) or not run_id or run_id == "nan":
            return "–"
        if not self.mlflow:
            return run_id[:8]
        info = study.summary.get("mlflow") or {}
        experiment_id = info.get("experiment_id") or sqlite_lookup(
            info.get("tracking_uri"), "SELECT experiment_id FROM runs WHERE run_uuid = ?", (run_id,)
        )
        if experiment_id is None and "{experiment_id}" in self.mlflow:
            return run_id[:8]
        href = self.mlflow.format(
            run_id=run_id, experiment_id=experiment_id, experiment=info.get("experiment", "")
        )
        return Link(run_id[:8], href)

    def dashboard(self, study: StudyResults) -> Cell | None:
        """A link to the study in a running optuna-dashboard (the URL template), else the
        command that opens its storage in one; None when neither is known."""
        storage = study.summary.get("storage")
        command = f"`optuna-dashboard {storage}`" if isinstance(storage, str) and storage else None
        if not self.optuna:
            return command
        study_id = sqlite_lookup(
            storage, "SELECT study_id FROM studies WHERE study_name = ?", (study.name,)
        )
        if study_id is None and "{study_id}" in self.optuna:
            return command
        return Link("optuna-dashboard", self.optuna.format(study=study.name, study_id=study_id))


def _check_template(template: str | None, allowed: set[str]) -> str | None:
    if not template:
        return None
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as err:
        raise NstError(f"bad URL template {template!r}: {err}") from None
    unknown = names - allowed
    if unknown:
        raise NstError(
            f"URL template {template!r} uses {', '.join(sorted(unknown))}; "
            f"allowed: {', '.join('{' + a + '}' for a in sorted(allowed))}"
        )
    return template


def sqlite_lookup(uri: str | None, query: str, args: tuple[Any, ...]) -> str | None:
    """One value from a local sqlite store (MLflow or Optuna), read-only; None if unavailable.
    Only local files are read: a report never makes a network request."""
    if not uri or not uri.startswith("sqlite:///"):
        return None
    path = Path(uri.removeprefix("sqlite:///"))  # sqlite:////abs/x.db -> /abs/x.db
    if not path.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2) as db:
            row = db.execute(query, args).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])
