"""Where a study lives: the embedded sqlite file, a journal file, or a database server.

    (default)                 sqlite:///<project root>/optuna.db   one machine, a few workers
    journal:path/to/file.log  an append-only journal file          one machine, many processes
    postgresql://user@host/db any SQLAlchemy URL                   many machines

Database storages keep a heartbeat per running trial: a worker killed mid-trial stops beating,
and after `grace_period` seconds the next worker to touch the study marks that trial FAIL and
queues a copy of it (RetryHeartbeatStaleTrialCallback), so nothing recorded is lost.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import optuna

HEARTBEAT_S = 30
GRACE_S = 90


def storage_url(url: str | None, root: Path) -> str:
    """The storage URL, defaulting to sqlite at the project root (absolute, so that every
    worker and every working directory means the same file)."""
    if url:
        if url.startswith("journal:"):
            return "journal:" + str(Path(url[len("journal:") :]).expanduser().resolve())
        return url
    return f"sqlite:///{(root / 'optuna.db').resolve()}"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    url = sqlalchemy_url(url)
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
        heartbeat_interval=HEARTBEAT_S,
        grace_period=GRACE_S,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
            max_retry=1
        ),
    )


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy 2.1 reads postgresql:// as the psycopg (3) driver; we ship psycopg2, so
    name it explicitly unless psycopg is installed."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            try:
                import psycopg  # noqa: F401
            except ImportError:
                return "postgresql+psycopg2://" + url[len(scheme) :]
    return url


def redact(url: str) -> str:
    """The URL without its password (for summaries and logs)."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
