"""What a study leaves in results/<study>/ for the report and DVC (all written atomically):

trials.csv    one row per trial: number, state, objectives, params_*, metric_*, duration_s,
              mlflow_run_id, weights_identity, fail_reason
curves.csv    trial, pair, step, seconds, content, style, tv, total (from curves/trialNNN.csv)
pairs.csv     one row per complete trial x pair: trial, content, style and every value of that
              pair (every trial of a study runs the same pairs, so the report compares
              settings pair by pair, nst.report.intervals.paired_difference)
images/       trialNNN_pairK.png
summary.json  best trial (one objective) or Pareto front (several; a training study's best
              trials also name their network, "model"), importances, provenance
              (with the data's source and the "split" of the data its pairs come from), failures (number, reason, retried_as), skipped_images
              (unreadable data files), elapsed_s (the run's wall time, against budget.timeout_s)
metrics.json  flat numbers for `dvc metrics show`, best_<objective> first
"""

from __future__ import annotations

import csv
import io
import json
import platform
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import optuna

from nst import NstError
from nst.data.lock import DATA_LOCK_SHA256, data_identity, read_lock
from nst.imagefiles import atomic_write
from nst.provenance import git_state, package_versions
from nst.study.attrs import (
    ENCODER_PRETRAINED,
    FAIL_REASON,
    IMAGES,
    METRICS,
    MLFLOW,
    MLFLOW_RUN_ID,
    MODEL,
    PAIRS,
    RETRY_OF,
    RETRY_REASON,
    WEIGHTS_IDENTITY,
    WEIGHTS_PRETRAINED,
)
from nst.study.backbone import (
    BackboneChoice,
    backbones_used,
    choose_backbone,
    encoders_used,
    judge_pretrained,
    judges,
)
from nst.study.space import grid_cells
from nst.study.spec import ExperimentSpec

CURVE_COLUMNS = ("trial", "pair", "step", "seconds", "content", "style", "tv", "total")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: f.write(text.encode()))


def _csv(rows: list[list[Any]], header: list[str] | tuple[str, ...]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_trial_curves(out: Path, number: int, rows: list[list[Any]]) -> None:
    _write_text(out / "curves" / f"trial{number:03d}.csv", _csv(rows, CURVE_COLUMNS))


def trial_rows(study: optuna.Study, spec: ExperimentSpec) -> tuple[list[str], list[list[Any]]]:
    trials = study.get_trials(deepcopy=False)
    names = [o.metric for o in spec.objectives]
    params = sorted({p for t in trials for p in t.params})
    metrics = sorted({m for t in trials for m in t.user_attrs.get(METRICS, {})})
    text = (MLFLOW_RUN_ID, WEIGHTS_IDENTITY, FAIL_REASON)  # columns named as the attributes
    header = [
        "number",
        "state",
        *names,
        *(f"params_{p}" for p in params),
        *(f"metric_{m}" for m in metrics),
        "duration_s",
        *text,
    ]
    rows = []
    for t in trials:
        values = t.values if t.values is not None else [None] * len(names)
        duration = t.duration.total_seconds() if t.duration is not None else None
        ms = t.user_attrs.get(METRICS, {})
        rows.append(
            [
                t.number,
                t.state.name,
                *values,
                *(t.params.get(p) for p in params),
                *(ms.get(m) for m in metrics),
                duration,
                *(t.user_attrs.get(k, "") for k in text),
            ]
        )
    return header, rows


def pair_rows(study: optuna.Study) -> tuple[list[str], list[list[Any]]]:
    """pairs.csv: each complete trial's per-pair values (attrs.PAIRS records)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    records = [
        (t.number, r)
        for t in done
        for r in t.user_attrs.get(PAIRS, [])
        if isinstance(r, dict) and isinstance(r.get("values"), dict)
    ]
    names = sorted({k for _, r in records for k in r["values"]})
    rows = [
        [
            n,
            Path(str(r["content"])).name,
            Path(str(r["style"])).name,
            *(r["values"].get(k) for k in names),
        ]
        for n, r in records
    ]
    return ["trial", "content", "style", *names], rows


def importances(
    study: optuna.Study, spec: ExperimentSpec
) -> tuple[dict[str, dict[str, float]], str]:
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"importances need at least 2 complete trials; the study has {len(complete)}"
    out: dict[str, dict[str, float]] = {}
    for i, o in enumerate(spec.objectives):
        sign = -1.0 if o.direction == "maximize" else 1.0  # evaluators look for low targets
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                imp = optuna.importance.get_param_importances(study, target=_target(i, sign))
        except (RuntimeError, ValueError) as err:  # e.g. a parameter that never varied
            return {}, f"importances not computed: {err}".splitlines()[0]
        out[o.metric] = {k: float(v) for k, v in imp.items()}
    return out, ""


def _target(i: int, sign: float) -> Callable[[optuna.trial.FrozenTrial], float]:
    return lambda t: sign * t.values[i]


def _best(study: optuna.Study, spec: ExperimentSpec) -> list[dict[str, Any]]:
    try:
        best = study.best_trials if spec.multi_objective else [study.best_trial]
    except ValueError:  # no complete trial
        return []
    return [
        {
            "number": t.number,
            "values": dict(zip([o.metric for o in spec.objectives], t.values, strict=True)),
            "params": t.params,
            IMAGES: t.user_attrs.get(IMAGES, []),
            PAIRS: t.user_attrs.get(PAIRS, []),
            MLFLOW_RUN_ID: t.user_attrs.get(MLFLOW_RUN_ID, ""),
            **({MODEL: t.user_attrs[MODEL]} if MODEL in t.user_attrs else {}),  # training
        }
        for t in sorted(best, key=lambda t: t.number)
    ]


def failures(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Every FAIL trial with why it failed and the trial that retried it, if any (a killed
    worker's trial has no fail_reason of its own: its retry carries the reason)."""
    retries = {t.user_attrs[RETRY_OF]: t for t in trials if RETRY_OF in t.user_attrs}
    out = []
    for t in trials:
        if t.state != optuna.trial.TrialState.FAIL:
            continue
        retry = retries.get(t.number)
        reason = t.user_attrs.get(FAIL_REASON) or (retry and retry.user_attrs.get(RETRY_REASON))
        out.append(
            {
                "number": t.number,
                "reason": reason or "unknown",
                "retried_as": retry.number if retry else None,
            }
        )
    return out


def data_facts(data: Path | None, out: Path) -> dict[str, Any]:
    """Where the study's images came from, for the report: the lock's source (network, mirror,
    embedded, mixed; "unlocked" for images put in the folder by hand) and its image counts.
    Without data images the study used the embedded sample (pairs.choose_pairs), whose
    lock the runner caches under <results>/.cache/embedded."""
    folder = Path(data) if data else None
    if folder is None or not any(folder.glob("content/*")):
        folder, source = out.parent / ".cache" / "embedded", "embedded"
    else:
        source = "unlocked"
    try:
        lock = read_lock(folder)
    except NstError:  # a corrupt lock: the study itself said so when it read the data
        lock = {}
    kinds = [e.get("kind") for e in (lock.get("files") or {}).values() if isinstance(e, dict)]
    facts: dict[str, Any] = {"source": str(lock.get("source") or source)}
    if kinds:
        facts.update(content=kinds.count("content"), styles=kinds.count("style"))
    return facts


def write_outputs(
    study: optuna.Study,
    spec: ExperimentSpec,
    out: Path,
    *,
    storage: str,
    data: Path | None,
    started: float,
    skipped_images: list[str] | tuple[str, ...] = (),
    backbone: BackboneChoice | None = None,
    split: dict[str, Any] | None = None,
) -> dict[str, Any]:
    trials = study.get_trials(deepcopy=False)
    found = judges(trials)
    encoders = encoders_used(trials)
    choice = backbone or choose_backbone(spec, None)[1]  # no --backbone: the spec's own
    header, rows = trial_rows(study, spec)
    _write_text(out / "trials.csv", _csv(rows, header))
    pair_header, pair_body = pair_rows(study)
    _write_text(out / "pairs.csv", _csv(pair_body, pair_header))
    curve_lines = [",".join(CURVE_COLUMNS)]
    for part in sorted((out / "curves").glob("trial*.csv")):
        curve_lines += part.read_text().splitlines()[1:]
    _write_text(out / "curves.csv", "\n".join(curve_lines) + "\n")

    states = {s.name: sum(t.state == s for t in trials) for s in optuna.trial.TrialState}
    imps, note = importances(study, spec)
    git = git_state(Path(__file__).parent)
    weights = sorted(
        {str(t.user_attrs[WEIGHTS_IDENTITY]) for t in trials if WEIGHTS_IDENTITY in t.user_attrs}
    )
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    summary = {
        "study": spec.name,
        "description": spec.description,
        "objectives": [{"name": o.metric, "direction": o.direction} for o in spec.objectives],
        "n_trials": len(trials),
        "states": {k: v for k, v in states.items() if v},
        "best_trials": _best(study, spec),
        "failures": failures(trials),
        "skipped_images": list(skipped_images),
        "pareto_front": spec.multi_objective,
        "importances": imps,
        "importances_note": note,
        "profile": spec.profile,
        "storage": storage,
        "elapsed_s": round(time.time() - started, 1),  # this run's wall time, against timeout_s
        "grid_cells": grid_cells(spec),  # a grid study stops when its cells are done
        "backbone": choice.to_dict(),  # how the network was chosen (nst.study.backbone)
        "provenance": {
            "git_commit": git["commit"],
            "git_dirty": git["dirty"] == "true",
            DATA_LOCK_SHA256: data_identity(data),
            "data": data_facts(data, out),
            **({"split": split} if split is not None else {}),  # the data's split (validation)
            "params": spec.to_dict(),
            "started": (
                min(starts).isoformat()
                if starts
                else datetime.fromtimestamp(started, UTC).isoformat()
            ),
            "finished": max(ends).isoformat() if ends else None,
            "host": platform.node(),
            "weights": weights,
            "random_weights": any(
                t.user_attrs.get(k) is False
                for t in trials
                for k in (WEIGHTS_PRETRAINED, ENCODER_PRETRAINED)
            ),
            "backbones": backbones_used(trials),  # each optimised network: weights, pretrained
            **({"encoders": encoders} if encoders else {}),  # adain, stytr training studies
            "judges": found,  # the held-out network(s) that scored the trials
            "judge_pretrained": judge_pretrained(found),  # None: no trial was judged
            "versions": package_versions(),
        },
        "mlflow": {
            k: study.user_attrs.get(MLFLOW, {}).get(v)
            for k, v in (
                ("tracking_uri", "uri"),
                ("experiment", "experiment"),
                ("parent_run_id", "parent_run_id"),
            )
        },
    }
    _write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")

    # best values first: `dvc exp show` and `dvc metrics show` keep a file's key order, and
    # the table cuts columns from the right
    metrics: dict[str, float | int] = {
        **{f"best_{k}": v for k, v in best_values(study, spec).items()},
        "n_trials": len(trials),
        "n_complete": states["COMPLETE"],
        "n_pruned": states["PRUNED"],
        "n_failed": states["FAIL"],
        "n_skipped_images": len(skipped_images),
    }
    _write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return summary


def best_values(study: optuna.Study, spec: ExperimentSpec) -> dict[str, float]:
    """{objective metric: its best value over the complete trials} (each objective on its
    own, also in a multi-objective study); metrics without a complete trial are left out."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    out = {}
    for i, o in enumerate(spec.objectives):
        values = [t.values[i] for t in complete]
        if values:
            out[o.metric] = max(values) if o.direction == "maximize" else min(values)
    return out
