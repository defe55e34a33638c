"""Run lifecycle outside one transfer: a study's parent run (started, then updated with what
the study found), ending and failing runs by id."""

from __future__ import annotations

import time
import warnings

from nst.provenance import command_line, git_state, package_versions
from nst.tracking.store import (
    TrackingError,
    TrackingWarning,
    _client,
    _experiment_id,
    _one_line,
    log_batch,
    resolve_tracking_uri,
    store_errors,
)
from nst.tracking.tags import CODE_DIR


def _status(exc: BaseException | None) -> str:
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "TrialPruned":
        return "KILLED"
    return "FAILED"


def start_parent_run(
    name: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    tags: dict[str, str] | None = None,
    experiment_kind: str = "runs",
    start_time: float | None = None,
) -> str:
    """Start a parent run (e.g. for a study) and return its run_id; finish it with end_run.
    `experiment_kind` describes the experiment if this creates it (EXPERIMENT_DESCRIPTIONS);
    `start_time` (seconds since the epoch, default now) dates a run logged after its work.
    Raises TrackingError when the store cannot be reached."""
    uri = resolve_tracking_uri(tracking_uri)
    git = git_state(CODE_DIR)
    all_tags = {
        "nst.git.commit": git["commit"],
        "nst.git.dirty": git["dirty"],
        "mlflow.source.git.commit": git["commit"],
        "nst.command": command_line()[:5000],
        **{f"nst.version.{k}": v for k, v in package_versions().items()},
        **(tags or {}),
    }
    try:
        client = _client(uri)
        run = client.create_run(
            _experiment_id(client, uri, experiment, experiment_kind),
            run_name=name,
            tags=all_tags,
            start_time=None if start_time is None else int(start_time * 1000),
        )
    except store_errors() as err:
        raise TrackingError(
            f"cannot start MLflow parent run {name!r} ({uri}): {_one_line(err)}"
        ) from None
    return str(run.info.run_id)


def update_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    step: int = 0,
) -> None:
    """Add params, metrics (at `step`) and tags to an existing run, e.g. a study's parent when
    the study finishes or resumes. MLflow params cannot change: a param already logged with
    another value (a resumed study run with other settings) is kept and warned about."""
    from mlflow.entities import Metric, Param, RunTag

    uri = resolve_tracking_uri(tracking_uri)
    try:
        client = _client(uri)
        logged = client.get_run(run_id).data.params
        changed = sorted(k for k, v in (params or {}).items() if k in logged and logged[k] != v)
        if changed:
            warnings.warn(
                f"MLflow run {run_id} keeps its earlier {', '.join(changed)} (params "
                "cannot change); start afresh (--fresh) to record the new ones",
                TrackingWarning,
                stacklevel=2,
            )
        ts = int(time.time() * 1000)
        log_batch(
            client,
            run_id,
            params=[Param(k, v) for k, v in (params or {}).items() if k not in logged],
            metrics=[Metric(k, float(v), ts, step) for k, v in (metrics or {}).items()],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()],
        )
    except store_errors() as err:
        raise TrackingError(
            f"cannot update MLflow run {run_id} ({uri}): {_one_line(err)}"
        ) from None


def end_run(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    status: str = "FINISHED",
    end_time: float | None = None,
) -> None:
    """Mark a run (e.g. a study's parent run) FINISHED, FAILED or KILLED, at `end_time`
    (seconds since the epoch, default now)."""
    uri = resolve_tracking_uri(tracking_uri)
    ms = None if end_time is None else int(end_time * 1000)
    try:
        _client(uri).set_terminated(run_id, status=status, end_time=ms)
    except store_errors() as err:
        raise TrackingError(f"cannot end MLflow run {run_id} ({uri}): {_one_line(err)}") from None


def fail_run(run_id: str, reason: str, *, tracking_uri: str | None = None) -> bool:
    """Mark the run of a failed trial FAILED with an nst.fail_reason tag (its process died, or
    tracking broke mid-run). The study's trial is the record of truth, so a run that already
    says FINISHED is corrected too: a worker killed between ending its run and reporting its
    trial leaves exactly that. Best-effort: warns and returns False when the store is down."""
    uri = resolve_tracking_uri(tracking_uri)
    try:
        client = _client(uri)
        run = client.get_run(run_id)
        if run.info.status == "FAILED" and "nst.fail_reason" in run.data.tags:
            return False
        client.set_tag(run_id, "nst.fail_reason", reason[:5000])
        client.set_terminated(run_id, status="FAILED")
    except store_errors() as err:
        warnings.warn(
            f"cannot mark MLflow run {run_id} failed ({uri}): {_one_line(err)}",
            TrackingWarning,
            stacklevel=2,
        )
        return False
    return True
