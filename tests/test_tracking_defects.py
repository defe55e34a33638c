"""Tracking defects fixed in the layout redesign (issue 17): request chunking written once, an
nst bug is not a tracking failure, progress frames logged at the steps they were taken."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException

import nst.tracking.transfer
from nst.config import TransferConfig
from nst.optimize.transfer import stylize
from nst.tracking.store import BATCH_LIMIT, PARAMS_TAGS_LIMIT, TrackingWarning, log_batch
from nst.tracking.transfer import TransferTracker, transfer_run

CONFIG = TransferConfig(size=32, steps=2, weights="random", seed=3)


class Recorder:
    """Stands in for MlflowClient: records the size of each log_batch request by kind."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []

    def log_batch(self, run_id: str, metrics=(), params=(), tags=()) -> None:  # type: ignore[no-untyped-def]
        for kind, items in (("metrics", metrics), ("params", params), ("tags", tags)):
            if items:
                self.requests.append((kind, len(items)))


def test_log_batch_splits_every_kind_at_mlflow_request_limits() -> None:
    client = Recorder()
    metrics = [Metric(f"m{i}", 1.0, 0, 0) for i in range(2 * BATCH_LIMIT + 1)]
    params = [Param(f"p{i}", "x") for i in range(PARAMS_TAGS_LIMIT + 50)]
    tags = [RunTag(f"t{i}", "x") for i in range(PARAMS_TAGS_LIMIT)]
    log_batch(client, "run", metrics=metrics, params=params, tags=tags)  # type: ignore[arg-type]
    assert client.requests == [
        ("metrics", BATCH_LIMIT),
        ("metrics", BATCH_LIMIT),
        ("metrics", 1),
        ("params", PARAMS_TAGS_LIMIT),
        ("params", 50),
        ("tags", PARAMS_TAGS_LIMIT),
    ]
    log_batch(client, "run")  # type: ignore[arg-type]
    assert len(client.requests) == 6  # nothing to send: no request


def test_tracker_chunks_tags_params_and_metrics_alike() -> None:
    """Every TransferTracker method goes through the one chunking rule (set_tags used to
    send any number of tags in a single request)."""
    client = Recorder()
    tracker = TransferTracker(client, "sqlite:///unused.db", "run")  # type: ignore[arg-type]
    tracker.set_tags({f"nst.t{i}": "x" for i in range(PARAMS_TAGS_LIMIT + 1)})
    tracker.log_params({f"p{i}": "x" for i in range(PARAMS_TAGS_LIMIT + 1)})
    tracker.log_metrics({f"m{i}": 1.0 for i in range(BATCH_LIMIT + 1)})
    assert client.requests == [
        ("tags", PARAMS_TAGS_LIMIT),
        ("tags", 1),
        ("params", PARAMS_TAGS_LIMIT),
        ("params", 1),
        ("metrics", BATCH_LIMIT),
        ("metrics", 1),
    ]
    assert tracker.error is None


@pytest.mark.parametrize("mode", ["best-effort", "strict"])
def test_a_bug_in_nst_image_conversion_is_not_a_tracking_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def broken(image: torch.Tensor) -> None:
        raise TypeError("to_image got a tensor it cannot convert")

    monkeypatch.setattr(nst.tracking.transfer, "to_image", broken)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)  # best-effort would only have warned
        with (
            pytest.raises(TypeError, match="cannot convert"),
            transfer_run(CONFIG, tracking_uri=uri, mode=mode) as tracker,
        ):
            tracker.log_image(torch.rand(1, 3, 8, 8), "images/result.png")
    assert tracker.error is None  # not reported as "MLflow tracking failed"
    assert MlflowClient(uri).get_run(tracker.run_id).info.status == "FAILED"


def test_a_store_failure_while_logging_an_image_still_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def refused(*args: object, **kwargs: object) -> None:
        raise MlflowException("artifact store refused the upload")

    with (
        pytest.warns(TrackingWarning, match="MLflow tracking failed while logging images/r.png"),
        transfer_run(CONFIG, tracking_uri=uri, mode="best-effort") as tracker,
    ):
        monkeypatch.setattr(tracker.client, "log_image", refused)
        tracker.log_image(torch.rand(1, 3, 8, 8), "images/r.png")
    assert tracker.error is not None and "artifact store refused" in str(tracker.error)


def logged_frame_steps(uri: str, run_id: str, key: str = "progress") -> list[int]:
    """The steps of a run's progress images, read back from MLflow's artifact names."""
    names = [a.path for a in MlflowClient(uri).list_artifacts(run_id, "images")]
    found = (re.fullmatch(rf"images/{key}\+step\+(\d+)\+.*(?<!compressed)\.png", n) for n in names)
    return sorted(int(m.group(1)) for m in found if m)


def test_pyramid_frames_are_logged_at_the_steps_they_were_taken(tmp_path: Path, tiny_pair) -> None:  # type: ignore[no-untyped-def]
    """Stage 1 takes steps 1-3 (a frame at 2), stage 2 steps 4-6 (a frame at its own step 2,
    i.e. 5): the frames are at steps 2 and 5, not at 2 and 4 as every * (i + 1) would say."""
    content, style = tiny_pair
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = TransferConfig(
        pyramid=(16, 24), pyramid_steps=(3, 3), frame_every=2, weights="random", seed=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights
        with transfer_run(config, tracking_uri=uri) as tracker:
            result = stylize(config, content, style, callbacks=[tracker.callback()])
            tracker.log_result(result, content, style)
    assert result.steps == 6 and len(result.frames) == 2
    assert logged_frame_steps(uri, tracker.run_id) == [2, 5]
    assert result.frame_steps == [2, 5]
