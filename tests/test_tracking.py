"""MLflow tracking against real stores: a sqlite file in tmp_path and a real `mlflow server`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from nst.cli import main
from nst.config import TransferConfig
from nst.images import save_image
from nst.optimize.transfer import stylize
from nst.tracking.runs import end_run, start_parent_run
from nst.tracking.store import TrackingWarning, artifact_location, resolve_tracking_uri
from nst.tracking.tags import flatten_config
from nst.tracking.transfer import transfer_run

CONFIG = TransferConfig(size=32, steps=7, weights="random", seed=3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    # one store for the module: creating an MLflow schema costs seconds
    return f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"


@pytest.fixture
def pair_files(tmp_path: Path, tiny_pair) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    content, style = tiny_pair
    return save_image(content, tmp_path / "c.png"), save_image(style, tmp_path / "s.png")


def test_tracking_uri_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert resolve_tracking_uri() == "http://127.0.0.1:1"
    assert resolve_tracking_uri("sqlite:///x.db") == f"sqlite:///{tmp_path / 'sub' / 'x.db'}"
    assert artifact_location("sqlite:////a/b/m.db", "nst") == "file:///a/b/mlartifacts/nst"


def test_run_logs_params_curves_images_tags(uri: str, tiny_pair, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    content, style = tiny_pair
    calls: list[int] = []
    real = MlflowClient.log_batch

    def counting(self, run_id, metrics=(), **kw):  # type: ignore[no-untyped-def]
        if any(m.key.startswith("loss/") for m in metrics):
            calls.append(len(metrics))
        return real(self, run_id, metrics=metrics, **kw)

    monkeypatch.setattr(MlflowClient, "log_batch", counting)
    with transfer_run(CONFIG, tracking_uri=uri, run_name="curves-test", flush_every=5) as tracker:
        result = stylize(CONFIG, content, style, callbacks=[tracker.callback()])
        tracker.log_result(result, content, style, data_hashes={"content": "ab12"})
    assert calls == [5 * 4, 2 * 4]  # batched: flushed at step 5 and at the end, not per step

    client = MlflowClient(uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == flatten_config(CONFIG)
    assert run.data.params["style_layers"] == "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1"
    for term in ("content", "style", "tv", "total"):
        history = client.get_metric_history(tracker.run_id, f"loss/{term}")
        assert sorted(m.step for m in history) == list(range(1, CONFIG.steps + 1))
        assert run.data.metrics[f"final/{term}"] == pytest.approx(result.final_losses[term])
    assert run.data.metrics["steps"] == CONFIG.steps
    assert run.data.metrics["peak_memory_mb"] > 0
    tags = run.data.tags
    assert tags["nst.weights"] == "random" and "RANDOM" in tags["nst.warning"]
    assert tags["nst.weights.sha256"] == result.weights.sha256
    assert tags["nst.seed"] == "3" and tags["nst.data.content"] == "ab12"
    assert tags["nst.version.torch"] and tags["nst.git.commit"] and tags["nst.command"]
    images = {a.path for a in client.list_artifacts(tracker.run_id, "images")}
    assert images == {"images/content.png", "images/style.png", "images/result.png"}
    frame = MlflowClient(uri).search_runs(
        [run.info.experiment_id],
        filter_string="params.seed = '3' and tags.mlflow.runName = 'curves-test'",
    )
    assert [r.info.run_id for r in frame] == [tracker.run_id]


def test_nested_study_runs(uri: str, tiny_pair) -> None:  # type: ignore[no-untyped-def]
    content, style = tiny_pair
    config = CONFIG.replace(steps=2)
    parent = start_parent_run("study-x", tracking_uri=uri, tags={"nst.study": "x"})
    for trial in range(2):
        tags = {"nst.study": "x", "nst.trial": str(trial)}
        with transfer_run(config, tracking_uri=uri, parent_run_id=parent, tags=tags) as t:
            result = stylize(config, content, style, callbacks=[t.callback("pair0/")])
            t.log_result(result, content, style, prefix="pair0/", metrics={"ssim": 0.5})
    end_run(parent, tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    try:
        runs = mlflow.search_runs(
            experiment_names=["nst"], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
        )
    finally:
        mlflow.set_tracking_uri(None)
    assert sorted(runs["tags.nst.trial"]) == ["0", "1"]
    assert set(runs["tags.nst.study"]) == {"x"}
    assert list(runs["metrics.pair0/ssim"]) == [0.5, 0.5]
    assert MlflowClient(uri).get_run(parent).info.status == "FINISHED"


def test_failed_body_marks_run_failed(uri: str) -> None:
    with pytest.raises(RuntimeError), transfer_run(CONFIG, tracking_uri=uri) as t:
        raise RuntimeError("diverged")
    assert MlflowClient(uri).get_run(t.run_id).info.status == "FAILED"


def _closed_port_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    return f"http://127.0.0.1:{free_port()}"


def test_strict_failure_fails_cli_but_keeps_image(
    pair_files, tmp_path, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    dead = _closed_port_env(monkeypatch)
    out = tmp_path / "out.png"
    argv = [
        "transfer",
        "--content",
        str(pair_files[0]),
        "--style",
        str(pair_files[1]),
        "--out",
        str(out),
        "--size",
        "32",
        "--steps",
        "2",
        "--weights",
        "random",
    ]
    assert main([*argv, "--tracking-uri", dead]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("nst transfer: error: MLflow tracking failed")
    assert out.exists()  # the computed result is never lost


def test_best_effort_failure_warns_and_succeeds(pair_files, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    dead = _closed_port_env(monkeypatch)
    out = tmp_path / "out.png"
    argv = [
        "transfer",
        "--content",
        str(pair_files[0]),
        "--style",
        str(pair_files[1]),
        "--out",
        str(out),
        "--size",
        "32",
        "--steps",
        "2",
        "--weights",
        "random",
    ]
    assert main([*argv, "--tracking-uri", dead, "--track", "best-effort"]) == 0
    # nst.cli.main shows the command's warnings itself, one line each
    err = capsys.readouterr().err
    assert f"WARNING ({TrackingWarning.__name__}): MLflow tracking failed" in err, err
    assert "continuing untracked" in err
    assert out.exists()


def test_no_track_writes_no_store(pair_files, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'never.db'}")
    argv = [
        "transfer",
        "--content",
        str(pair_files[0]),
        "--style",
        str(pair_files[1]),
        "--out",
        str(tmp_path / "o.png"),
        "--size",
        "32",
        "--steps",
        "1",
        "--weights",
        "random",
    ]
    assert main([*argv, "--no-track"]) == 0
    assert not (tmp_path / "never.db").exists()


def test_ui_command_targets_project_store(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("")
    assert main(["ui", "--dry-run", "--port", "5123"]) == 0
    line = capsys.readouterr().out
    assert f"--backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in line
    assert "--host 127.0.0.1 --port 5123" in line


@pytest.mark.slow  # the server takes 10-60 s to start on 2 busy cores
def test_run_visible_through_real_mlflow_server(pair_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'srv.db'}",
            "--artifacts-destination",
            str(tmp_path / "art"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mlflow server did not start")
                time.sleep(0.5)
        out = tmp_path / "o.png"
        argv = [
            "transfer",
            "--content",
            str(pair_files[0]),
            "--style",
            str(pair_files[1]),
            "--out",
            str(out),
            "--size",
            "32",
            "--steps",
            "3",
            "--weights",
            "random",
            "--tracking-uri",
            base,
            "--run-name",
            "via-server",
        ]
        assert main(argv) == 0
        req = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": ["1"]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            runs = json.load(r)["runs"]
        assert len(runs) == 1
        run = runs[0]
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        assert params["steps"] == "3" and tags["mlflow.runName"] == "via-server"
        assert {m["key"] for m in run["data"]["metrics"]} >= {"loss/total", "final/total"}
        run_id = run["info"]["run_id"]
        url = f"{base}/api/2.0/mlflow/artifacts/list?run_id={run_id}&path=images"
        with urllib.request.urlopen(url, timeout=10) as r:
            files = {f["path"] for f in json.load(r)["files"]}
        assert "images/result.png" in files
    finally:
        server.terminate()
        server.wait(timeout=30)
