"""Methods compared (nst.methods): the Stylizer gives what the method gives, the spec's errors
are one line, the smoke profile runs every method end to end, and the report shows it."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import SPEC

from nst import NstError
from nst.cli import main
from nst.config import TransferConfig
from nst.data.split import split_data
from nst.methods.run import run_methods
from nst.methods.spec import load_plan, resolve
from nst.methods.stylizer import Stylizer
from nst.models import get_model
from nst.models.apply import apply_network
from nst.models.io import load_model
from nst.models.pairs import stylize_pairs
from nst.optimize import stylize
from nst.train import TrainConfig, train

METHODS = ("gatys", "strotss", "johnson", "cin", "adain", "stytr")


pytestmark = pytest.mark.usefixtures("one_thread_module")


def first_test_pair(data: Path) -> tuple[str, str]:
    """Stems of the first test photo and test style of data's split (nst.data.split)."""
    split = split_data(data)
    return split.content.test[0].stem, split.style.test[0].stem


def quiet_train(config: TrainConfig, out: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(train(config, out, progress=False).model)


def test_stylizer_gives_exactly_what_gatys_gives(tiny_pair: tuple[torch.Tensor, ...]) -> None:
    content, style = tiny_pair
    config = TransferConfig(
        backbone="efficientnet_lite0", size=32, steps=3, optimizer="adam", lr=0.05, device="cpu"
    )
    done = Stylizer.from_config(config).stylize(content, style)
    direct = stylize(config, content, style).image
    assert torch.equal(done.image, direct)
    assert done.seconds > 0 and done.peak_memory_mb > 0


@pytest.mark.parametrize("method", ["johnson", "adain"])
def test_stylizer_gives_exactly_what_a_trained_network_gives(
    method: str, data: Path, tmp_path: Path, tiny_pair: tuple[torch.Tensor, ...]
) -> None:
    content, style = tiny_pair
    extra: dict[str, Any] = (
        {"width": 8, "style": str(data / "style" / "i0.png")}
        if method == "johnson"
        else {
            "encoder": "efficientnet_lite0",
            "encoder_layer": "stage2",
            "styles": str(data / "style"),
        }
    )
    config = TrainConfig.from_dict(
        dict(
            method=method,
            backbone="efficientnet_lite0",
            data=str(data / "content"),
            size=32,
            steps=2,
            batch_size=1,
            device="cpu",
            checkpoint_every=0,
            sample_every=0,
            log_every=1,
            val_images=1,
            **extra,
        )
    )
    path = quiet_train(config, tmp_path / "run")
    stylizer = Stylizer.from_checkpoint(path)
    done = stylizer.stylize(content, style)
    model, _ = load_model(path)
    if method == "johnson":
        direct = apply_network(model, [content])[0]
        with torch.no_grad():
            raw = model(content)
    else:
        direct = stylize_pairs(model, [content], [style])[0]
        with torch.no_grad():
            raw = model(content, style)
    assert torch.equal(done.image, direct)
    torch.testing.assert_close(done.image, raw.clamp(0, 1), atol=1e-6, rtol=0)
    assert stylizer.method == method and stylizer.networks[0].role == "loss network"
    assert stylizer.networks[0].pretrained  # efficientnet_lite0: ImageNet weights everywhere


def test_the_spec_resolves_every_profile_and_refuses_bad_keys_in_one_line() -> None:
    for profile in ("smoke", "quick", "full"):
        plan = load_plan(SPEC, profile)
        assert plan.names == list(METHODS)
    quick = load_plan(SPEC, "quick")  # make repro: stytr's ViT encoders are random offline
    assert [m.name for m in quick.methods] == ["gatys", "strotss", "johnson", "cin", "adain"]
    assert "flat grey" in quick.left_out["stytr"] and (quick.size, quick.train_size) == (256, 128)
    assert quick.method("johnson").reference == {"steps": 40000, "batch_size": 4}
    smoke = load_plan(SPEC, "smoke")
    assert (smoke.contents, smoke.styles, smoke.size) == (1, 1, 32)
    johnson = smoke.method("johnson").config
    assert johnson["steps"] == 2 and johnson["batch_size"] == 1
    base = {"methods": {"gatys": {"method": "gatys", "config": {"steps": 2}}}}
    cases = [
        ({**base, "pairz": {}}, "unknown key(s) pairz; valid: description, pairs"),
        ({**base, "pairs": {"photos": 2}}, "pairs: unknown key(s) photos; valid: content, styles"),
        ({"methods": {"g": {"method": "gatys", "config": {"stepz": 2}}}}, "stepz"),
        ({"methods": {"g": {"method": "gatys", "config": {"size": 64}}}}, "set by the comparison"),
        (
            {"methods": {"j": {"method": "johnson", "config": {"data": "x"}}}},
            "set by the comparison",
        ),
        (
            {"methods": {"x": {"method": "cyclegan"}}},
            "use one of adain, cin, gatys, johnson, onnx, strotss, stytr",
        ),
        ({**base, "profiles": {"smoke": {"methods": {"nope": {}}}}}, "unknown method(s) nope"),
        ({**base, "pairs": {"content": 0}}, "pairs.content must be a positive integer"),
        ({**base, "profiles": {"smoke": {"leave_out": {"nope": "x"}}}}, "unknown method(s) nope"),
        ({**base, "profiles": {"smoke": {"leave_out": {"gatys": "x"}}}}, "leaves no method"),
        ({**base, "train_size": 0}, "train_size must be a positive integer"),
    ]
    for data, message in cases:
        with pytest.raises(NstError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
            resolve(data, "smoke")
        assert "\n" not in str(err.value)
    with pytest.raises(NstError, match="unknown profile 'huge'"):
        resolve(base, "huge")


@pytest.fixture(scope="module")
def smoke(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("project") / "results"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_methods(SPEC, "smoke", data, out)
    return out


def test_smoke_profile_runs_every_method_end_to_end(
    smoke: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = smoke / "methods"
    with (root / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    summary = json.loads((root / "summary.json").read_text())
    split = summary["split"]
    (photo,), (style,) = split["contents"], split["styles"]
    assert [r["method"] for r in rows] == list(METHODS)
    assert {(r["content"], r["style"]) for r in rows} == {(photo, style)}
    for r in rows:
        assert (root / r["image"]).is_file()
        assert float(r["seconds"]) > 0 and float(r["peak_memory_mb"]) > 0
        assert -1 <= float(r["ssim"]) <= 1 and float(r["style_gram_dist"]) >= 0
    # the test photo is never trained on, the test style never seen by adain's and stytr's
    # training: the training folders hold the train part only
    parts = split["images"]

    def refit(kind: str) -> list[str]:  # train + validation: the settings are selected
        return sorted(i["name"] for part in ("train", "validation") for i in parts[kind][part])

    trained = sorted(p.resolve().name for p in (root / "split" / "train").iterdir())
    assert trained == refit("content") and photo not in trained
    styles = sorted(p.resolve().name for p in (root / "split" / "styles").iterdir())
    assert styles == refit("style") and style not in styles
    assert sorted(p.name for p in (root / "runs").iterdir()) == ["adain", "cin", "johnson", "stytr"]
    stem = Path(style).stem
    assert [p.name for p in (root / "runs" / "johnson").iterdir()] == [stem]  # one per style
    # cin: one network whose bank is the evaluated styles, in their order
    bank = sorted(p.resolve().name for p in (root / "split" / "bank").iterdir())
    assert bank == [style]
    runs = {n: [r["run"] for r in m["runs"]] for n, m in summary["methods"].items()}
    assert runs == {
        "gatys": [],
        "strotss": [],
        "johnson": [f"runs/johnson/{stem}"],
        "cin": ["runs/cin"],
        "adain": ["runs/adain"],
        "stytr": ["runs/stytr"],
    }
    means = json.loads((root / "metrics.json").read_text())
    ssim = {n: v["ssim"] for n, v in means.items()}
    assert ssim == pytest.approx(
        {r["method"]: float(r["ssim"]) for r in rows}, abs=1e-6
    )  # one pair each
    assert summary["judge"]["backbone"] == "efficientnet_lite2"
    assert summary["judge"]["pretrained"] is True  # a JSON boolean, not the string "true"
    assert summary["random_weights_methods"] == ["stytr"]  # deit_tiny random in the smoke profile
    # a second run through the CLI reuses every trained network and rewrites the results
    before = {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("model.pt")}
    assert (
        main(["methods", str(SPEC), "--profile", "smoke", "--data", str(data), "--out", str(smoke)])
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err.count("trained already (same config), reused") == 4
    assert "methods (smoke): 6 results" in captured.out
    assert before == {p: p.stat().st_mtime_ns for p in (root / "runs").rglob("model.pt")}
    assert not list(root.glob(".staging-*")) and not list(root.glob(".old-*"))


def test_methods_section_renders_grid_plot_tables_and_networks(smoke: Path, tmp_path: Path) -> None:
    from nst.report.build import write_pages
    from nst.report.methods import methods_sections
    from nst.report.page import Page

    (section,) = methods_sections(smoke)
    assert [p.name for p in section.plots] == ["methods-grid", "methods-tradeoff", "methods-curves"]
    assert "stytr" in section.note and "random weights" in section.note.lower()
    metric_table, paired, network_table = section.tables[0], section.tables[1], section.tables[2]
    assert metric_table.headers == ["metric", *METHODS]
    # one pair: no interval, the design said once in the caption, not in every cell
    assert "(1 photo x 1 style = 1 pair)" in metric_table.caption
    assert paired.headers[0] == "methods" and len(paired.rows) == 15  # 6 methods, 15 pairs
    assert {str(r[1]) for r in network_table.rows} >= {
        "loss network",
        "encoder",
        "judge (held-out)",
    }
    written = write_pages([Page("index", "t", "", "", [section], [])], tmp_path / "reports")
    html = (tmp_path / "reports" / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 3
    assert "Methods compared" in html and "efficientnet_lite2" in html and "deit_tiny" in html
    assert (tmp_path / "reports" / "assets" / "index-methods-grid.png") in written
    assert methods_sections(tmp_path / "nothing") == []


def test_plan_files_change_only_for_the_method_edited(tmp_path: Path) -> None:
    from nst.methods.training import write_plans

    spec = tmp_path / "methods.yaml"
    spec.write_text(SPEC.read_text())
    first = {p.name: p.read_bytes() for p in write_plans(spec, "smoke", tmp_path / "out")}
    assert sorted(first) == [f"{m}.json" for m in sorted(METHODS)]
    plan = load_plan(tmp_path / "out" / "methods" / "plan" / "adain.json", "smoke")
    assert [m.name for m in plan.methods] == ["adain"] and plan == load_plan(spec, "smoke").only(
        "adain"
    )
    spec.write_text(
        spec.read_text().replace(
            "encoder_layer: stage2, lr: 1.0e-3", "encoder_layer: stage2, lr: 3.0e-3"
        )
    )
    second = {p.name: p.read_bytes() for p in write_plans(spec, "smoke", tmp_path / "out")}
    assert [n for n in first if first[n] != second[n]] == ["adain.json"]
    with pytest.raises(NstError, match="plan of the smoke profile, not quick"):
        load_plan(tmp_path / "out" / "methods" / "plan" / "adain.json", "quick")


def test_a_left_out_method_is_a_stage_that_says_why_and_a_line_in_the_report(
    data: Path, tmp_path: Path
) -> None:
    """A profile's leave_out: the method gets a plan file and a train@ output (DVC's stage
    needs both) that say why, no network and no results; the report prints the reason, and
    the budget table puts each trained method's steps against its paper's."""
    from nst.methods.training import LEFT_OUT, train_methods, write_plans
    from nst.report.methods import methods_sections

    spec = tmp_path / "methods.yaml"
    text = SPEC.read_text().replace(
        "  smoke:",
        "  smoke:\n    leave_out: {stytr: its encoder is random here}\n    train_size: 48",
        1,
    )
    spec.write_text(text)
    out = tmp_path / "results"
    plans = {p.name: p for p in write_plans(spec, "smoke", out)}
    assert sorted(plans) == [f"{m}.json" for m in sorted(METHODS)]
    assert (
        main(
            [
                "methods",
                str(plans["stytr.json"]),
                "--profile",
                "smoke",
                "--step",
                "train",
                "--data",
                str(data),
                "--out",
                str(out),
                "--no-track",
                "--quiet",
            ]
        )
        == 0
    )
    left = out / "methods" / "runs" / "stytr"
    assert [p.name for p in left.iterdir()] == [LEFT_OUT]
    assert "its encoder is random here" in (left / LEFT_OUT).read_text()
    records = train_methods(spec, "smoke", data, out, ["johnson", "stytr"])
    style = first_test_pair(data)[1]
    assert [Path(r["run"]).parts[-2:] for r in records] == [("johnson", style)]
    assert saved_size(out / "methods" / "runs" / "johnson" / style / "model.pt") == 48
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_methods(spec, "smoke", data, out, train=True)
    summary = json.loads((out / "methods" / "summary.json").read_text())
    assert summary["left_out"] == {"stytr": "its encoder is random here"}
    assert "stytr" not in summary["methods"] and summary["methods"]["johnson"]["train_size"] == 48
    (section,) = methods_sections(out)
    assert "stytr is left out of the smoke profile: its encoder is random here" in section.note
    budget = next(t for t in section.tables if t.headers[1] == "steps (of the paper's)")
    johnson = sum(p.numel() for p in get_model("johnson", width=8).parameters())
    cin = sum(p.numel() for p in get_model("cin", width=8, styles=["one"]).parameters())
    adain = get_model("adain", encoder="efficientnet_lite0", layer="stage2", weights="random")
    trained = sum(p.numel() for p in adain.parameters() if p.requires_grad)
    total = sum(p.numel() for p in adain.parameters())
    assert budget.rows == [
        ["johnson", "2 of 40,000", "1 (paper 4)", "48 px", f"{johnson:,} of {johnson:,}"],
        ["cin", "2 of 40,000", "1 (paper 16)", "48 px", f"{cin:,} of {cin:,}"],
        ["adain", "2 of 160,000", "1 (paper 8)", "48 px", f"{trained:,} of {total:,}"],
    ]  # every network's parameters are recorded with its run


def saved_size(model: Path) -> int:
    from nst.methods.training import saved_config

    config = saved_config(model)
    assert config is not None
    return config.size


def test_evaluate_trains_nothing_and_says_which_stage_to_run(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--step evaluate (the DVC methods stage) with a network missing: one line naming the
    train stage, exit 2 (a user error), and the results of an earlier run untouched."""
    out = tmp_path / "results"
    (out / "methods").mkdir(parents=True)
    (out / "methods" / "results.csv").write_text("earlier\n")
    argv = [
        "methods",
        str(SPEC),
        "--profile",
        "smoke",
        "--data",
        str(data),
        "--out",
        str(out),
        "--no-track",
        "--quiet",
    ]
    assert main([*argv, "--step", "evaluate"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"runs/johnson/{first_test_pair(data)[1]} has no model.pt" in err
    assert "dvc repro train@johnson" in err and "Traceback" not in err
    assert (out / "methods" / "results.csv").read_text() == "earlier\n"
    assert not (out / "methods" / "runs").exists()
    assert main([*argv, "--step", "evaluate", "--method", "adain"]) == 2
    assert "add --step train" in capsys.readouterr().err
    assert main([*argv, "--step", "train", "--method", "gatys"]) == 2
    assert "nothing to train" in capsys.readouterr().err


def test_the_comparison_is_tracked_in_mlflow(data: Path, tmp_path: Path) -> None:
    """--step train logs one run per network; --step evaluate a parent run with one nested run
    per method holding its means and images."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "results"
    argv = [
        "methods",
        str(SPEC),
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--step", "train"]) == 0
        assert main([*argv, "--step", "evaluate"]) == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("methods")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {
        f"train-johnson-{first_test_pair(data)[1]}",
        "train-cin",
        "train-adain",
        "train-stytr",
        "methods-smoke",
        *METHODS,
    }
    parent = runs["methods-smoke"]
    assert parent.data.tags["nst.kind"] == "methods" and "stytr" in parent.data.tags["nst.warning"]
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == {
        "results.csv",
        "summary.json",
    }
    with (out / "methods" / "results.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    for name in METHODS:
        child = runs[name]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.metrics["mean/ssim"] == pytest.approx(float(rows[name]["ssim"]), abs=1e-6)
        assert child.data.metrics["pairs"] == 1
        images = client.list_artifacts(child.info.run_id, "images")
        photo, style = first_test_pair(data)
        assert [Path(a.path).name for a in images] == [f"{photo}__{style}.png"]
    assert runs["adain"].data.tags["nst.methods.train_runs"] == runs["train-adain"].info.run_id
    assert runs["train-adain"].data.tags["nst.method"] == "adain"
    assert "loss/total" in runs["train-adain"].data.metrics


def test_a_comparison_file_names_its_folder_experiment_and_report_section(
    data: Path, tmp_path: Path
) -> None:
    """experiments/style_losses.yaml (name: style_losses): the style losses and STROTSS on the
    same pairs, in results/style_losses/, MLflow's experiment style_losses and a report
    section of its own; neither a study nor results/methods/."""
    from mlflow import MlflowClient

    from nst.report.data import comparison_names, load_results
    from nst.report.methods import methods_sections

    spec = SPEC.parent / "style_losses.yaml"
    losses = ["gram", "moments", "sliced_wasserstein", "relaxed_emd", "strotss"]
    for profile in ("smoke", "quick", "full"):
        plan = load_plan(spec, profile)
        assert plan.name == "style_losses" and sorted(plan.names) == sorted(losses)
        assert all(not m.trained for m in plan.methods)
    out, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["methods", str(spec), "--profile", "smoke", "--data", str(data), "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--tracking-uri", uri, "--quiet"]) == 0
    root = out / "style_losses"
    with (root / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["method"] for r in rows] == losses and not (out / "methods").exists()
    assert all((root / r["image"]).is_file() for r in rows)
    summary = json.loads((root / "summary.json").read_text())
    assert summary["methods"]["moments"]["config"]["style_loss"] == "moments"
    assert comparison_names(out) == ["style_losses"] and load_results(out, required=False) == []
    (section,) = methods_sections(out)
    assert section.title == "Methods compared: style_losses"
    assert section.tables[0].headers == ["metric", *losses]
    # its figures are its own: beside results/methods/'s section, no name (an HTML id, a file
    # under reports/assets/) is shared, so neither overwrites the other's
    assert [p.name for p in section.plots] == [
        "methods-style_losses-grid",
        "methods-style_losses-tradeoff",
    ]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("style_losses")
    names = {r.info.run_name for r in client.search_runs([exp.experiment_id])}
    assert names == {"style_losses-smoke", *losses}
    with pytest.raises(NstError, match="name 'a b': letters, digits"):
        resolve({"name": "a b", "methods": {"g": {"method": "gatys"}}}, "smoke")
