"""The judge is none of the networks a result depended on, and says when it shares their family
(nst.metrics.features)."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest
import yaml
from helpers import SPEC, make_images

from nst import NstError
from nst.cli import main
from nst.metrics import Evaluator, used_networks
from nst.metrics.features import held_out_name, shared_family
from nst.train.config import TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_an_adain_whose_encoder_is_lite2_is_not_judged_by_lite2() -> None:
    config = TrainConfig(method="adain", encoder="efficientnet_lite2", encoder_layer="stage1")
    assert used_networks(config) == ("efficientnet_lite2",)  # its loss network is its encoder
    judge = Evaluator(used_networks(config))
    assert judge.network.name == "efficientnet_lite0"
    assert judge.held_out["excluded"] == "efficientnet_lite2"
    # a stytr depends on its ViT encoder and its loss network: both are excluded
    stytr = TrainConfig(method="stytr", encoder="deit_tiny", backbone="efficientnet_lite2")
    assert used_networks(stytr) == ("deit_tiny", "efficientnet_lite2")
    assert held_out_name(used_networks(stytr)) == "efficientnet_lite0"


def test_the_family_note_appears_when_judge_and_method_share_a_family() -> None:
    shared = Evaluator(["efficientnet_lite0"])
    assert shared.held_out["shared_family"] == "efficientnet"
    import torch

    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    notes = shared.evaluate(x, x, x).notes
    (note,) = [n for n in notes if "family" in n]
    assert "efficientnet_lite2" in note and "efficientnet_lite0" in note and "ssim" in note
    # a VGG run judged by a Lite: another family, no note
    assert shared_family("efficientnet_lite2", ["vgg19"]) == ""
    assert not any("family" in n for n in Evaluator(["vgg19"]).evaluate(x, x, x).notes)


def test_no_judge_left_is_one_line() -> None:
    lites = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    with pytest.raises(NstError) as err:
        held_out_name(lites)
    assert "\n" not in str(err.value) and "no held-out network is left" in str(err.value)
    assert "use judge vgg" in str(err.value)


def test_the_comparison_judges_every_method_by_a_network_none_of_them_used(
    tmp_path: Path,
) -> None:
    """adain's encoder is Lite2 here, the others use Lite0: the judge is Lite1, named on every
    row, per method with the family it shares, and in MLflow."""
    from mlflow import MlflowClient

    data = tmp_path / "data"
    make_images(data / "content", 3, seed=0)
    make_images(data / "style", 3, seed=1, stripes=True)
    spec = yaml.safe_load(SPEC.read_text())
    smoke = spec["profiles"]["smoke"]
    smoke["methods"]["adain"]["encoder"] = "efficientnet_lite2"
    smoke["leave_out"] = {"stytr": "not needed here"}
    path = tmp_path / "methods.yaml"
    path.write_text(yaml.safe_dump(spec))
    out, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert (
            main(
                [
                    "methods",
                    str(path),
                    "--profile",
                    "smoke",
                    "--data",
                    str(data),
                    "--out",
                    str(out),
                    "--tracking-uri",
                    uri,
                    "--quiet",
                ]
            )
            == 0
        )
    with (out / "methods" / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["judge"] for r in rows} == {"efficientnet_lite1"}
    summary = json.loads((out / "methods" / "summary.json").read_text())
    assert summary["judge"]["excluded"] == "efficientnet_lite0,efficientnet_lite2"
    assert summary["judge"]["shared_family"] == "efficientnet"
    adain = summary["methods"]["adain"]["judge"]
    assert adain == {
        "backbone": "efficientnet_lite1",
        "depended_on": ["efficientnet_lite2"],
        "shared_family": "efficientnet",
    }
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("methods")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert runs["adain"].data.tags["nst.judge"] == "efficientnet_lite1"
    assert runs["adain"].data.tags["nst.judge.shared_family"] == "efficientnet"
    assert runs["methods-smoke"].data.tags["nst.judge.shared_family"] == "efficientnet"
