"""`nst study --backbone auto|NAME` (params.yaml study.backbone) and the record of the networks:
the rule of `auto`, which specs it leaves alone, and the backbone and judge in summary.json,
MLflow and the DVC stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from nst import NstError
from nst.backbones.auto import FALLBACK, resolve_auto
from nst.cli import main as cli_main
from nst.study.backbone import choose_backbone, judge_tags
from nst.study.space import suggest
from nst.study.spec import load_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"


def spec_of(name: str):  # type: ignore[no-untyped-def]
    return load_experiment(EXPERIMENTS / f"{name}.yaml").with_profile("smoke")


def config_of(spec, values: dict[str, object]):  # type: ignore[no-untyped-def]
    return suggest(optuna.trial.FixedTrial(values), spec)  # type: ignore[arg-type]


def test_auto_is_vgg19_when_its_imagenet_file_exists_else_efficientnet_lite0(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "vgg19-dcbb9e9d.pth"
    assert resolve_auto(missing) == ("efficientnet_lite0", "no ImageNet vgg19 file")
    missing.write_bytes(b"not even a state dict: auto only checks that the file exists")
    assert resolve_auto(missing) == ("vgg19", f"ImageNet vgg19 file {missing}")


def test_auto_looks_where_weights_imagenet_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default path is torchvision's cache under $TORCH_HOME, as --weights imagenet reads it."""
    from nst.backbones.vgg import imagenet_cache_file

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert resolve_auto()[0] == "efficientnet_lite0"
    path = imagenet_cache_file("vgg19")
    assert path == tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"dummy")
    assert resolve_auto()[0] == "vgg19"


def test_auto_sets_the_backbone_of_a_study_that_does_not_search_it_with_its_preset(
    tmp_path: Path,
) -> None:
    spec, choice = choose_backbone(spec_of("loss_weights"), "auto", tmp_path / "absent.pth")
    assert spec.fixed["backbone"] == "efficientnet_lite0"
    assert choice.text == "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"
    config = config_of(spec, {"style_ratio": 100.0, "tv_ratio": 0.01})
    assert (config.backbone, config.content_layers) == ("efficientnet_lite0", ("stage3",))
    assert config.style_layers[0] == "stem" and (config.size, config.steps) == (32, 5)
    # an explicit name works alike, with that backbone's preset
    spec, choice = choose_backbone(spec_of("optimizers"), "deit_small")
    assert choice.text == "deit_small -> deit_small (given)"
    config = config_of(spec, {"optimizer": "adam", "lr": 0.1, "lr_schedule": "constant"})
    assert (config.backbone, config.content_layers) == ("deit_small", ("block8",))


def test_auto_leaves_alone_a_study_that_searches_the_backbone_or_names_layers(
    tmp_path: Path,
) -> None:
    before = spec_of("backbones")
    spec, choice = choose_backbone(before, "auto", tmp_path / "absent.pth")
    assert spec == before and choice.backbone == ""
    assert choice.text == (
        "auto -> searched (the spec searches backbone: vgg19, deit_small, efficientnet_lite0)"
    )
    layers = spec_of("layers")
    spec, choice = choose_backbone(layers, "auto", tmp_path / "absent.pth")
    assert spec == layers and choice.backbone == "efficientnet_lite0"
    assert choice.text == (
        "auto -> efficientnet_lite0 (kept: layers.yaml names content_layers, style_layers of "
        "efficientnet_lite0)"
    )
    with pytest.raises(
        NstError, match="names content_layers, style_layers of efficientnet_lite0; --backbone"
    ):
        choose_backbone(layers, "vgg19")
    with pytest.raises(NstError, match="--backbone resnet50: unknown; use auto or one of"):
        choose_backbone(spec_of("init"), "resnet50")
    # without --backbone: the spec's own, recorded as such
    assert choose_backbone(spec_of("init"), None)[1].text == "spec -> vgg19 (the spec's own)"


def test_judge_tags_name_the_network_weights_and_hash() -> None:
    held = {
        "backbone": "efficientnet_lite2",
        "weights": "imagenet:f.pth",
        "sha256": "ab" * 32,
        "pretrained": "true",
        "judge": "efficientnet",
    }
    assert judge_tags(held) == {
        "nst.judge": "efficientnet_lite2",
        "nst.judge.weights": "imagenet:f.pth",
        "nst.judge.sha256": "ab" * 32,
        "nst.judge.pretrained": "true",
        "nst.judge.kind": "efficientnet",
    }


def test_cli_backbone_auto_is_used_and_recorded_in_summary_and_mlflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no ImageNet vgg19 file here
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [
        "study",
        str(EXPERIMENTS / "loss_weights.yaml"),
        "--profile",
        "smoke",
        "--trials",
        "1",
        "--backbone",
        "auto",
        "--out",
        str(tmp_path / "results"),
        "--storage",
        f"sqlite:///{tmp_path / 'optuna.db'}",
        "--tracking-uri",
        uri,
    ]
    assert cli_main(args) == 0
    rule = "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"
    assert f"study loss_weights: backbone {rule}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "results" / "loss_weights" / "summary.json").read_text())
    assert summary["backbone"] == {
        "requested": "auto",
        "backbone": FALLBACK,
        "reason": "no ImageNet vgg19 file",
        "text": rule,
    }
    p = summary["provenance"]
    [arm] = p["backbones"]
    assert arm["backbone"] == FALLBACK and arm["pretrained"] is True and arm["trials"] == 1
    assert arm["weights"].startswith("imagenet:efficientnet-lite0-") and not p["random_weights"]
    [judge] = p["judges"]
    assert judge["backbone"] == "efficientnet_lite2" and judge["pretrained"] is True
    assert judge["judge"] == "efficientnet" and len(judge["sha256"]) == 64
    assert p["judge_pretrained"] is True
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(summary["mlflow"]["parent_run_id"]).data
    assert parent.params["backbone"] == FALLBACK and parent.params["fixed.backbone"] == FALLBACK
    assert parent.tags["nst.backbone"] == FALLBACK and parent.tags["nst.backbone.rule"] == rule
    assert parent.tags["nst.judge"] == "efficientnet_lite2"
    assert parent.tags["nst.judge.sha256"] == judge["sha256"]
    assert parent.tags["nst.judge.pretrained"] == "true"
    experiment = client.get_experiment_by_name(summary["mlflow"]["experiment"])
    [trial] = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{summary['mlflow']['parent_run_id']}'",
    )
    assert trial.data.tags["nst.judge"] == "efficientnet_lite2"
    assert trial.data.tags["nst.judge.weights"] == judge["weights"]
    assert trial.data.tags["nst.judge.sha256"] == judge["sha256"]


def test_a_study_of_loss_terms_records_that_no_judge_scored_it(tmp_path: Path) -> None:
    from nst.study.objective import StudyOptions
    from nst.study.runner import run_study

    spec, choice = choose_backbone(spec_of("optimizers"), "efficientnet_lite0")
    opts = StudyOptions(
        out=tmp_path, storage=f"sqlite:///{tmp_path / 'o.db'}", track=False, backbone=choice
    )
    summary = json.loads((run_study(spec, opts) / "summary.json").read_text())
    assert summary["backbone"]["text"] == "efficientnet_lite0 -> efficientnet_lite0 (given)"
    assert (
        summary["provenance"]["judges"] == [] and summary["provenance"]["judge_pretrained"] is None
    )


# ------------------------------------------------------------------------------ DVC


def test_params_yaml_sets_backbone_auto_and_the_study_stage_passes_it() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["study"]["backbone"] == "auto"
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["study"]["do"]["cmd"]
    assert "--backbone ${study.backbone}" in cmd


def test_dvc_interpolates_study_backbone_into_each_study_command(tmp_path: Path) -> None:
    """In a temporary git+DVC repo: `dvc repro --dry` shows `--backbone auto`, and a changed
    params.yaml value (`-S study.backbone=...` does the same) reaches the command."""
    repo = tmp_path / "repo"
    (repo / "experiments").mkdir(parents=True)
    (repo / "nst").mkdir()
    (repo / "nst" / "placeholder.py").write_text("")  # the stage depends on nst/ and the lock
    (repo / "data").mkdir()
    (repo / "data" / "lock.json").write_text("{}")
    (repo / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["experiments"] = ["loss_weights"]
    (repo / "experiments" / "loss_weights.yaml").write_text("name: loss_weights\n")

    def dry(backbone: str) -> str:
        params["study"]["backbone"] = backbone
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "dvc", "repro", "--dry", "-s", "study@loss_weights"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "-q"],
        cwd=repo,
        check=True,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert "nst study experiments/loss_weights.yaml" in dry("auto")
    assert "--backbone auto" in dry("auto")
    assert "--backbone efficientnet_lite0" in dry("efficientnet_lite0")
