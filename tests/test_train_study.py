"""Studies over training settings (`method: johnson | adain | stytr`): the spec, the validation
callback of the training loop, pruning on validation reports, MLflow nesting, workers, retries."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from torch import nn

from nst import NstError
from nst.cli import main as cli_main
from nst.study.backbone import choose_backbone
from nst.study.objective import StudyOptions
from nst.study.pruners import make_pruner
from nst.study.runner import open_study, run_study
from nst.study.spec import load_experiment, parse_experiment
from nst.train import TrainConfig, train
from nst.train.validate import Validation, run_validation

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

pytestmark = pytest.mark.usefixtures("one_thread")

#: a johnson training study searching lr alone, judged by its validation total loss
LR_STUDY = {
    "name": "train_lr",
    "method": "johnson",
    "fixed": {"backbone": "efficientnet_lite0", "width": 8, "beta": 1.0e4},
    "search": {"lr": {"type": "float", "low": 1.0e-7, "high": 1.0e-1, "log": True}},
    "objectives": [{"metric": "total"}],
    "pruner": {"type": "median", "n_startup_trials": 1},
    "profiles": {"smoke": {"fixed": {"steps": 12}}},
}


def rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open() as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("change", "key", "fix"),
    [
        ({"fixed": {"widht": 8}}, "fixed", "valid keys: width, encoder"),
        ({"profiles": {"smoke": {"fixed": {"stpes": 3}}}}, "profiles.smoke.fixed", "valid keys"),
        (
            {"search": {"lr_rate": {"type": "float", "low": 0.1, "high": 1}}},
            "search.lr_rate",
            "unknown TrainConfig field; valid: width",
        ),
        ({"fixed": {"lora_rank": 4}}, "fixed", "lora_rank is an option of --method stytr"),
        (
            {"search": {"lora_rank": {"type": "int", "low": 1, "high": 8}}},
            "search.lora_rank",
            "option of --method stytr",
        ),
        ({"fixed": {"data": "photos"}}, "fixed", "data is set by the study"),
        (
            {"search": {"style_ratio": {"type": "float", "low": 1, "high": 9}}},
            "search.style_ratio",
            "unknown TrainConfig field",
        ),
        ({"objectives": [{"metric": "identity1"}]}, "objectives[0].metric", "known:"),
        ({"pairs": {"count": 2}}, "pairs.count", "valid keys: content, styles"),
        ({"method": "gan"}, "method", "gatys, adain, cin, johnson, stytr"),
    ],
)
def test_training_spec_errors_are_one_line_naming_the_trainconfig_key(tmp_path, change, key, fix):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**LR_STUDY, **change}))
    with pytest.raises(NstError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}"), message
    assert fix in message, message
    if "valid keys:" in message:  # the keys an experiment may name, not those the split sets
        assert "data, style" not in message and "method," not in message


def test_a_training_spec_builds_trainconfigs_with_its_profiles_and_pruner_resources():
    from nst.study.space import suggest

    spec = load_experiment(EXPERIMENTS / "train_stytr.yaml").with_profile("smoke")
    assert spec.trained and spec.resources == spec.reports == 2
    config = suggest(
        optuna.trial.FixedTrial({"lora_rank": 4, "lr": 1.0e-3}),
        spec,
        base={"data": "photos", "styles": "paintings"},
    )  # type: ignore[arg-type]
    assert isinstance(config, TrainConfig)
    assert (config.method, config.encoder, config.encoder_weights) == (
        "stytr",
        "deit_tiny",
        "random",
    )
    assert (config.lora_rank, config.lr, config.size, config.steps) == (4, 1.0e-3, 32, 4)
    assert (config.data, config.styles, config.backbone) == (
        "photos",
        "paintings",
        "efficientnet_lite0",
    )
    # hyperband's max resource: the reports of one training run, not reports x pairs
    hyper = replace(spec, pruner={"type": "hyperband"}, pairs={"content": 3, "styles": 5})
    assert make_pruner(hyper)._max_resource == spec.reports  # type: ignore[attr-defined]
    quick = load_experiment(EXPERIMENTS / "train_johnson.yaml").with_profile("quick")
    assert (quick.fixed["size"], quick.fixed["width"], quick.pairs) == (
        128,
        16,
        {"content": 1, "styles": 2},
    )
    gatys = load_experiment(EXPERIMENTS / "loss_weights.yaml").with_profile("quick")
    assert gatys.fixed["steps"] == 60 and not gatys.trained  # optimisation profiles unchanged


def test_backbone_auto_keeps_a_training_studys_loss_network_and_a_name_replaces_it():
    spec = load_experiment(EXPERIMENTS / "train_johnson.yaml").with_profile("smoke")
    same, choice = choose_backbone(spec, "auto")
    assert same == spec and choice.backbone == "efficientnet_lite0"
    assert choice.text.startswith("auto -> efficientnet_lite0 (kept: a johnson training study")
    other, choice = choose_backbone(spec, "vgg19")
    config = other.build(other.fixed)
    assert (config.backbone, config.content_layers) == ("vgg19", ("relu2_2",))  # johnson's


# ------------------------------------------------------------------- the training loop


def test_validation_runs_in_eval_mode_without_grad_and_restores_every_modules_mode():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    net[1].eval()  # a frozen part kept in eval mode by its owner (adain's, stytr's encoders)
    seen = []

    def validate(v: Validation) -> None:
        seen.append((v.step, v.network.training, v.network[1].training, torch.is_grad_enabled()))

    run_validation(validate, 7, net, torch.device("cpu"), objective=None)
    assert seen == [(7, False, False, False)]
    assert net.training and not net[1].training
    with pytest.raises(ZeroDivisionError):  # an exception restores the modes too
        run_validation(lambda v: 1 / 0, 8, net, torch.device("cpu"), objective=None)
    assert net.training and not net[1].training


class Stop(Exception):
    pass


def test_an_exception_from_validate_ends_training_cleanly_and_the_run_resumes(
    tmp_path, monkeypatch
):
    from nst.images import save_image
    from nst.train import distributed

    photos = tmp_path / "photos"
    photos.mkdir()
    torch.manual_seed(0)
    for i in range(3):
        save_image(torch.rand(1, 3, 40, 48), photos / f"p{i}.png")
    save_image(torch.rand(1, 3, 40, 40), tmp_path / "style.png")
    config = TrainConfig.from_dict(
        {
            "data": str(photos),
            "style": str(tmp_path / "style.png"),
            "size": 32,
            "width": 8,
            "steps": 6,
            "batch_size": 2,
            "backbone": "efficientnet_lite0",
            "device": "cpu",
            "checkpoint_every": 2,
            "sample_every": 0,
            "log_every": 4,
            "val_images": 0,
            "beta": 1e4,
        }
    )
    stops = []
    monkeypatch.setattr(distributed, "stop", lambda world: stops.append(world))
    calls = []

    def validate(v: Validation) -> None:
        out, losses = v.run(torch.rand(2, 3, 32, 32))
        calls.append((v.step, out.shape, set(losses)))
        if v.step == 3:
            raise Stop

    out = tmp_path / "run"
    with pytest.raises(Stop):
        train(config, out, progress=False, validate=validate, validate_at=(1, 3, 6))
    terms = {"content", "style", "tv", "total"}
    assert calls == [(1, (2, 3, 32, 32), terms), (3, (2, 3, 32, 32), terms)]
    assert len(stops) == 1  # the process group is left even so
    assert not (out / "model.pt").exists() and not list(out.glob(".*.tmp"))
    # a validation step is also a logged step (its losses checked finite first): 1..3 logged
    assert [json.loads(r)["step"] for r in (out / "losses.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]
    resumed = train(config, out, resume=True, progress=False)  # from the step-2 checkpoint
    assert resumed.start_step == 2 and resumed.steps == 6 and (out / "model.pt").exists()


# ----------------------------------------------------------------------- whole studies


def test_a_training_study_prunes_a_useless_lr_from_its_validation_reports(tmp_path, sample_data):
    spec = parse_experiment(LR_STUDY, "lr.yaml").with_profile("smoke", trials=2)
    spec = replace(spec, reports=4)  # validations at steps 3, 6, 9, 12
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(spec, url, 0)
    study.enqueue_trial({"lr": 3.0e-3})  # learns: the validation loss falls
    study.enqueue_trial({"lr": 1.0e-7})  # a network that never moves from its initialisation
    out = run_study(
        spec, StudyOptions(out=tmp_path / "r", storage=url, track=False, data=sample_data)
    )
    good, bad = optuna.load_study(study_name=spec.name, storage=url).trials
    assert (good.state.name, bad.state.name) == ("COMPLETE", "PRUNED"), bad.intermediate_values
    assert sorted(good.intermediate_values) == [1, 2, 3, 4]  # one per validation
    assert good.intermediate_values[4] == pytest.approx(good.value)  # the last is the value
    assert good.intermediate_values[4] < good.intermediate_values[1]
    assert bad.intermediate_values and max(bad.intermediate_values) < 4
    judged = max(bad.intermediate_values)
    assert bad.intermediate_values[judged] > good.intermediate_values[judged]
    # what each trial left: only the complete trial's network, no checkpoint anywhere
    assert (out / "trials" / "0" / "model.pt").is_file()
    assert not list((out / "trials").glob("*/checkpoint.pt"))
    assert not (out / "trials" / "1" / "model.pt").exists()
    table = rows(out / "trials.csv")
    assert [r["state"] for r in table] == ["COMPLETE", "PRUNED"]
    assert table[0]["weights_identity"].startswith("imagenet:efficientnet-lite0")
    curves = rows(out / "curves.csv")
    assert {r["trial"] for r in curves} == {"0", "1"}
    assert max(int(r["step"]) for r in curves if r["trial"] == "0") == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_trials"][0]["model"] == "trials/0/model.pt"
    split = summary["provenance"]["split"]
    # validated on the split's first validation photo, never on a test one
    assert split["part"] == "validation"
    assert split["contents"] == [split["images"]["content"]["validation"][0]["name"]]
    assert summary["provenance"]["params"]["method"] == "johnson"


def test_a_stytr_study_validates_held_out_photos_x_styles_and_records_its_random_encoders(
    tmp_path, sample_data
):
    spec = load_experiment(EXPERIMENTS / "train_stytr.yaml").with_profile("smoke", trials=1)
    spec = replace(spec, pairs={"content": 1, "styles": 2})
    out = run_study(
        spec,
        StudyOptions(
            out=tmp_path / "r",
            storage=f"sqlite:///{tmp_path / 'o.db'}",
            track=False,
            data=sample_data,
        ),
    )
    summary = json.loads((out / "summary.json").read_text())
    (best,) = summary["best_trials"]
    # one held-out photo x the first two styles; the other styles are the training styles
    split = summary["provenance"]["split"]
    assert [Path(p["content"]).name for p in best["pairs"]] == split["contents"] * 2
    assert [Path(p["style"]).name for p in best["pairs"]] == split["styles"]
    trained_on = sorted(p.name.split("_", 1)[1] for p in (out / "split" / "styles").iterdir())
    test = {i["name"] for i in split["images"]["style"]["test"]}
    assert trained_on and not set(trained_on) & (set(split["styles"]) | test)
    assert all((out / image).is_file() for image in best["images"])
    # the validation loss terms of stytr are the trial's metrics; no judge for a loss objective
    table = rows(out / "trials.csv")
    assert {"metric_identity1", "metric_identity2", "metric_total"} <= set(table[0])
    assert float(table[0]["total"]) == pytest.approx(float(table[0]["metric_total"]))
    assert summary["provenance"]["judge_pretrained"] is None
    # deit_tiny with random weights (the smoke profile): said in the summary, as for backbones
    assert summary["provenance"]["random_weights"] is True
    (encoder,) = summary["provenance"]["encoders"]
    assert (encoder["encoder"], encoder["pretrained"]) == ("deit_tiny", False)
    assert encoder["weights"].startswith("random")


def test_cli_runs_a_training_study_nested_under_its_parent_run_with_validation_metrics(
    tmp_path, capsys, sample_data
):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    argv = [
        "study",
        str(EXPERIMENTS / "train_johnson.yaml"),
        "--profile",
        "smoke",
        "--data",
        str(sample_data),
        "--out",
        str(tmp_path / "r"),
        "--storage",
        storage,
        "--tracking-uri",
        uri,
        "--workers",
        "1",
        "--fresh",
        "--backbone",
        "auto",
    ]
    assert cli_main(argv) == 0
    said = capsys.readouterr().out
    assert "backbone auto -> efficientnet_lite0 (kept: a johnson training study" in said
    summary = json.loads((tmp_path / "r" / "train_johnson" / "summary.json").read_text())
    assert summary["states"] == {"COMPLETE": 2}
    client = MlflowClient(uri)
    parent = summary["mlflow"]["parent_run_id"]
    assert client.get_run(parent).data.params["method"] == "johnson"
    exp = client.get_experiment_by_name("study-train_johnson")
    assert exp is not None
    children = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    assert sorted(int(r.data.tags["nst.trial"]) for r in children) == [0, 1]
    study = optuna.load_study(study_name="train_johnson", storage=storage)
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {
        r.info.run_id for r in children
    }
    for run in children:
        tags = run.data.tags
        assert (tags["nst.study"], tags["nst.kind"], tags["nst.method"]) == (
            "train_johnson",
            "train",
            "johnson",
        )
        assert tags["nst.judge"] == "efficientnet_lite2" and run.info.status == "FINISHED"
        assert {
            "val/ssim",
            "val/style_gram_dist",
            "val/loss/total",
            "objective/ssim",
            "loss/total",
            "final/total",
        } <= set(run.data.metrics)
        # the validation metric per validation (2 in smoke), the training loss per step (4)
        assert [m.step for m in client.get_metric_history(run.info.run_id, "val/ssim")] == [2, 4]
        assert len(client.get_metric_history(run.info.run_id, "loss/total")) == 4
        assert not [a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")]


@pytest.mark.slow
@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_worker_processes_share_a_training_study(tmp_path, storage, sample_data):
    spec = load_experiment(EXPERIMENTS / "train_johnson.yaml").with_profile("smoke", trials=4)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    if storage == "postgres":
        pytest.importorskip("psycopg")
        try:
            import psycopg

            psycopg.connect(POSTGRES, connect_timeout=2).close()
        except Exception:
            pytest.skip("no PostgreSQL on 127.0.0.1:5432")
        url, spec = POSTGRES, replace(spec, name=f"train_workers_{uuid.uuid4().hex[:8]}")
    try:
        out = run_study(
            spec,
            StudyOptions(out=tmp_path / "r", storage=url, track=False, workers=2, data=sample_data),
        )
        study = optuna.load_study(study_name=spec.name, storage=url)
        assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
        assert all(t.state.name == "COMPLETE" for t in study.trials)
        assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both processes ran
        table = rows(out / "trials.csv")
        assert len(table) == 4 and all(r["metric_ssim"] for r in table)
        assert all((out / i).is_file() for t in study.trials for i in t.user_attrs["images"])
    finally:
        if storage == "postgres":
            optuna.delete_study(study_name=spec.name, storage=url)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_killed_worker_mid_training_is_retried_and_its_leftovers_cleaned(
    tmp_path, monkeypatch, sample_data
):
    spec_file = tmp_path / "kill.yaml"
    d = {
        **LR_STUDY,
        "name": "train_kill",
        "pruner": "none",
        "profiles": {"smoke": {"fixed": {"steps": 400, "checkpoint_every": 50}}},
    }
    spec_file.write_text(yaml.safe_dump(d))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    out = tmp_path / "r"
    env = {**os.environ, "NST_HEARTBEAT_S": "1", "NST_GRACE_S": "3", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "nst",
        "study",
        str(spec_file),
        "--profile",
        "smoke",
        "--trials",
        "2",
        "--storage",
        url,
        "--out",
        str(out),
        "--no-track",
        "--data",
        str(sample_data),
    ]
    a = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((out / "train_kill" / "trials").glob("*/checkpoint.pt")):
            assert time.monotonic() < deadline and a.poll() is None, "no checkpoint written"
            time.sleep(0.2)
        a.send_signal(signal.SIGKILL)
        a.wait()
    finally:
        if a.poll() is None:
            a.kill()
    time.sleep(4)  # past the grace period: the trial is stale for the next worker
    monkeypatch.setenv("NST_HEARTBEAT_S", "1")
    monkeypatch.setenv("NST_GRACE_S", "3")
    spec = load_experiment(spec_file).with_profile("smoke", trials=2)
    spec = replace(spec, fixed={**spec.fixed, "steps": 8})  # the retry need not be long
    run_study(spec, StudyOptions(out=out, storage=url, track=False, data=sample_data))
    trials = optuna.load_study(study_name="train_kill", storage=url).trials
    killed = [t for t in trials if t.state.name == "FAIL"]
    assert len(killed) == 1
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retry) == 1 and retry[0].state.name == "COMPLETE"
    assert retry[0].params == killed[0].params
    assert retry[0].user_attrs["retry_reason"].startswith("worker lost: no heartbeat")
    assert not list((out / "train_kill" / "trials").glob("*/checkpoint.pt"))  # cleaned
