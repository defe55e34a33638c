"""Where runs go: the tracking URI (an absolute sqlite path by default), artifact locations, the client."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nst import NstError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

#: MLflow 3's UI opens in its GenAI view unless the URL (or the browser's stored choice) says
#: this; the experiment tag mlflow.experimentKind alone does not switch it (MLflow 3.17)
MODEL_VIEW = "workflowType=machine_learning"

#: MLflow accepts at most 1000 metrics per log_batch request
BATCH_LIMIT = 1000
#: ... and at most 100 params or 100 tags
PARAMS_TAGS_LIMIT = 100

#: MLflow 3's UI opens an untagged experiment as GenAI (runs under "Evaluation runs", traces
#: and judges): this tag makes it show runs, params, metrics and charts
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}

#: the description (experiment tag mlflow.note.content, shown above its runs in the UI) of
#: each kind of experiment nst creates; set when nst creates the experiment, or finds it
#: without one (an older store), never over a description someone wrote
EXPERIMENT_DESCRIPTIONS = {
    "runs": "nst runs: one run per `nst stylize` (params, loss curves, content, style and "
    "result images) and per `nst train` (loss curves, samples, the validation photos "
    "stylised, the checkpoint, and the network as a logged model)",
    "study": "nst studies: one parent run per study (the spec as params, the best trial's "
    "values once it finishes), one nested run per trial",
    "methods": "nst methods comparison: one training run per network (train-<method>, with "
    "its logged model), one parent run per comparison (methods-<profile>: results.csv, "
    "summary.json, links to the training runs) with one nested run per method (its means "
    "over the held-out pairs and its images)",
}
NOTE = "mlflow.note.content"  # a run's or experiment's description (Markdown) in the UI

T = TypeVar("T")


class TrackingError(NstError):
    """Tracking failed (store unreachable, disk full, ...) in strict mode."""


class TrackingWarning(UserWarning):
    """A tracking failure in best-effort mode: the run goes on without tracking."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding pyproject.toml or dvc.yaml, from `start` (cwd) upwards;
    `start` itself when there is none."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        if (directory / "pyproject.toml").exists() or (directory / "dvc.yaml").exists():
            return directory
    return start


def resolve_tracking_uri(uri: str | None = None, root: Path | None = None) -> str:
    """explicit uri > $MLFLOW_TRACKING_URI > sqlite:///<project root>/mlflow.db.

    Relative sqlite paths and bare paths are made absolute: MLflow resolves them against the
    working directory of whichever process opens them, which differs between CLI, DVC and UI."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri is None:
        return f"sqlite:///{(root or project_root()).resolve() / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri[len('sqlite:///') :]).resolve()}"
    if "://" not in uri and uri not in ("databricks",):
        path = Path(uri).expanduser().resolve()
        return f"sqlite:///{path}" if path.suffix == ".db" else path.as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str, experiment: str) -> str | None:
    """For sqlite stores: file:///<db dir>/mlartifacts/<experiment>, beside the database (MLflow
    would otherwise put artifacts under the current directory). Servers choose their own."""
    db = sqlite_path(uri)
    if db is None:
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", experiment) or "default"
    return (db.parent / "mlartifacts" / safe).as_uri()


def _client(uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    # "Creating initial MLflow database tables..." on a first run is noise on the CLI
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=uri)


def _experiment_id(client: MlflowClient, uri: str, name: str, kind: str = "runs") -> str:
    """The id of experiment `name`, created when missing; either way tagged EXPERIMENT_KIND
    and, unless it has a description already, described as EXPERIMENT_DESCRIPTIONS[kind]."""
    from mlflow.exceptions import MlflowException

    tags = {**EXPERIMENT_KIND, NOTE: EXPERIMENT_DESCRIPTIONS[kind]}
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(
                client.create_experiment(
                    name, artifact_location=artifact_location(uri, name), tags=tags
                )
            )
        except MlflowException:  # created concurrently by another worker
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    missing = {k: v for k, v in EXPERIMENT_KIND.items() if found.tags.get(k) != v}  # older store
    if not found.tags.get(NOTE):
        missing[NOTE] = tags[NOTE]
    for k, v in missing.items():
        client.set_experiment_tag(found.experiment_id, k, v)
    return str(found.experiment_id)


def log_batch(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Sequence[Metric] = (),
    params: Sequence[Param] = (),
    tags: Sequence[RunTag] = (),
) -> None:
    """Send metrics, params and tags to `run_id` in as few log_batch requests as MLflow's
    per-request limits allow: BATCH_LIMIT metrics, PARAMS_TAGS_LIMIT params, PARAMS_TAGS_LIMIT
    tags per request, each kind in its own requests, in order. Nothing is sent for empty input."""
    for part in _chunks(metrics, BATCH_LIMIT):
        client.log_batch(run_id, metrics=part)
    for params_part in _chunks(params, PARAMS_TAGS_LIMIT):
        client.log_batch(run_id, params=params_part)
    for tags_part in _chunks(tags, PARAMS_TAGS_LIMIT):
        client.log_batch(run_id, tags=tags_part)


def _chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean the tracking store failed: MLflow's own (a server's answers,
    MLflow's wrapping of a database's), OSError (network, via requests, and files: a full
    disk, a read-only artifact folder) and SQLAlchemy's (a sqlite or PostgreSQL store). Any
    other exception is a bug in the code around the MLflow call and is not a tracking failure."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    return (MlflowException, OSError, SQLAlchemyError)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def check_tracking(uri: str) -> None:
    """Raise TrackingError now when the store cannot be reached (before any compute is spent).

    MLflow's HTTP client already retries each request (MLFLOW_HTTP_REQUEST_MAX_RETRIES, default
    7, with exponential backoff: minutes in all), so a server restart is ridden out."""
    try:
        _client(uri).search_experiments(max_results=1)
    except Exception as err:
        raise TrackingError(
            f"MLflow tracking unavailable ({uri}): {_one_line(err)}; start the server "
            "(e.g. make mlflow-server) or pass --no-track"
        ) from None
