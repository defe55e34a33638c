"""What the MLflow UI shows of nst's runs: a training run's validation image is the network's
stylisation of the validation photos, its network is an MLflow 3 logged model (the "Logged
models" tab) that loads and stylises, experiments carry descriptions, and a methods
comparison's nested runs span their evaluation and link to the training runs."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from helpers import SPEC, make_images
from PIL import Image
from test_train import small

from nst.methods.run import run_methods
from nst.methods.stylizer import Stylizer
from nst.methods.tracking import log_comparison, training_hooks
from nst.models import load_model
from nst.tracking.store import EXPERIMENT_DESCRIPTIONS, NOTE
from nst.train import train
from nst.train.data import ContentStream
from nst.train.tracking import training_run

pytestmark = pytest.mark.usefixtures("one_thread")


def png(client: Any, run_id: str, path: str, dst: Path) -> np.ndarray:
    local = client.download_artifacts(run_id, path, str(dst))
    return np.asarray(Image.open(local).convert("RGB"), dtype=np.float32) / 255


def row(batch: torch.Tensor) -> np.ndarray:
    """A batch side by side as an H x W x 3 array, as the validation images lay it out."""
    return torch.cat(list(batch), dim=-1).permute(1, 2, 0).numpy()


def test_training_run_shows_its_stylisation_and_its_network_as_a_logged_model(
    tmp_path: Path,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from nst.models.uri import resolve_checkpoint

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    config = small(tmp_path, steps=3, checkpoint_every=0, sample_every=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with training_run(config, tracking_uri=uri, experiment="ff", register_model="tiny") as h:
            train(config, tmp_path / "run", progress=False, hooks=h)
    client = MlflowClient(uri)
    run_id = h.tracker.run_id
    exp = client.get_experiment_by_name("ff")
    assert exp.tags[NOTE] == EXPERIMENT_DESCRIPTIONS["runs"]

    # the validation image is the trained network's output on the validation photos
    photos = ContentStream(config.data, config.size, 1, config.seed).validation(2)
    net, _ = load_model(tmp_path / "run" / "model.pt")
    with torch.no_grad():
        styled = row(net(photos))
    shown = png(client, run_id, "images/validation.png", tmp_path / "a")
    inputs = png(client, run_id, "images/validation_inputs.png", tmp_path / "b")
    assert shown.shape == inputs.shape == (32, 64, 3)
    assert np.abs(inputs - row(photos)).max() <= 1 / 255
    assert np.abs(shown - row(photos)).mean() > 0.05  # not the photos themselves
    assert np.abs(shown - styled).max() <= 1.01 / 255  # PNG quantisation only

    # the network is a logged model of the run: listed, linked, with params and metrics
    (model,) = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert model.name == "model" and model.source_run_id == run_id
    assert str(model.status) in ("READY", "LoggedModelStatus.READY")
    assert model.params["method"] == "johnson" and model.params["steps"] == "3"
    assert {m.key for m in model.metrics} >= {"final/total", "seconds"}
    # the UI's "Logged from" column reads the model's own source tags: the run's program
    run_tags = client.get_run(run_id).data.tags
    assert model.tags["mlflow.source.name"] == run_tags["mlflow.source.name"]
    assert [o.model_id for o in client.get_run(run_id).outputs.model_outputs] == [model.model_id]
    x = np.random.default_rng(0).random((1, 36, 40, 3), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    mlflow.set_tracking_uri(uri)
    try:
        for spec in (f"models:/{model.model_id}", f"runs:/{run_id}/model"):
            y = mlflow.pyfunc.load_model(spec).predict(x)
            assert np.abs(y - expected).max() <= 1e-5, spec
    finally:
        mlflow.set_tracking_uri("")
    # registered as a version of the logged model; the URIs nst apply takes still resolve
    (version,) = client.search_model_versions("name = 'tiny'")
    assert version.run_id == run_id and version.source == model.artifact_location
    for spec in ("models:/tiny/1", f"runs:/{run_id}/model"):
        found = resolve_checkpoint(spec, tmp_path / spec.replace("/", "_"), uri)
        assert found.read_bytes() == (tmp_path / "run" / "model.pt").read_bytes(), spec


def test_a_study_experiment_says_what_its_runs_are(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from nst.tracking.runs import end_run, start_parent_run

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    end_run(
        start_parent_run("s", tracking_uri=uri, experiment="study-s", experiment_kind="study"),
        tracking_uri=uri,
    )
    tags = MlflowClient(uri).get_experiment_by_name("study-s").tags
    assert tags[NOTE] == EXPERIMENT_DESCRIPTIONS["study"] and "nested run per trial" in tags[NOTE]


SLOW = 1.5  # seconds each stylisation takes on top of its own


def test_a_comparisons_runs_span_their_work_and_link_its_training_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gatys and johnson (smoke profile) with stylisations made SLOW seconds slower: the
    nested runs last at least that long, and the comparison links johnson's training run."""
    from mlflow import MlflowClient

    spec = yaml.safe_load(SPEC.read_text())
    for methods in (spec["methods"], *(p["methods"] for p in spec["profiles"].values())):
        for name in ("adain", "stytr"):
            methods.pop(name, None)
    (tmp_path / "methods.yaml").write_text(yaml.safe_dump(spec))
    data = tmp_path / "data"
    make_images(data / "content", 3, seed=0)
    make_images(data / "style", 3, seed=1, stripes=True)
    real = Stylizer.stylize

    def slow(self: Stylizer, *args: Any, **kwargs: Any) -> Any:
        time.sleep(SLOW)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "stylize", slow)
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = run_methods(
            tmp_path / "methods.yaml",
            "smoke",
            data,
            tmp_path / "results",
            hooks=training_hooks(uri, "smoke"),
        )
        parent_id = log_comparison(root, uri)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("methods")
    assert exp.tags[NOTE] == EXPERIMENT_DESCRIPTIONS["methods"]
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    (train_name,) = [n for n in runs if n.startswith("train-johnson")]
    trained = runs[train_name].info.run_id
    parent = client.get_run(str(parent_id))
    for name in ("gatys", "johnson"):
        info = runs[name].info
        assert info.end_time - info.start_time >= SLOW * 1000, name
        assert parent.info.start_time <= info.start_time <= info.end_time <= parent.info.end_time
    note = parent.data.tags[NOTE]
    assert f"[{train_name}](#/experiments/{exp.experiment_id}/runs/{trained})" in note
    johnson = runs["johnson"].data.tags
    assert johnson["nst.methods.train_runs"] == trained and trained in johnson[NOTE]
