"""Model URIs: `nst apply --model` and `nst export --model` take a checkpoint path,
runs:/RUN_ID/PATH or models:/NAME/VERSION; the URIs are resolved with the tracking store and
downloaded (mlflow is imported only then: a plain path costs nothing).

PATH may name the logged MLflow model of a training run (runs:/<id>/model, nst.models.serving,
whose checkpoint is artifacts/model.pt) or a checkpoint file (runs:/<id>/checkpoint/model.pt).
The file found is then read like any other checkpoint (nst.models.io: weights only).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from nst.models.io import CheckpointError

URI_SCHEMES = ("runs:/", "models:/")
PROGRESS_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


def is_model_uri(spec: str | Path) -> bool:
    return str(spec).startswith(URI_SCHEMES)


def resolve_checkpoint(
    spec: str | Path, workdir: str | Path, tracking_uri: str | None = None
) -> Path:
    """The local checkpoint file `spec` names: a path as is; runs:/RUN_ID/PATH or
    models:/NAME/VERSION downloaded into `workdir` from the tracking store (default: the
    project's, nst.tracking.store.resolve_tracking_uri). PATH may name the MLflow model folder
    (runs:/<id>/model) or a checkpoint file (runs:/<id>/checkpoint/model.pt)."""
    if not is_model_uri(spec):
        return Path(spec)
    from mlflow.artifacts import download_artifacts

    from nst.tracking.store import _one_line, resolve_tracking_uri, store_errors

    uri = resolve_tracking_uri(tracking_uri)
    dst = Path(workdir)
    dst.mkdir(parents=True, exist_ok=True)
    try:
        if str(spec).startswith("models:/"):
            source = registry_source(str(spec), uri)
        else:
            source = run_model_source(str(spec), uri)
        with quiet():
            local = Path(
                download_artifacts(artifact_uri=str(source), dst_path=str(dst), tracking_uri=uri)
            )
    except store_errors() as err:
        raise CheckpointError(
            f"model {spec}: cannot download it from {uri}: {_one_line(err)}"
        ) from None
    if local.is_file():
        return local
    for candidate in (
        local / "artifacts" / "model.pt",  # an MLflow model of save_mlflow_model
        local / "model.pt",
        local / "checkpoint.pt",
    ):
        if candidate.is_file():
            return candidate
    raise CheckpointError(f"model {spec}: holds no nst checkpoint (no model.pt in {local.name}/)")


def registry_source(spec: str, uri: str) -> str:
    """The artifact URI of models:/NAME/VERSION or models:/NAME@ALIAS in the registry of the
    store `uri` (MLflow's own resolution would use the process-wide registry URI instead)."""
    from mlflow import MlflowClient

    rest = spec[len("models:/") :].strip("/")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if "@" in rest:
        name, alias = rest.split("@", 1)
        version = str(client.get_model_version_by_alias(name, alias).version)
    elif "/" in rest:
        name, version = rest.rsplit("/", 1)
    else:
        raise CheckpointError(f"model {spec}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    return str(client.get_model_version_download_uri(name, version))


def run_model_source(spec: str, uri: str) -> str:
    """runs:/RUN_ID/NAME[/PATH] -> the files of the run's logged model NAME (MLflow 3:
    a model logged by a run lives with the experiment's models, not the run's artifacts),
    or `spec` itself when the run has no such model (a run artifact such as
    runs:/<id>/checkpoint/model.pt). MLflow's own resolution would look the model up in the
    process-wide tracking store instead of `uri`'s."""
    from mlflow import MlflowClient

    run_id, _, rel = spec[len("runs:/") :].strip("/").partition("/")
    name, _, rest = rel.partition("/")
    if not name or "'" in name:
        return spec
    client = MlflowClient(tracking_uri=uri)
    found = client.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id],
        filter_string=f"name = '{name}'",
    )
    for model in found:
        if model.source_run_id == run_id:
            return f"{model.artifact_location}/{rest}".rstrip("/")
    return spec


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Without MLflow's advice on input examples and type hints (nst gives signatures
    explicitly) and its progress bars for copying a few files; the environment is restored."""
    saved = os.environ.get(PROGRESS_BAR)
    os.environ[PROGRESS_BAR] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
            yield
    finally:
        if saved is None:
            os.environ.pop(PROGRESS_BAR, None)
        else:
            os.environ[PROGRESS_BAR] = saved


@contextlib.contextmanager
def local_checkpoint(spec: str | Path, tracking_uri: str | None = None) -> Iterator[Path]:
    """resolve_checkpoint into a temporary folder, removed on exit."""
    if not is_model_uri(spec):
        yield Path(spec)
        return
    with tempfile.TemporaryDirectory(prefix="nst-model-") as tmp:
        yield resolve_checkpoint(spec, tmp, tracking_uri)
