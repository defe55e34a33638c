"""Reading study outputs for the report: results/<study>/{summary.json, trials.csv, curves.csv, images/}.

The files follow the "Study outputs" contract (docs/DESIGN.md, written by `nst study`). A
malformed summary.json or trials.csv is an error (NstError, one line); a missing optional
file (curves.csv, an image) only removes the sections that need it. results/methods/ (the
methods comparison, `nst methods`) is read by load_methods: unreadable files there are a note
in its section, not an error.

Two statistics are computed here because several report sections share them:

- the Pareto front: trial i is dominated when some trial j is at least as good on every
  objective and strictly better on one; the front is the set of non-dominated trials;
- a 95% confidence interval of a mean: mean +- t_{0.975, n-1} * s / sqrt(n) (Student's t,
  s the sample standard deviation), undefined for n < 2.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nst import NstError
from nst.study.attrs import FAIL_REASON, MLFLOW_RUN_ID, PAIRS, WEIGHTS_IDENTITY

#: trials.csv columns that hold text (nst.study.outputs names them as the trial attributes)
TEXT_COLUMNS = (MLFLOW_RUN_ID, WEIGHTS_IDENTITY, "state", FAIL_REASON)
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
    pairs: pd.DataFrame | None = None  # pairs.csv: trial, content, style, values per pair

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
        if WEIGHTS_IDENTITY in self.trials:
            found += [str(w) for w in self.trials[WEIGHTS_IDENTITY].dropna().unique()]
        return sorted(set(found))

    @property
    def random_weights(self) -> bool:
        return bool(self.provenance.get("random_weights")) or any(
            w.startswith("random") for w in self.weights
        )

    @property
    def judges(self) -> list[dict[str, Any]]:
        """The held-out networks that scored the trials (summary.json provenance.judges:
        backbone, weights, sha256, pretrained, judge); [] when not recorded."""
        found = self.provenance.get("judges") or []
        return [j for j in found if isinstance(j, dict) and j.get("backbone")]

    @property
    def judge_pretrained(self) -> bool | None:
        """Whether every judge was pretrained; None when no judge is recorded."""
        found = self.judges
        return all(str(j.get("pretrained")).lower() == "true" for j in found) if found else None

    @property
    def backbones(self) -> list[dict[str, Any]]:
        """Per optimised backbone {backbone, weights, pretrained, trials} (provenance.backbones)."""
        found = self.provenance.get("backbones") or []
        return [b for b in found if isinstance(b, dict) and b.get("backbone")]

    @property
    def backbone_choice(self) -> str:
        """How the study's network was chosen (summary.json backbone.text, e.g. "auto ->
        efficientnet_lite0 (no ImageNet vgg19 file)"); "" when not recorded."""
        choice = self.summary.get("backbone")
        return str(choice.get("text") or "") if isinstance(choice, dict) else ""

    def search_space(self, param: str) -> dict[str, Any]:
        """A searched parameter's space as the study recorded it (provenance.params.search:
        type, low, high, log, choices), {} when summary.json does not say."""
        search = (self.provenance.get("params") or {}).get("search") or {}
        space = search.get(param) if isinstance(search, dict) else None
        return space if isinstance(space, dict) else {}

    @property
    def data_source(self) -> str:
        """Where the images came from: network, mirror, embedded, mixed, unlocked; "" unknown."""
        return str((self.provenance.get("data") or {}).get("source") or "")

    def budget(self) -> tuple[int | None, float | None, int]:
        """(trial budget, time budget in s, trials that counted against it): complete, pruned
        and failed trials not retried (as nst.study.runner.n_done counts them)."""
        budget = (self.provenance.get("params") or {}).get("budget") or {}
        states = self.states
        retried = sum(f.get("retried_as") is not None for f in self.summary.get("failures") or [])
        ran = states.get("COMPLETE", 0) + states.get("PRUNED", 0) + states.get("FAIL", 0) - retried
        trials, timeout = budget.get("trials"), budget.get("timeout_s")
        return (
            int(trials) if isinstance(trials, int | float) and trials else None,
            float(timeout) if isinstance(timeout, int | float) and timeout else None,
            max(ran, 0),
        )

    def elapsed_s(self) -> float | None:
        """Wall time of the study's last run (summary.json's elapsed_s), else first trial start
        to last trial end."""
        if isinstance(self.summary.get("elapsed_s"), int | float):
            return float(self.summary["elapsed_s"])
        started, finished = self.provenance.get("started"), self.provenance.get("finished")
        if not (isinstance(started, str) and isinstance(finished, str)):
            return None
        try:
            return float((pd.Timestamp(finished) - pd.Timestamp(started)).total_seconds())
        except ValueError:
            return None

    def pair_sources(self) -> dict[int, tuple[str, str]]:
        """Pair index -> (content path, style path), read from the best trials' pairs."""
        sources: dict[int, tuple[str, str]] = {}
        for best in self.summary.get("best_trials") or []:
            for k, pair in enumerate(best.get(PAIRS) or []):
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


def load_results(results_dir: str | Path, required: bool = True) -> list[StudyResults]:
    """Every study under `results_dir` (one folder with a summary.json each), sorted by name;
    none is an error unless not `required`."""
    root = Path(results_dir)
    if not root.is_dir():
        raise NstError(
            f"no results folder {root}: run `nst study ...` or `nst methods ...` "
            "(or `dvc repro`) first"
        )
    # a methods comparison (results/methods/, nst.methods, nst.report.methods) is not a study
    comparisons = set(comparison_names(root))
    folders = sorted(
        p.parent for p in root.glob("*/summary.json") if p.parent.name not in comparisons
    )
    if not folders and required:
        raise NstError(no_results_message(root))
    return [load_study(folder) for folder in folders]


def no_results_message(root: Path, methods_error: str = "") -> str:
    """The one line of a results folder with nothing to report."""
    why = f"; {methods_error}" if methods_error else ""
    return (
        f"no study results in {root} (expected {root}/<study>/summary.json from `nst study`, "
        f"or {root}/methods/summary.json from `nst methods`){why}"
    )


@dataclass
class MethodsResults:
    """results/methods/ as `nst methods` writes it (nst.methods.run): summary.json and
    results.csv. `error` says why they could not be read (summary is then {}, rows empty)."""

    root: Path
    summary: dict[str, Any]
    rows: pd.DataFrame
    error: str = ""

    @property
    def methods(self) -> dict[str, dict[str, Any]]:
        found = self.summary.get("methods")
        if not isinstance(found, dict):
            return {}
        return {str(k): v for k, v in found.items() if isinstance(v, dict)}

    @property
    def judge(self) -> dict[str, Any]:
        """The held-out network that scored every method (backbone, weights, sha256, ...)."""
        judge = self.summary.get("judge")
        return judge if isinstance(judge, dict) and judge.get("backbone") else {}

    @property
    def judge_pretrained(self) -> bool | None:
        """Whether the judge was pretrained; None when no judge is recorded."""
        return str(self.judge.get("pretrained")).lower() == "true" if self.judge else None

    def random_networks(self) -> dict[str, list[str]]:
        """Method -> its networks that ran with seeded random weights ("encoder `deit_tiny`
        random:seed=0"); a method in summary.json's random_weights_methods with no such
        network record is listed with none."""
        out: dict[str, list[str]] = {}
        for name, info in self.methods.items():
            nets = [
                f"{n.get('role')} `{n.get('backbone')}` {n.get('weights')}"
                for n in info.get("networks") or []
                if isinstance(n, dict) and str(n.get("pretrained")).lower() != "true"
            ]
            if nets:
                out[name] = nets
        for name in self.summary.get("random_weights_methods") or []:
            out.setdefault(str(name), [])
        return out

    def random_networks_text(self) -> str:
        """random_networks() as the banners name them: "stytr (encoder `deit_tiny` ...); adain"."""
        return "; ".join(
            f"{m} ({', '.join(nets)})" if nets else m for m, nets in self.random_networks().items()
        )


def comparison_names(results_dir: str | Path) -> list[str]:
    """The methods comparisons under results_dir, `methods` first: the folder methods/ and every
    folder whose summary.json is a comparison's (`nst methods` with a spec's own name:, e.g.
    style_losses/), not a study's (a study's has objectives)."""
    root = Path(results_dir)
    names = ["methods"] if (root / "methods").is_dir() else []
    for summary in sorted(root.glob("*/summary.json")):
        if summary.parent.name == "methods":
            continue
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and "methods" in data and "objectives" not in data:
            names.append(summary.parent.name)
    return names


def load_methods(results_dir: str | Path, name: str = "methods") -> MethodsResults | None:
    """results_dir/<name>/ (a methods comparison) when the folder exists, else None; files
    that cannot be read give a MethodsResults with `error` set, not an exception."""
    root = Path(results_dir) / name
    if not root.is_dir():
        return None
    try:
        summary = json.loads((root / "summary.json").read_text())
        if not isinstance(summary, dict):
            raise ValueError(f"summary.json holds a {type(summary).__name__}, not an object")
        rows = pd.read_csv(root / "results.csv")
        missing = [c for c in ("method", "content", "style", "image") if c not in rows]
        if missing:
            raise ValueError(f"results.csv has no column {', '.join(missing)}")
    except (OSError, ValueError) as err:  # JSON, CSV and Unicode errors are ValueErrors
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        error = f"{root} is incomplete ({text}): re-run `nst methods`"
        return MethodsResults(root, {}, pd.DataFrame(), error)
    return MethodsResults(root, summary, rows)


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
    pairs = _read_csv(folder / "pairs.csv", required=False)
    return StudyResults(
        str(summary["study"]), folder, summary, objectives, trials, curves, images, pairs
    )


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
