"""MLflow tracking of every transfer: one run per transfer with params, curves, images and tags.

Skeleton: public interface from /work/notes/contracts.md; implementation follows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import Tensor

from nst import NstError
from nst.config import TransferConfig
from nst.transfer import Callback, Result

MODES = ("strict", "best-effort")


class TrackingError(NstError):
    """Tracking failed (store unreachable, disk full, ...) in strict mode."""


def project_root(start: Path | None = None) -> Path:
    """The nearest directory holding pyproject.toml or dvc.yaml, from `start` (cwd) upwards."""
    raise NotImplementedError


def resolve_tracking_uri(uri: str | None = None, root: Path | None = None) -> str:
    """explicit uri > $MLFLOW_TRACKING_URI > sqlite:///<root>/mlflow.db (absolute)."""
    raise NotImplementedError


class TransferTracker:
    """Logs one transfer (or several, with prefixes) into one MLflow run."""

    run_id: str

    def callback(self, prefix: str = "") -> Callback:
        raise NotImplementedError

    def log_result(
        self,
        result: Result,
        content: Tensor,
        style: Tensor,
        *,
        prefix: str = "",
        metrics: dict[str, float] | None = None,
        data_hashes: dict[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        raise NotImplementedError

    def set_tags(self, tags: dict[str, str]) -> None:
        raise NotImplementedError

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError


@contextmanager
def transfer_run(
    config: TransferConfig,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    mode: str = "strict",
) -> Iterator[TransferTracker]:
    raise NotImplementedError
    yield  # type: ignore[unreachable]


def start_parent_run(
    name: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    tags: dict[str, str] | None = None,
) -> str:
    """Start a parent run (e.g. for a study) and return its run_id; end it with end_run."""
    raise NotImplementedError


def end_run(run_id: str, *, tracking_uri: str | None = None, status: str = "FINISHED") -> None:
    """Mark a run (e.g. a study's parent run) FINISHED, FAILED or KILLED."""
    raise NotImplementedError
