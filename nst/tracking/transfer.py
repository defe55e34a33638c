"""MLflow tracking of every transfer: one run per transfer with params, curves, images and tags.

A run records what a reader needs to reproduce a result and see how it went:

    params   every config field under its own name (TransferConfig, StrotssConfig; tuples
             comma-joined)
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
failure is a warning and the run goes on untracked. Only the store's failures count
(store.store_errors); any other exception, e.g. in nst's own image conversion, is a bug and
propagates as itself. mlflow is imported lazily (it takes ~1.5 s).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from nst import NstError
from nst.config import OptimisationConfig
from nst.images import fit_size, to_image
from nst.optimize.loop import Callback, Result, Step
from nst.tracking.runs import _status
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
from nst.tracking.tags import flatten_config, provenance_tags, weights_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

MODES = ("strict", "best-effort")


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
        """Around MLflow calls only: a store failure (store_errors) is a tracking failure; any
        other exception is a bug and propagates as itself, so keep nst's own work outside."""
        try:
            yield
        except Exception as err:
            if not isinstance(err, store_errors()):
                raise
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
        """Send the buffered per-step metrics (in chunks MLflow accepts: store.log_batch)."""
        pending, self._pending = self._pending, []
        if not (self.active and pending):
            return
        with self._guard("logging loss curves"):
            assert self.client is not None
            log_batch(self.client, self.run_id, metrics=pending)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        if not (self.active and metrics):
            return
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step or 0) for k, v in metrics.items()]
        with self._guard("logging metrics"):
            assert self.client is not None
            log_batch(self.client, self.run_id, metrics=batch)

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        if not (self.active and params):
            return
        items = [Param(k, str(v)) for k, v in params.items()]
        with self._guard("logging params"):
            assert self.client is not None
            log_batch(self.client, self.run_id, params=items)

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if not (self.active and tags):
            return
        with self._guard("setting tags"):
            assert self.client is not None
            log_batch(self.client, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_image(self, image: Tensor, artifact_file: str) -> None:
        if not self.active:
            return
        picture = to_image(image)
        with self._guard(f"logging {artifact_file}"):
            assert self.client is not None
            self.client.log_image(self.run_id, picture, artifact_file=artifact_file)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """A file (e.g. the progress GIF) as an artifact."""
        if not self.active:
            return
        with self._guard(f"logging {path}"):
            assert self.client is not None
            self.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_frames(self, frames: list[Tensor], steps: list[int], key: str = "progress") -> None:
        """Progress frames as MLflow image steps (the UI shows them with a step slider), frame
        i at optimisation step steps[i]."""
        if len(steps) != len(frames):
            raise ValueError(f"{len(frames)} progress frames but {len(steps)} steps")
        for step, frame in zip(steps, frames, strict=True):
            if not self.active:
                return
            picture = to_image(frame)
            with self._guard("logging progress frames"):
                assert self.client is not None
                self.client.log_image(self.run_id, picture, key=key, step=int(step))

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
        if result.frames:
            self.log_frames(result.frames, result.frame_steps, key=f"{prefix}progress")
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


@contextmanager
def transfer_run(
    config: OptimisationConfig,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    mode: str = "strict",
    flush_every: int = 50,
    experiment_kind: str = "runs",
) -> Iterator[TransferTracker]:
    """An MLflow run for one transfer (nested under `parent_run_id` when given) with the config
    as params and provenance tags; ends FINISHED, FAILED (body raised) or KILLED (interrupted or
    pruned). In strict mode a tracking failure is raised as TrackingError once the body is done.
    `experiment_kind` describes the experiment if this creates it (EXPERIMENT_DESCRIPTIONS)."""
    uri = resolve_tracking_uri(tracking_uri)
    tracker = TransferTracker(None, uri, "", mode, flush_every)
    all_tags = provenance_tags(config)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    all_tags.update(tags or {})
    params = flatten_config(config)
    with tracker._guard("starting the run"):
        client = _client(uri)
        run = client.create_run(
            _experiment_id(client, uri, experiment, experiment_kind),
            run_name=run_name,
            tags=all_tags,
        )
        tracker.client, tracker.run_id = client, run.info.run_id
        tracker.log_params(params)
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
            with tracker._guard("ending the run"):
                tracker.client.set_terminated(tracker.run_id, status=status)
        if failure is None:
            tracker.check()
