"""Reading study outputs for the report: results/<study>/{summary.json, trials.csv, curves.csv, images/}.

The files follow the "Study outputs" contract (docs/DESIGN.md, written by `nst study`). A
malformed summary.json or trials.csv is an error (NstError, one line); a missing optional
file (curves.csv, an image) only removes the sections that need it.

Two statistics are computed here because several report sections share them:

- the Pareto front: trial i is dominated when some trial j is at least as good on every
  objective and strictly better on one; the front is the set of non-dominated trials;
- a 95% confidence interval of a mean: mean +- t_{0.975, n-1} * s / sqrt(n) (Student's t,
  s the sample standard deviation), undefined for n < 2.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nst import NstError

TEXT_COLUMNS = ("mlflow_run_id", "weights_identity", "state", "fail_reason")
IMAGE_NAME = re.compile(r"trial0*(\d+)_pair0*(\d+)\.png$")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"

    @property
    def arrow(self) -> str:
        return "↑" if self.direction == "maximize" else "↓"


@dataclass
class StudyResults:
    """One study's outputs, checked and loaded."""

    name: str
    root: Path
    summary: dict[str, Any]
    objectives: list[Objective]
    trials: pd.DataFrame
    curves: pd.DataFrame | None
    images: dict[tuple[int, int], Path] = field(default_factory=dict)  # (trial, pair) -> png

    @property
    def params(self) -> list[str]:
        """The searched fields (columns params_<field> of trials.csv)."""
        return [c.removeprefix("params_") for c in self.trials.columns if c.startswith("params_")]

    @property
    def complete(self) -> pd.DataFrame:
        if "state" not in self.trials:
            return self.trials
        return self.trials[self.trials["state"] == "COMPLETE"]

    @property
    def states(self) -> dict[str, int]:
        """Trial counts per state, from summary.json or else counted in trials.csv."""
        if self.summary.get("states"):
            return dict(self.summary["states"])
        if "state" not in self.trials:
            return {}
        return {str(k): int(v) for k, v in self.trials["state"].value_counts().items()}

    @property
    def provenance(self) -> dict[str, Any]:
        return self.summary.get("provenance") or {}

    @property
    def weights(self) -> list[str]:
        found = list(self.provenance.get("weights") or [])
        if "weights_identity" in self.trials:
            found += [str(w) for w in self.trials["weights_identity"].dropna().unique()]
        return sorted(set(found))

    @property
    def random_weights(self) -> bool:
        return bool(self.provenance.get("random_weights")) or any(
            w.startswith("random") for w in self.weights
        )

    def pair_sources(self) -> dict[int, tuple[str, str]]:
        """Pair index -> (content path, style path), read from the best trials' pairs."""
        sources: dict[int, tuple[str, str]] = {}
        for best in self.summary.get("best_trials") or []:
            for k, pair in enumerate(best.get("pairs") or []):
                if isinstance(pair, dict) and pair.get("content") and pair.get("style"):
                    sources.setdefault(k, (str(pair["content"]), str(pair["style"])))
        return sources

    def resolve(self, path: str | None) -> Path | None:
        """An image path from the summary as an existing file, or None. Relative paths are
        tried against the study folder, the results folder's parent (the project) and cwd."""
        if not path:
            return None
        p = Path(path)
        candidates = [p] if p.is_absolute() else [self.root / p, self.root.parent.parent / p, p]
        return next((c for c in candidates if c.is_file()), None)

    def best_by(self, objective: Objective, frame: pd.DataFrame | None = None) -> pd.Series | None:
        """The best complete trial of `frame` (default: all) for one objective."""
        frame = self.complete if frame is None else frame
        if objective.name not in frame or frame[objective.name].notna().sum() == 0:
            return None
        values = frame[objective.name].astype(float)
        index = values.idxmax() if objective.direction == "maximize" else values.idxmin()
        return frame.loc[index]


def load_results(results_dir: str | Path) -> list[StudyResults]:
    """Every study under `results_dir` (one folder with a summary.json each), sorted by name."""
    root = Path(results_dir)
    if not root.is_dir():
        raise NstError(f"no results folder {root}: run `nst study ...` (or `dvc repro`) first")
    folders = sorted(p.parent for p in root.glob("*/summary.json"))
    if not folders:
        raise NstError(f"no study results in {root} (expected {root}/<study>/summary.json)")
    return [load_study(folder) for folder in folders]


def load_study(folder: Path) -> StudyResults:
    summary = _read_summary(folder / "summary.json")
    objectives = [Objective(o["name"], o["direction"]) for o in summary["objectives"]]
    trials = _read_csv(folder / "trials.csv", required=False)
    curves = _read_csv(folder / "curves.csv", required=False)
    if trials is None:
        trials = pd.DataFrame(columns=["number", "state"])
    missing = [c for c in ("number", "state") if c not in trials]
    if missing:
        raise NstError(f"malformed {folder / 'trials.csv'}: no column {', '.join(missing)}")
    images: dict[tuple[int, int], Path] = {}
    for png in sorted((folder / "images").glob("*.png")):
        match = IMAGE_NAME.search(png.name)
        if match:
            images[(int(match.group(1)), int(match.group(2)))] = png
    return StudyResults(str(summary["study"]), folder, summary, objectives, trials, curves, images)


def _read_summary(path: Path) -> dict[str, Any]:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NstError(f"malformed {path}: {str(err).splitlines()[0]}") from None
    if not isinstance(summary, dict):
        raise NstError(f"malformed {path}: expected a JSON object, got {type(summary).__name__}")
    if not isinstance(summary.get("study"), str) or not summary["study"]:
        raise NstError(f"malformed {path}: missing the study name ('study')")
    objectives = summary.get("objectives")
    if not (
        isinstance(objectives, list)
        and objectives
        and all(
            isinstance(o, dict)
            and isinstance(o.get("name"), str)
            and o.get("direction") in ("maximize", "minimize")
            for o in objectives
        )
    ):
        raise NstError(
            f"malformed {path}: 'objectives' must be a non-empty list of "
            '{"name": ..., "direction": "maximize"|"minimize"}'
        )
    for key in ("best_trials",):
        if not isinstance(summary.get(key, []), list):
            raise NstError(f"malformed {path}: '{key}' must be a list")
    for key in ("provenance", "importances", "mlflow", "states"):
        if not isinstance(summary.get(key) or {}, dict):
            raise NstError(f"malformed {path}: '{key}' must be an object")
    return summary


def _read_csv(path: Path, required: bool) -> pd.DataFrame | None:
    if not path.is_file():
        if required:
            raise NstError(f"missing {path}")
        return None
    try:
        # ids stay strings: pandas would read a run id like "1234e567..." as a number
        return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise NstError(f"malformed {path}: {str(err).splitlines()[0]}") from None


def pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `values` (n trials x k objectives)."""
    signs = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    v = values * signs  # now every objective is minimised
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def mean_ci(values: pd.Series | np.ndarray, level: float = 0.95) -> tuple[float, float, float, int]:
    """(mean, low, high, n) of the finite values; low/high are NaN when n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (float("nan"),) * 3 + (0,)  # type: ignore[return-value]
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


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
