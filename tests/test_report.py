"""`nst report`: pages, sections, provenance, links, bad input, and the pages in headless Chromium."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from cdp import Chromium, find_chromium
from fake_study import fake_study, three_studies
from PIL import Image

from nst import NstError
from nst.cli import main
from nst.report.build import build_report
from nst.report.data import mean_ci, pareto_mask
from nst.report.intervals import interval

BANNER = 'id="random-weights-banner"'


#: a real two-objective study comparing VGG-19 and DeiT-tiny: smoke profile (32 px, 5 steps,
#: one pair), random weights, a grid over the backbone so both backbones run in 2 trials
BACKBONES = {
    "name": "backbones",
    "description": "VGG-19 vs DeiT-tiny, the report's real test study",
    "fixed": {"weights": "random"},
    "search": {
        "backbone": {
            "type": "categorical",
            "choices": ["vgg19", "deit_tiny"],
            "presets": {
                "deit_tiny": {"content_layers": ["block8"], "style_layers": ["block2", "block5"]}
            },
        }
    },
    "objectives": [
        {"metric": "ssim", "direction": "maximize"},
        {"metric": "style_gram_dist", "direction": "minimize"},
    ],
    "sampler": "grid",
}


@pytest.fixture(scope="module")
def real_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of a small real study run through nst.study's Python API, tracked in a
    temporary MLflow sqlite store, with an Optuna sqlite storage."""
    from nst.study.objective import StudyOptions
    from nst.study.runner import run_study
    from nst.study.spec import parse_experiment

    tmp = tmp_path_factory.mktemp("real")
    spec = parse_experiment(BACKBONES).with_profile("smoke", trials=2)
    options = StudyOptions(
        out=tmp / "results",
        storage=f"sqlite:///{tmp / 'optuna.db'}",
        tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
    )
    run_study(spec, options)
    build_report(
        tmp / "results",
        tmp / "reports",
        reconstruction_steps=0,
        optuna_dashboard_url="http://127.0.0.1:8080/dashboard/studies/{study_id}",
    )
    return tmp / "reports"


@pytest.fixture(scope="module")
def fake_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of three contract-conforming studies (backbones, optimizers, init)."""
    tmp = tmp_path_factory.mktemp("report")
    build_report(
        three_studies(tmp), tmp / "reports", reconstruction_size=32, reconstruction_steps=2
    )
    return tmp / "reports"


def img_sources(html: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', html)


def test_report_of_a_real_study(real_report: Path) -> None:
    import mlflow

    results = real_report.parent / "results" / "backbones"
    trials = pd.read_csv(results / "trials.csv", dtype={"mlflow_run_id": str})
    assert sorted(trials["params_backbone"]) == ["deit_tiny", "vgg19"]
    page = (real_report / "backbones.html").read_text()
    # every trial links to its own run in the MLflow UI, experiment id as the store knows it
    client = mlflow.MlflowClient(f"sqlite:///{real_report.parent / 'mlflow.db'}")
    for run_id in trials["mlflow_run_id"]:
        experiment_id = client.get_run(run_id).info.experiment_id
        # the model-development view of MLflow 3's UI, not its GenAI default
        link = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}"
        assert f'href="{link}?workflowType=machine_learning"' in page
    assert 'href="http://127.0.0.1:8080/dashboard/studies/1"' in page
    summary = json.loads((results / "summary.json").read_text())
    assert summary["provenance"]["git_commit"] in page and "dvc repro study@backbones" in page
    assert BANNER in page  # the study ran with random weights
    for title in (
        "Best trials",
        "Pareto front",
        "Parameter importances",
        "Optimisation history",
        "Loss curves",
        "Parameter slices",
        "All trials",
        "Provenance and reproduction",
    ):
        assert f"<h2>{title}</h2>" in page
    index = (real_report / "index.html").read_text()
    assert "<h2>Backbones: VGG vs DeiT vs EfficientNet (study backbones)</h2>" in index
    vgg = trials.loc[trials["params_backbone"] == "vgg19", "ssim"].iloc[0]
    assert f"<td>{vgg:.4g} (n=1)</td>" in index  # one trial per backbone: a mean, no interval
    assert "Not available: no study searched <code>optimizer</code> with 2 or more values." in index
    # no data folder: the study ran on the embedded sample, and the report says so
    assert summary["provenance"]["data"]["source"] == "embedded" and summary["elapsed_s"] > 0
    assert "the offline embedded sample (<code>source: embedded</code> in the data lock" in page
    assert "Data: study backbones used the offline embedded sample" in index
    # the judge that scored the trials: pretrained EfficientNet-Lite2, named with its sha256
    judge = summary["provenance"]["judges"]
    assert [j["backbone"] for j in judge] == ["efficientnet_lite2"] and judge[0]["pretrained"]
    assert summary["provenance"]["judge_pretrained"] is True and judge[0]["sha256"] in page
    assert "The judge was pretrained (<code>efficientnet_lite2</code>" in page
    arms = {b["backbone"]: b["pretrained"] for b in summary["provenance"]["backbones"]}
    assert arms == {"deit_tiny": False, "vgg19": False}  # weights: random, fixed by the spec


def test_writes_index_readme_and_a_page_per_study(fake_report: Path) -> None:
    for name in ("index.html", "README.md"):
        assert (fake_report / name).is_file()
    for study in ("backbones", "optimizers", "init"):
        assert (fake_report / f"{study}.html").is_file()
        assert (fake_report / f"{study}.md").is_file()
    assert not list(fake_report.rglob(".*.tmp")), "atomic writes leave no temporary files"
    umask = os.umask(0)
    os.umask(umask)
    mode = (fake_report / "index.html").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, "the report is as readable as any file the user creates"


def test_html_is_self_contained(fake_report: Path) -> None:
    for page in fake_report.glob("*.html"):
        html = page.read_text()
        sources = img_sources(html)
        assert sources and all(s.startswith("data:image/png;base64,") for s in sources), page
        assert "<script" not in html and "stylesheet" not in html and "@import" not in html
        for href in re.findall(r'href="([^"#:]+\.html)"', html):
            assert (fake_report / href).is_file(), f"{page.name} links to missing {href}"


def test_markdown_references_existing_pngs_and_pages(fake_report: Path) -> None:
    for page in fake_report.glob("*.md"):
        md = page.read_text()
        pngs = re.findall(r"!\[[^\]]*\]\((assets/[^)]+\.png)\)", md)
        assert pngs, page
        for png in pngs:
            with Image.open(fake_report / png) as img:
                assert img.format == "PNG" and img.width > 100
        for link in re.findall(r"\]\(([\w-]+\.md)\)", md):
            assert (fake_report / link).is_file(), f"{page.name} links to missing {link}"
    readme = (fake_report / "README.md").read_text()
    assert "## Backbones: VGG vs DeiT" in readme and "⚠ Random weights" in readme


#: the HTML a Markdown page may render to; any other tag is text Markdown took for HTML
MARKDOWN_TAGS = {
    "h1",
    "h2",
    "p",
    "em",
    "strong",
    "code",
    "pre",
    "a",
    "img",
    "blockquote",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "br",
}


@pytest.mark.parametrize("which", ["fake_report", "real_report"])
def test_markdown_pages_render_their_text_literally(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Rendered by a CommonMark renderer (with tables, raw HTML on, as GitHub's), every page
    shows its text: "imagenet:<file> or random:seed=<s>" stays text, where <file> used to
    vanish as a tag and <s> strike through the rest of the page."""
    from markdown_it import MarkdownIt

    render = MarkdownIt("commonmark").enable("table").render
    report: Path = request.getfixturevalue(which)
    seen = ""
    for page in report.glob("*.md"):
        html = render(page.read_text())
        tags = set(re.findall(r"<([a-z][a-z0-9]*)[\s>/]", html))
        assert tags <= MARKDOWN_TAGS, f"{page.name}: {sorted(tags - MARKDOWN_TAGS)}"
        seen += html
    assert "imagenet:&lt;file&gt; or random:seed=&lt;s&gt;" in seen


def test_study_page_sections(fake_report: Path) -> None:
    html = (fake_report / "backbones.html").read_text()
    for title in (
        "Best trials",
        "Pareto front",
        "Parameter importances",
        "Optimisation history",
        "Loss curves",
        "Parameter slices",
        "All trials",
        "Provenance and reproduction",
    ):
        assert f"<h2>{title}</h2>" in html
    assert "Not available" not in html  # every section of a complete study has its data
    # every trial links to its MLflow run through the default URL template
    for t in range(6):
        run = f"http://127.0.0.1:5000/#/experiments/7/runs/{t + 1:032x}"
        assert f'href="{run}?workflowType=machine_learning"' in html
    assert "0123456789abcdef0123456789abcdef01234567" in html and "f" * 64 in html
    assert "dvc repro study@backbones" in html
    assert "dvc exp run -S profile=smoke -S study.trials=6" in html
    assert "nst study experiments/backbones.yaml --profile smoke --out results/ --trials 6" in html
    # the optimizers study has one objective: no Pareto front, said in one line
    single = (fake_report / "optimizers.html").read_text()
    assert "Not available: single objective (total_loss), so no Pareto front." in single


def test_backbone_table_shows_mean_and_95_ci(fake_report: Path) -> None:
    trials = pd.read_csv(fake_report.parent / "results" / "backbones" / "trials.csv")
    done = trials[(trials["state"] == "COMPLETE") & (trials["params_backbone"] == "vgg19")]
    span = interval(done["ssim"], "ssim")
    assert span.n == 3 and span.kind == "ci" and -1 <= span.low < span.mean < span.high <= 1
    index = (fake_report / "index.html").read_text()
    assert f"{span.mean:.4g} [{span.low:.4g}, {span.high:.4g}] (n=3)" in index
    for title in (
        "Backbones: VGG vs DeiT vs EfficientNet (study backbones)",
        "Optimisers (study optimizers)",
        "Initialisation (study init)",
        "Content x style grid",
        "Layer-by-layer reconstruction",
    ):
        assert f"<h2>{title}</h2>" in index
    # offline the reconstructions run on the pretrained Lite0 (auto), and say why not on VGG19
    from nst.backbones.auto import resolve_auto

    auto, _ = resolve_auto()
    assert "peak memory" in index and f"{auto}: photo0.png reconstructed from one layer" in index
    if auto != "vgg19":  # a random network is never reconstructed: the note names each one
        assert "Not shown for vgg19, deit_" in index and "no ImageNet weights here" in index


def test_same_results_give_the_same_plots(tmp_path: Path) -> None:
    """No random jitter or bootstrap without a seed: DVC sees no change when nothing changed."""
    results = tmp_path / "results"
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    fake_study(results, tmp_path / "data", "init", {"init": ["content", "noise"]}, both)
    for out in ("first", "second"):
        build_report(results, tmp_path / out, reconstruction_size=32, reconstruction_steps=2)
    first = {p.name: p.read_bytes() for p in (tmp_path / "first" / "assets").glob("*.png")}
    second = {p.name: p.read_bytes() for p in (tmp_path / "second" / "assets").glob("*.png")}
    assert first.keys() == second.keys() and len(first) >= 12  # bootstrap CIs, swarms, grids
    assert [name for name in first if first[name] != second[name]] == []


def test_statistics() -> None:
    # minimise both: (1, 3) and (2, 1) are the front, (3, 3) is dominated by both
    values = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 3.0]}).to_numpy()
    assert pareto_mask(values, ["minimize", "minimize"]).tolist() == [True, True, False]
    assert pareto_mask(values, ["maximize", "maximize"]).tolist() == [False, False, True]
    mean, low, high, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and low == pytest.approx(2 - 4.302653 / 3**0.5, rel=1e-5)
    assert mean_ci([5.0])[1] != mean_ci([5.0])[1]  # NaN: no interval from one value


def test_missing_data_degrades_to_one_line_notes(tmp_path: Path) -> None:
    results = tmp_path / "results"
    root = fake_study(
        results,
        tmp_path / "data",
        "lonely",
        {"beta": [1e3, 1e4]},
        [("ssim", "maximize")],
        random_weights=False,
        curves=False,
        importances=False,
    )
    shutil.rmtree(root / "images")
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    page = (tmp_path / "reports" / "lonely.html").read_text()
    assert "Not available: no curves.csv (or it has no loss columns)." in page
    assert "Not available: no importances in summary.json" in page
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "Not available: no study searched <code>backbone</code> with 2 or more values." in index
    assert "Skipped (reconstruction steps = 0)." in index
    assert BANNER not in index and BANNER not in page  # pretrained weights: no banner


def test_banner_on_every_page_with_random_weights(fake_report: Path) -> None:
    pages = sorted(p.name for p in fake_report.glob("*.html"))
    # the index and one page per study: a report without pages cannot pass
    assert pages == ["backbones.html", "index.html", "init.html", "optimizers.html"]
    for name in pages:
        html = (fake_report / name).read_text()
        assert html.count(BANNER) == 1, name  # once, at the top of the page
        assert html.index(BANNER) < html.index("<h2>"), name


def test_the_banner_shows_only_on_pages_whose_networks_had_random_weights(tmp_path: Path) -> None:
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    results = tmp_path / "results"
    fake_study(results, tmp_path / "data", "randomnet", {"beta": [1e3, 1e4]}, both)
    fake_study(
        results, tmp_path / "data", "pretrained", {"beta": [1e3, 1e4]}, both, random_weights=False
    )
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    pages = {p.name: p.read_text() for p in (tmp_path / "reports").glob("*.html")}
    assert BANNER in pages["index.html"] and BANNER in pages["randomnet.html"]
    assert BANNER not in pages["pretrained.html"]
    assert "⚠" not in (tmp_path / "reports" / "pretrained.md").read_text()


def test_optuna_dashboard_link_reads_study_id_from_sqlite(tmp_path: Path) -> None:
    import optuna

    results = tmp_path / "results"
    fake_study(results, tmp_path / "data", "solo", {"lr": [0.1, 1.0]}, [("ssim", "maximize")], n=3)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"  # the storage named in summary.json
    optuna.create_study(study_name="other", storage=storage)
    optuna.create_study(study_name="solo", storage=storage)
    build_report(
        results,
        tmp_path / "reports",
        reconstruction_steps=0,
        optuna_dashboard_url="http://127.0.0.1:8080/dashboard/studies/{study_id}",
    )
    for page in ("solo.html", "index.html"):
        html = (tmp_path / "reports" / page).read_text()
        assert 'href="http://127.0.0.1:8080/dashboard/studies/2"' in html
    # without a dashboard URL, the dashboard column holds the command that opens the study
    build_report(results, tmp_path / "plain", reconstruction_steps=0)
    for page in ("solo.html", "index.html"):
        html = (tmp_path / "plain" / page).read_text()
        assert f"<code>optuna-dashboard {storage}</code>" in html


def test_mlflow_links_read_the_experiment_id_from_the_tracking_store(tmp_path: Path) -> None:
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    client.create_experiment("unrelated")
    run = client.create_run(client.create_experiment("solo"))
    results = tmp_path / "results"
    root = fake_study(
        results, tmp_path / "data", "solo", {"lr": [0.1, 1.0]}, [("ssim", "maximize")], n=3
    )
    trials = pd.read_csv(root / "trials.csv", dtype={"mlflow_run_id": str})
    trials.loc[0, "mlflow_run_id"] = run.info.run_id
    trials.to_csv(root / "trials.csv", index=False)
    summary = json.loads((root / "summary.json").read_text())
    del summary["mlflow"]["experiment_id"]  # as a study without it writes: read from the store
    (root / "summary.json").write_text(json.dumps(summary))
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    html = (tmp_path / "reports" / "solo.html").read_text()
    experiment_id = run.info.experiment_id
    assert (
        f'href="http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run.info.run_id}'
        '?workflowType=machine_learning"' in html
    )
    # a run the store does not know is named, not linked to a wrong page
    assert "runs/00000000000000000000000000000002" not in html


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("{not json", "malformed"),
        ('{"study": "x", "objectives": []}', "'objectives' must be a non-empty list"),
        ('{"objectives": [{"name": "ssim", "direction": "maximize"}]}', "missing the study name"),
        ('["a list"]', "expected a JSON object"),
    ],
)
def test_malformed_summary_is_a_one_line_error(tmp_path: Path, breakage: str, message: str) -> None:
    results = three_studies(tmp_path)
    (results / "init" / "summary.json").write_text(breakage)
    with pytest.raises(NstError, match=re.escape(message)) as err:
        build_report(results, tmp_path / "reports", reconstruction_steps=0)
    assert "\n" not in str(err.value) and "init/summary.json" in str(err.value)


def test_malformed_trials_table_is_a_one_line_error(tmp_path: Path) -> None:
    results = three_studies(tmp_path)
    (results / "init" / "trials.csv").write_text("trial,value\n0,1.0\n")
    with pytest.raises(NstError, match=r"malformed .*init/trials.csv: no column number, state$"):
        build_report(results, tmp_path / "reports", reconstruction_steps=0)


def test_bad_arguments_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(NstError, match="no results folder"):
        build_report(tmp_path / "nothing", tmp_path / "reports")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NstError, match="no study results"):
        build_report(tmp_path / "empty", tmp_path / "reports")
    with pytest.raises(NstError, match="uses run"):
        build_report(tmp_path / "empty", mlflow_url_template="http://x/{run}")
    assert (
        main(["report", "--results", str(tmp_path / "nothing"), "--out", str(tmp_path / "r")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("nst report: error: no results folder") and err.count("\n") == 1


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_pages_follow_the_umask_which_build_report_never_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: int
) -> None:
    """os.umask can only be read by setting it, for every thread of the process at once: the
    report reads it without calling os.umask, and its pages get 0o666 minus the umask."""
    results = tmp_path / "results"
    fake_study(results, tmp_path / "data", "solo", {"lr": [0.1, 1.0]}, [("ssim", "maximize")], n=3)
    calls: list[int] = []
    real_umask = os.umask
    before = real_umask(umask)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or umask)
        written = build_report(results, tmp_path / "reports", reconstruction_steps=0)
        monkeypatch.undo()
    finally:
        real_umask(before)
    assert calls == [], "build_report set the process umask"
    assert written and {p.stat().st_mode & 0o777 for p in written} == {0o666 & ~umask}
    if umask == 0o022:
        assert all(p.stat().st_mode & 0o004 for p in written)  # world-readable


def test_a_broken_import_inside_nst_surfaces_in_the_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """nst.metrics and nst.optimize are part of nst: an ImportError inside them is a bug to
    see, not a reason to leave the metric directions or the reconstructions out quietly."""
    import nst.optimize
    from nst.report import figures
    from nst.report.reconstruct import reconstruction_section

    monkeypatch.setitem(sys.modules, "nst.metrics", None)
    with pytest.raises(ImportError, match="nst.metrics"):
        figures.metric_direction("ssim")
    monkeypatch.setitem(sys.modules, "nst.optimize.reconstruct", None)
    monkeypatch.delattr(nst.optimize, "reconstruct", raising=False)
    with pytest.raises(ImportError, match="nst.optimize.reconstruct"):
        reconstruction_section([], 16, 1)


def test_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    fake_study(results, tmp_path / "data", "solo", {"lr": [0.1, 1.0]}, [("ssim", "maximize")], n=3)
    out = tmp_path / "reports"
    assert (
        main(
            [
                "report",
                "--results",
                str(results),
                "--out",
                str(out),
                "--reconstruction-steps",
                "0",
                "--mlflow-url-template",
                "http://mlflow.example/{experiment}/{run_id}",
            ]
        )
        == 0
    )
    assert "open" in capsys.readouterr().out
    assert (
        'href="http://mlflow.example/solo/00000000000000000000000000000001"'
        in (out / "solo.html").read_text()
    )
    summary = json.loads((results / "solo" / "summary.json").read_text())
    assert summary["study"] == "solo"


chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="chromium not found (install Debian's `chromium`; scripts/setup.sh does when it can)",
)


@pytest.mark.browser
@chromium
@pytest.mark.parametrize("which", ["real_report", "fake_report"])
def test_pages_render_in_headless_chromium(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    reports: Path = request.getfixturevalue(which)
    with Chromium(tmp_path / "profile") as browser:
        for page in sorted(reports.glob("*.html")):
            report = browser.open(page.as_uri())
            assert report.console_errors == [], page.name
            assert report.failed_requests == [] and report.external_requests == [], page.name
            images = report.state["images"]
            assert len(images) == len(img_sources(page.read_text())) > 0
            assert all(i["complete"] and i["width"] > 0 for i in images), page.name
            assert report.state["banner"] and "Random weights" in report.state["banner"]
            assert report.state["width"] <= 1280, f"{page.name} scrolls sideways at 1280 px"
            with Image.open(io.BytesIO(report.screenshot)) as shot:
                assert shot.size == (1280, 2000)


def test_banner_tells_random_backbones_apart_from_a_pretrained_judge(tmp_path: Path) -> None:
    """The banner names the studies that optimised random weights, and says separately
    whether each study's judge was pretrained: it never calls a pretrained judge random."""
    results, data = tmp_path / "results", tmp_path / "data"
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    fake_study(results, data, "randomnet", {"beta": [1e3, 1e4]}, both, random_weights=True)
    fake_study(
        results,
        data,
        "oldjudge",
        {"beta": [1e3, 1e4]},
        both,
        random_weights=False,
        judge_pretrained=False,
    )
    fake_study(
        results,
        data,
        "lossonly",
        {"beta": [1e3, 1e4]},
        [("total", "minimize")],
        random_weights=False,
        judge_pretrained=None,
    )
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    html = (tmp_path / "reports" / "index.html").read_text()
    banner = re.search(r'id="random-weights-banner"[^>]*>(.*?)</div>', html, re.S)
    assert banner is not None
    text = banner.group(1)
    assert "study randomnet optimised seeded random backbone weights" in text
    assert "oldjudge optimised" not in text and "lossonly optimised" not in text
    assert (
        "The judge was pretrained (<code>efficientnet_lite2</code>, ImageNet weights) in "
        "study randomnet" in text
    )
    assert "Judge with random weights: oldjudge (random:seed=0)" in text
    assert "No judge recorded for study lossonly" in text
    # a study's page carries its own part only; the overview names each study's network and judge
    page = (tmp_path / "reports" / "randomnet.html").read_text()
    assert "study randomnet optimised seeded random backbone weights" in page
    assert "oldjudge" not in page.split("<nav>")[0]
    assert (
        "Judge with random weights: oldjudge"
        in (tmp_path / "reports" / "oldjudge.html").read_text()
    )
    assert 'id="random-weights-banner"' not in (tmp_path / "reports" / "lossonly.html").read_text()
    assert "<th>network</th>" in html and "<th>judge</th>" in html
    assert "vgg19 (random)" in html and "vgg16 random:seed=0 (random weights)" in html


def test_a_pretrained_network_and_judge_give_no_banner(tmp_path: Path) -> None:
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    fake_study(
        tmp_path / "results",
        tmp_path / "data",
        "good",
        {"beta": [1e3, 1e4]},
        both,
        random_weights=False,
    )
    build_report(tmp_path / "results", tmp_path / "reports", reconstruction_steps=0)
    assert BANNER not in (tmp_path / "reports" / "index.html").read_text()


def test_reports_which_backbone_arms_ran_pretrained_and_which_judge(fake_report: Path) -> None:
    index = (fake_report / "index.html").read_text()
    section = index[index.index("<h2>Backbones: VGG vs DeiT vs EfficientNet") :]
    section = section[: section.index("<h2>", 5)]
    assert all(f"<th>{h}</th>" in section for h in ("backbone", "weights", "pretrained", "trials"))
    for arm in ("vgg19", "deit_tiny"):
        assert re.search(rf"<td>{arm}</td>\s*<td>random:seed=0</td>\s*<td>no</td>", section), arm
    page = (fake_report / "backbones.html").read_text()
    assert "judge (held-out network)" in page and "9" * 64 in page
    assert "efficientnet_lite2 imagenet:efficientnet-lite2-9656183e.pth (pretrained)" in page


def test_the_content_style_grid_names_study_and_trial_and_skips_non_stylisations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each cell is one study's best-trial result, named under it; the rule (in the caption)
    puts pretrained studies first and skips results that are no stylisation: here study
    alpha (pretrained) returned the photo itself for one pair, so beta's result shows there."""
    from nst.report import compare
    from nst.report.data import load_results

    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    results, data = tmp_path / "results", tmp_path / "data"
    fake_study(results, data, "beta", {"lr": [0.1, 0.2]}, both, random_weights=True)
    fake_study(results, data, "alpha", {"lr": [0.1, 0.2]}, both, random_weights=False)
    from fake_study import noise_png

    for i, image in enumerate(sorted(results.glob("*/images/*.png"))):
        noise_png(
            image, 1000 + i
        )  # every result its own noise (the fixture reuses the photos' seeds)
    for trial in (0, 1):  # alpha's best trials returned the first photo for pair 0
        shutil.copy(
            data / "content" / "photo0.png",
            results / "alpha" / "images" / f"trial{trial:03d}_pair0.png",
        )
    seen: dict[str, object] = {}

    def grid(cells, rows, cols, name, caption, empty="missing", cell_labels=()):  # type: ignore[no-untyped-def]
        seen.update(cells=cells, cols=cols, rows=rows, caption=caption, labels=cell_labels)
        return None

    monkeypatch.setattr(compare, "image_grid", grid)
    section = compare.content_style_section(load_results(results))
    names = {
        (r, c): seen["labels"][i][j]  # type: ignore[index]
        for i, r in enumerate(seen["rows"])
        for j, c in enumerate(seen["cols"])
    }  # type: ignore[arg-type]
    assert names[("photo0", "paint0")] == "beta #0"  # alpha's were the photo itself
    assert names[("photo1", "paint1")] == "alpha #0" and names[("photo0", "paint1")] == "alpha #0"
    assert "pretrained come first" in str(seen["caption"]) and "its study and trial" in str(
        seen["caption"]
    )
    assert "2 best-trial results left out as no stylisation" in section.note
    # when every study returned the photo for a pair, its cell says so (not "not run")
    for trial in (0, 1):
        shutil.copy(
            data / "content" / "photo0.png",
            results / "beta" / "images" / f"trial{trial:03d}_pair0.png",
        )
    compare.content_style_section(load_results(results))
    cells = {
        (r, c): seen["cells"][i][j]  # type: ignore[index]
        for i, r in enumerate(seen["rows"])
        for j, c in enumerate(seen["cols"])
    }  # type: ignore[arg-type]
    assert cells[("photo0", "paint0")] == "no stylisation"
    assert cells[("photo1", "paint0")] is None  # no study ran it: the grid says "not run"
