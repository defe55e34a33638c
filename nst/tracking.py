"""MLflow tracking of every transfer: one run per transfer with params, curves, images and tags.

A run records what a reader needs to reproduce a result and see how it went:

    params   every TransferConfig field under its own name (tuples comma-joined)
    metrics  loss/<term> per step (content, style, tv, total: the curve of
             L = alpha * L_content + beta * L_style + gamma * L_tv), final/<term>, steps, seconds,
             seconds_per_step, setup_s, loop_s, peak_memory_mb, and any extra metrics
    images   images/content.png, images/style.png, images/result.png, progress frames as image steps
    tags     git commit and dirty flag, input sha256s, weights identity and sha256
             (nst.weights=random plus an nst.warning tag when not pretrained), package versions,
             device, seed, command line; study runs also the study name and trial number

Only `MlflowClient` calls with explicit run ids are used (never the fluent `mlflow.start_run`
state), so runs of a study can be nested and interleaved safely. Per-step losses are buffered
and sent with `log_batch` every `flush_every` steps: a request per step would cost more than a step.

Failure policy. mode="strict": the first tracking failure disables further logging and is raised
as TrackingError when the run context exits, i.e. after the body (which writes the result to
disk) has finished, so a dead server never throws a computed image away. mode="best-effort": the
failure is a warning and the run goes on untracked. mlflow is imported lazily (it takes ~1.5 s).
"""

from __future__ import annotations

import logging
import os
import platform
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import Tensor

from nst import NstError
from nst.config import TransferConfig
from nst.images import to_image
from nst.provenance import command_line, device_description, git_state, package_versions
from nst.transfer import Callback, Result, Step, fit_size

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

MODES = ("strict", "best-effort")
#: the code whose git commit a run records: nst's own checkout, wherever the run is started from
CODE_DIR = Path(__file__).resolve().parent
#: MLflow accepts at most 1000 metrics per log_batch request
BATCH_LIMIT = 1000


class TrackingError(NstError):
    """Tracking failed (store unreachable, disk full, ...) in strict mode."""


class TrackingWarning(UserWarning):
    """A tracking failure in best-effort mode: the run goes on without tracking."""


# ---------------------------------------------------------------------------- where runs go


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


def _experiment_id(client: MlflowClient, uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name, artifact_location=artifact_location(uri, name)))
    except MlflowException:  # created concurrently by another worker
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)


# ---------------------------------------------------------------------------- what is logged


def flatten_config(config: TransferConfig) -> dict[str, str]:
    """Every config field as an MLflow param: the field name as key, tuples comma-joined,
    nested mappings (if a field ever holds one) as parent.child."""

    def flat(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from flat(f"{prefix}.{k}", v)
        elif isinstance(value, list | tuple):
            yield prefix, ",".join(map(str, value))
        else:
            yield prefix, str(value)

    return dict(kv for name, value in config.to_dict().items() for kv in flat(name, value))


def provenance_tags(config: TransferConfig) -> dict[str, str]:
    """Tags that say where and how a run ran (the weights come later, from the Result)."""
    from mlflow.tracking.context import registry

    git = git_state(CODE_DIR)
    tags = dict(registry.resolve_tags({}))  # mlflow.user, mlflow.source.*
    tags.update(
        {
            "mlflow.source.git.commit": git["commit"],
            "nst.git.commit": git["commit"],
            "nst.git.dirty": git["dirty"],
            "nst.seed": str(config.seed),
            "nst.command": command_line()[:5000],
            "nst.host": platform.node(),
            "nst.device": config.device,
        }
    )
    try:
        from nst.transfer import resolve_device

        tags["nst.device.name"] = device_description(resolve_device(config.device))
    except NstError:
        pass  # stylize will say what is wrong with the device
    tags.update({f"nst.version.{k}": v for k, v in package_versions().items()})
    return tags


def hash_files(paths: dict[str, str | Path]) -> dict[str, str]:
    """sha256 of each input file, for the nst.data.<name> tags."""
    from nst.backbones.base import file_sha256

    return {name: file_sha256(Path(p)) for name, p in paths.items()}


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


class TransferTracker:
    """Logs one transfer (or several, with prefixes) into one MLflow run.

    run_id is "" when the run could not even be created (tracking failed; see `error`)."""

    def __init__(
        self,
        client: MlflowClient | None,
        uri: str,
        run_id: str,
        mode: str = "strict",
        flush_every: int = 50,
    ):
        if mode not in MODES:
            raise NstError(f"tracking mode {mode!r}: use one of {', '.join(MODES)}")
        self.client, self.uri, self.run_id, self.mode = client, uri, run_id, mode
        self.flush_every = max(1, flush_every)
        self.error: TrackingError | None = None
        self._pending: list[Metric] = []

    @property
    def active(self) -> bool:
        return self.client is not None and bool(self.run_id) and self.error is None

    def fail(self, what: str, err: BaseException) -> None:
        """Record the first failure and stop logging; best-effort mode warns about it now."""
        if self.error is not None:
            return
        self.error = TrackingError(
            f"MLflow tracking failed while {what} ({self.uri}): {_one_line(err)}; "
            "use --track best-effort to keep going without it, or --no-track"
        )
        self._pending.clear()
        if self.mode == "best-effort":
            warnings.warn(f"{self.error}; continuing untracked", TrackingWarning, stacklevel=3)

    def check(self) -> None:
        """Raise the recorded failure now (strict mode), e.g. before starting the next pair."""
        if self.error is not None and self.mode == "strict":
            raise self.error

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        try:
            yield
        except Exception as err:  # MlflowException, requests, sqlalchemy, OSError: all one story
            self.fail(what, err)

    def callback(self, prefix: str = "") -> Callback:
        """A stylize callback buffering loss/<term> per step; flushed every `flush_every` steps."""
        from mlflow.entities import Metric

        keys: dict[str, str] = {}

        def on_step(step: Step) -> None:
            if not self.active:
                return None
            ts = int(time.time() * 1000)
            for term, value in step.losses.items():
                key = keys.get(term) or keys.setdefault(term, f"{prefix}loss/{term}")
                self._pending.append(Metric(key, value, ts, step.step))
            if step.step % self.flush_every == 0:
                self.flush()
            return None

        return on_step

    def flush(self) -> None:
        """Send the buffered per-step metrics, BATCH_LIMIT per request."""
        pending, self._pending = self._pending, []
        if not (self.active and pending):
            return
        with self._guard("logging loss curves"):
            assert self.client is not None
            for i in range(0, len(pending), BATCH_LIMIT):
                self.client.log_batch(self.run_id, metrics=pending[i : i + BATCH_LIMIT])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        if not (self.active and metrics):
            return
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        with self._guard("logging metrics"):
            assert self.client is not None
            for i in range(0, len(batch), BATCH_LIMIT):
                self.client.log_batch(self.run_id, metrics=batch[i : i + BATCH_LIMIT])

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        if not (self.active and params):
            return
        items = [Param(k, str(v)) for k, v in params.items()]
        with self._guard("logging params"):
            assert self.client is not None
            for i in range(0, len(items), 100):  # MLflow's per-request limit for params
                self.client.log_batch(self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if not (self.active and tags):
            return
        with self._guard("setting tags"):
            assert self.client is not None
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_image(self, image: Tensor, artifact_file: str) -> None:
        if not self.active:
            return
        with self._guard(f"logging {artifact_file}"):
            assert self.client is not None
            self.client.log_image(self.run_id, to_image(image), artifact_file=artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file (e.g. the progress GIF) as an artifact."""
        if not self.active:
            return
        with self._guard(f"logging {path}"):
            assert self.client is not None
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_frames(self, frames: list[Tensor], steps: list[int], key: str = "progress") -> None:
        """Progress frames as MLflow image steps (the UI shows them with a step slider)."""
        if not self.active:
            return
        with self._guard("logging progress frames"):
            assert self.client is not None
            for step, frame in zip(steps, frames, strict=False):
                self.client.log_image(self.run_id, to_image(frame), key=key, step=int(step))

    def log_result(
        self,
        result: Result,
        content: Tensor,
        style: Tensor | Sequence[Tensor],
        *,
        prefix: str = "",
        metrics: dict[str, float] | None = None,
        data_hashes: dict[str, str] | None = None,
    ) -> None:
        """Images, final losses, timings, peak memory, weights tags and extra metrics of one
        transfer; content and style are logged at the size the loss saw them."""
        self.flush()
        size = result.config.size
        self.log_image(fit_size(content, size), f"{prefix}images/content.png")
        styles = [style] if isinstance(style, Tensor) else list(style)
        for i, each in enumerate(styles):  # several styles (a blend): style.png, style1.png, ...
            self.log_image(fit_size(each, size), f"{prefix}images/style{i or ''}.png")
        self.log_image(result.image, f"{prefix}images/result.png")
        frames = getattr(result, "frames", None)
        if frames:
            every = int(getattr(result.config, "frame_every", 0) or 1)
            steps = getattr(result, "frame_steps", None) or [
                every * (i + 1) for i in range(len(frames))
            ]
            self.log_frames(list(frames), list(steps), key=f"{prefix}progress")
        final = {f"{prefix}final/{k}": v for k, v in result.final_losses.items()}
        final.update(
            {
                f"{prefix}steps": result.steps,
                f"{prefix}seconds": result.seconds,
                f"{prefix}seconds_per_step": result.seconds_per_step,
                f"{prefix}peak_memory_mb": result.peak_memory_mb,
                f"{prefix}stopped_early": float(result.stopped_early),
                **{f"{prefix}{k}": v for k, v in result.timings.items()},
                **{f"{prefix}{k}": v for k, v in (metrics or {}).items()},
            }
        )
        self.log_metrics({k: float(v) for k, v in final.items()})
        self.set_tags(
            {
                **weights_tags(result),
                **{f"nst.data.{prefix}{k}": v for k, v in (data_hashes or {}).items()},
            }
        )


def weights_tags(result: Result) -> dict[str, str]:
    w = result.weights
    tags = {
        "nst.weights": w.kind,
        "nst.weights.identity": w.identity,
        "nst.weights.sha256": w.sha256,
        "nst.weights.pretrained": str(w.pretrained).lower(),
    }
    if not w.pretrained:
        tags["nst.warning"] = (
            f"RANDOM backbone weights ({w.identity}): features are not ImageNet ones, so results "
            "are not comparable with pretrained-feature NST"
        )
    return tags


# ---------------------------------------------------------------------------- runs


def _status(exc: BaseException | None) -> str:
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "TrialPruned":
        return "KILLED"
    return "FAILED"


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
    flush_every: int = 50,
) -> Iterator[TransferTracker]:
    """An MLflow run for one transfer (nested under `parent_run_id` when given) with the config
    as params and provenance tags; ends FINISHED, FAILED (body raised) or KILLED (interrupted or
    pruned). In strict mode a tracking failure is raised as TrackingError once the body is done."""
    uri = resolve_tracking_uri(tracking_uri)
    tracker = TransferTracker(None, uri, "", mode, flush_every)
    with tracker._guard("starting the run"):
        client = _client(uri)
        all_tags = provenance_tags(config)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        all_tags.update(tags or {})
        run = client.create_run(
            _experiment_id(client, uri, experiment), run_name=run_name, tags=all_tags
        )
        tracker.client, tracker.run_id = client, run.info.run_id
        tracker.log_params(flatten_config(config))
    failure: BaseException | None = None
    try:
        yield tracker
    except BaseException as exc:
        failure = exc
        raise
    finally:
        tracker.flush()
        if tracker.client is not None and tracker.run_id:
            status = "FAILED" if tracker.error is not None and failure is None else _status(failure)
            try:
                tracker.client.set_terminated(tracker.run_id, status=status)
            except Exception as err:
                tracker.fail("ending the run", err)
        if failure is None:
            tracker.check()


def start_parent_run(
    name: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    tags: dict[str, str] | None = None,
) -> str:
    """Start a parent run (e.g. for a study) and return its run_id; finish it with end_run.
    Raises TrackingError when the store cannot be reached."""
    uri = resolve_tracking_uri(tracking_uri)
    try:
        client = _client(uri)
        git = git_state(CODE_DIR)
        all_tags = {
            "nst.git.commit": git["commit"],
            "nst.git.dirty": git["dirty"],
            "mlflow.source.git.commit": git["commit"],
            "nst.command": command_line()[:5000],
            **{f"nst.version.{k}": v for k, v in package_versions().items()},
            **(tags or {}),
        }
        run = client.create_run(
            _experiment_id(client, uri, experiment), run_name=name, tags=all_tags
        )
    except Exception as err:
        raise TrackingError(
            f"cannot start MLflow parent run {name!r} ({uri}): {_one_line(err)}"
        ) from None
    return str(run.info.run_id)


def end_run(run_id: str, *, tracking_uri: str | None = None, status: str = "FINISHED") -> None:
    """Mark a run (e.g. a study's parent run) FINISHED, FAILED or KILLED."""
    uri = resolve_tracking_uri(tracking_uri)
    try:
        _client(uri).set_terminated(run_id, status=status)
    except Exception as err:
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
    except Exception as err:
        warnings.warn(f"cannot mark MLflow run {run_id} failed ({uri}): {_one_line(err)}",
                      TrackingWarning, stacklevel=2)  # fmt: skip
        return False
    return True


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
