"""Where a study lives: the embedded sqlite file, a journal file, or a database server.

    (default)                 sqlite:///<project root>/optuna.db   one machine, a few workers
    journal:path/to/file.log  an append-only journal file          one machine, many processes
    postgresql://user@host/db any SQLAlchemy URL                   many machines

A postgresql:// URL is used as given: SQLAlchemy 2.1 reads it as the psycopg (3) driver, which
nst ships, so the same URL opens the study in optuna-dashboard and the optuna CLI.

Database storages keep a heartbeat per running trial: a worker killed mid-trial stops beating,
and after `grace_period` seconds the next worker to touch the study marks that trial FAIL and
queues a copy of it once (`requeue`), so nothing recorded is lost. The stale trial's MLflow run
is marked FAILED with the reason. NST_HEARTBEAT_S and NST_GRACE_S override the two periods
(tests use 1 s and 3 s; a shorter grace than a slow step would fail live trials).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nst.study.attrs import (
    MLFLOW,
    MLFLOW_RUN_ID,
    NOT_INHERITED,
    RETRY_OF,
    RETRY_REASON,
    WORKER,
    Fault,
)

#: the default storage when no --storage is given, e.g. for a test session or a lab's server
DEFAULT_ENV = "NST_OPTUNA_STORAGE"
HEARTBEAT_S = 30
GRACE_S = 90


def storage_url(url: str | None, root: Path) -> str:
    """The storage URL: `url`, else $NST_OPTUNA_STORAGE, else sqlite at the project root
    (absolute, so that every worker and every working directory means the same file)."""
    if url:
        if url.startswith("journal:"):
            return "journal:" + str(Path(url[len("journal:") :]).expanduser().resolve())
        return url
    if os.environ.get(DEFAULT_ENV):
        return storage_url(os.environ[DEFAULT_ENV], root)
    return f"sqlite:///{(root / 'optuna.db').resolve()}"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _rdb(url, engine_kwargs)


def _rdb(url: str, engine_kwargs: dict | None) -> optuna.storages.RDBStorage:
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=int(os.environ.get("NST_HEARTBEAT_S", HEARTBEAT_S)),
        grace_period=int(os.environ.get("NST_GRACE_S", GRACE_S)),
        heartbeat_stale_trial_callback=retry_stale_trial,
    )


def requeue(
    study: optuna.Study, trial: FrozenTrial, fault: Fault, reason: str, max_retry: int | None
) -> bool:
    """Queue a copy of a failed trial (same params) to run again when its `fault` is retryable
    (not the trial's own), at most `max_retry` times per original trial; True when queued.
    The copy's system attributes follow Optuna's retry format (failed_trial = the original
    number, retry_history), so RetryHeartbeatStaleTrialCallback.retried_trial_number finds the
    original; its user attributes say why (RETRY_REASON)."""
    if not fault.retryable:
        return False
    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if max_retry is not None and len(history) > max_retry:
        return False
    attrs: dict[str, Any] = {k: v for k, v in trial.user_attrs.items() if k not in NOT_INHERITED}
    attrs.update({RETRY_OF: trial.number, RETRY_REASON: reason})
    system = {**trial.system_attrs, "failed_trial": history[0], "retry_history": history}
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING,
            params=trial.params,
            distributions=trial.distributions,
            user_attrs=attrs,
            system_attrs=system,
        )
    )
    return True


def retry_stale_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    """Heartbeat callback: a worker stopped beating (killed, machine lost) in `trial`. Optuna
    has already marked it FAIL; queue it again once and fail its MLflow run with the reason."""
    grace = int(os.environ.get("NST_GRACE_S", GRACE_S))
    worker = trial.user_attrs.get(WORKER, "?")
    reason = f"{Fault.WORKER_LOST.value}: no heartbeat for {grace} s ({worker})"
    requeue(study, trial, Fault.WORKER_LOST, reason, max_retry=1)
    run_id, mlflow = trial.user_attrs.get(MLFLOW_RUN_ID), study.user_attrs.get(MLFLOW)
    if run_id and mlflow:
        from nst.tracking.runs import fail_run

        fail_run(run_id, reason, tracking_uri=mlflow["uri"])


def redact(url: str) -> str:
    """The URL without its password (for summaries and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
