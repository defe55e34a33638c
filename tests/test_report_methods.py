"""The report of the methods comparison (results/methods/, `nst methods`): training curves of
every trained network, the random-weights banner on every page, a report from methods alone,
the networks table (johnson: one network per style), and the page in headless Chromium."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import warnings
from pathlib import Path

import cdp
import numpy as np
import pytest
import yaml
from cdp import Chromium, find_chromium
from fake_study import fake_study
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from nst.cli import main
from nst.report.build import build_report
from nst.report.data import load_methods
from nst.report.methods import methods_sections

SPEC = Path(__file__).resolve().parents[1] / "experiments" / "methods.yaml"
METHODS = ("gatys", "strotss", "johnson", "cin", "adain", "stytr")
BANNER = re.compile(r'id="random-weights-banner"[^>]*>(.*?)</div>', re.S)

#: what the page says about itself: cdp.PAGE_STATE, plus the sections, figures and tables
PAGE_STATE = """(() => {
  const base = BASE;
  const banner = document.getElementById('random-weights-banner');
  const sections = Array.from(document.querySelectorAll('section')).map(s => ({
    title: s.querySelector('h2').innerText,
    figures: Array.from(s.querySelectorAll('figure')).map(f => {
      const img = f.querySelector('img');
      return {id: f.id, complete: img.complete, width: img.naturalWidth,
              shown: img.getBoundingClientRect().width};
    }),
    tables: Array.from(s.querySelectorAll('table')).map(
      t => Array.from(t.querySelectorAll('th')).map(h => h.innerText)),
    text: s.innerText}));
  return Object.assign(base, {sections: sections,
    banner_first: !!banner && document.body.firstElementChild === banner,
    banner_top: banner ? banner.getBoundingClientRect().top : null,
    height: document.documentElement.scrollHeight});
})()""".replace("BASE", cdp.PAGE_STATE.strip())


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def methods_results(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """results/ holding only methods/: the smoke profile over the test sample, with two
    styles so that johnson trains two networks (one per style)."""
    from nst.methods.run import run_methods

    tmp = tmp_path_factory.mktemp("methods")
    spec = yaml.safe_load(SPEC.read_text())
    spec["profiles"]["smoke"]["pairs"] = {"content": 1, "styles": 2}
    (tmp / "methods.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_methods(tmp / "methods.yaml", "smoke", sample_data, tmp / "results")
    return tmp / "results"


@pytest.fixture(scope="module")
def methods_report(methods_results: Path) -> Path:
    out = methods_results.parent / "reports"
    build_report(methods_results, out, reconstruction_steps=0)
    return out


def copy_results(results: Path, to: Path) -> Path:
    shutil.copytree(results, to, symlinks=True)
    return to


def edit_summary(results: Path, **changes: object) -> dict:
    path = results / "methods" / "summary.json"
    summary = json.loads(path.read_text())
    summary.update(changes)
    path.write_text(json.dumps(summary))
    return summary


def xy(line: Line2D) -> tuple[list[float], list[float]]:
    return (
        np.asarray(line.get_xdata(), dtype=float).tolist(),
        np.asarray(line.get_ydata(), dtype=float).tolist(),
    )


def split_styles(results: Path) -> list[str]:
    """Stems of the comparison's test styles, in its order (nst.data.split)."""
    summary = json.loads((results / "methods" / "summary.json").read_text())
    return [Path(s).stem for s in summary["split"]["styles"]]


def legend_texts(ax: Axes) -> set[str]:
    legend = ax.get_legend()
    assert legend is not None, ax.get_title()
    return {t.get_text() for t in legend.get_texts()}


chromium = pytest.mark.skipif(find_chromium() is None, reason="chromium not found")


@pytest.mark.browser
@chromium
def test_methods_report_renders_in_headless_chromium(
    methods_report: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = methods_report / "index.html"
    monkeypatch.setattr(cdp, "PAGE_STATE", PAGE_STATE)
    with Chromium(tmp_path / "profile") as browser:
        report = browser.open(page.as_uri(), height=6600)
    (tmp_path / "methods_report.png").write_bytes(report.screenshot)
    state = report.state
    assert report.console_errors == []
    assert report.failed_requests == [] and report.external_requests == []
    images = state["images"]
    assert len(images) == page.read_text().count('<img src="data:image/png;base64,') == 3
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert state["width"] <= 1280, "the page scrolls sideways at 1280 px"
    assert state["height"] <= 6600, "the screenshot misses the end of the page"
    # the banner tops the page and names the random encoder of the comparison
    assert state["banner_first"] and state["banner_top"] < 40
    assert "Random weights in the methods comparison: stytr (encoder deit_tiny" in state["banner"]
    assert "The judge was pretrained (efficientnet_lite2" in state["banner"]
    (section,) = [s for s in state["sections"] if s["title"] == "Methods compared"]
    figures = {f["id"]: f for f in section["figures"]}
    assert list(figures) == ["fig-methods-grid", "fig-methods-tradeoff", "fig-methods-curves"]
    assert all(f["complete"] and f["width"] > 0 and f["shown"] > 300 for f in figures.values())
    assert ["method", "role", "network", "weights", "pretrained"] in section["tables"]
    assert "No curve for gatys" in section["text"]
    # the paired differences: one row per pair of methods; 1 photo x 2 styles resolves nothing
    (paired,) = [t for t in section["tables"] if t[0] == "methods"]
    assert paired[1:4] == ["ssim ↑", "edge_f1 ↑", "color_hellinger ↓"]
    assert "gatys − johnson" in section["text"]
    assert "not resolved (too few)" in section["text"]
    assert (
        "every method ran on the same test pairs (1 photo x 2 styles = 2 pairs)" in section["text"]
    )
    # the judge is named with the family it shares with the methods' networks
    assert (
        "Judge: efficientnet_lite2, none of the networks the methods depended on" in section["text"]
    )
    assert "of the efficientnet family" in section["text"]
    assert "test pairs\t1 photo x 2 styles = 2 pairs" in section["text"]
    with Image.open(io.BytesIO(report.screenshot)) as shot:
        assert shot.size == (1280, 6600)


def test_training_curves_show_every_trained_network_and_say_gatys_has_none(
    methods_results: Path, rendered: list[Figure]
) -> None:
    (section,) = methods_sections(methods_results)
    assert [p.name for p in section.plots] == ["methods-grid", "methods-tradeoff", "methods-curves"]
    fig = next(
        f
        for f in rendered
        if "total loss of every trained network" in str([a.get_title() for a in f.axes])
    )
    total, *per_method = [a for a in fig.axes if a.get_visible()]
    first, second = split_styles(methods_results)
    assert [line.get_label() for line in total.get_lines()] == [
        f"johnson ({first})",
        f"johnson ({second})",
        "cin",
        "adain",
        "stytr",
    ]
    for line in total.get_lines():  # each line is the run's losses.jsonl, step by step
        steps, values = xy(line)
        assert steps == [1.0, 2.0] and all(y > 0 for y in values)
    adain = json.loads(
        (methods_results / "methods/runs/adain/losses.jsonl").read_text().splitlines()[-1]
    )
    assert xy(total.get_lines()[3])[1][-1] == pytest.approx(adain["total"])
    assert [a.get_title() for a in per_method] == [f"{m}: loss terms" for m in METHODS[2:]]
    assert legend_texts(per_method[3]) == {"content", "style", "identity1", "identity2"}
    assert legend_texts(per_method[0]) == {
        "content",
        "style",
        "tv",
        first,
        second,
    }
    caption = section.plots[2].caption
    assert "No curve for gatys, strotss" in caption and "one network per style" in caption
    assert "Training curve" not in section.note  # every losses.jsonl was read


def test_network_table_lists_each_johnson_network_with_its_checkpoint(
    methods_results: Path,
) -> None:
    (section,) = methods_sections(methods_results)
    (table,) = [t for t in section.tables if t.headers[:2] == ["method", "role"]]
    assert table.headers == ["method", "role", "network", "weights", "pretrained"]
    rows = [[str(c) for c in r] for r in table.rows]
    summary = json.loads((methods_results / "methods" / "summary.json").read_text())
    runs = [(m, r) for m, info in summary["methods"].items() for r in info["runs"]]
    assert len(runs) == 5  # johnson x 2 styles, cin, adain, stytr
    for method, run in runs:
        sha = hashlib.sha256((methods_results / "methods" / run["model"]).read_bytes()).hexdigest()
        row = next(r for r in rows if r[3] == f"{run['model']} sha256 {sha[:12]}")
        style = "every style" if run["style"] == "*" else f"style {run['style']}"
        assert row[:3] == [method, f"trained network, {style}", method]
        assert row[4].startswith("no: 2 training steps, trained here (")
    roles = {(r[0], r[1], r[2], r[4]) for r in rows}
    assert ("stytr", "encoder", "deit_tiny", "no") in roles
    assert ("johnson", "loss network", "efficientnet_lite0", "yes") in roles
    assert ("(all)", "judge (held-out)", "efficientnet_lite2", "yes") in roles
    assert not any(r[0] == "gatys" and r[1].startswith("trained") for r in rows)


def test_a_report_from_methods_alone_builds_through_the_cli(
    methods_results: Path, methods_report: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index = (methods_report / "index.html").read_text()
    assert sorted(p.name for p in methods_report.glob("*.html")) == ["index.html"]
    assert "<h2>Methods compared</h2>" in index and "<h2>Studies</h2>" in index
    assert "No study results" in index and "Backbones: VGG" not in index
    assert "The methods comparison (smoke profile), no study, from" in index
    banner = BANNER.search(index)
    assert banner and "stytr (encoder <code>deit_tiny</code> random:seed=0)" in banner.group(1)
    assert "Random weights in the methods comparison" in (methods_report / "README.md").read_text()
    out = tmp_path / "reports"
    assert (
        main(
            [
                "report",
                "--results",
                str(methods_results),
                "--out",
                str(out),
                "--reconstruction-steps",
                "0",
            ]
        )
        == 0
    )
    assert "index.html" in capsys.readouterr().out
    assert (out / "assets" / "index-methods-curves.png").is_file()


def test_nothing_to_report_is_a_one_line_error(
    methods_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["report", "--results", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nst report: error: no study results in") and err.count("\n") == 1
    assert "`nst study`" in err and "methods/summary.json from `nst methods`" in err
    broken = copy_results(methods_results, tmp_path / "broken")
    (broken / "methods" / "summary.json").write_text("{not json")
    assert main(["report", "--results", str(broken), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "methods is incomplete (" in err and "re-run `nst methods`" in err
    )
    assert not (tmp_path / "r" / "index.html").exists()


def test_a_missing_or_corrupt_losses_jsonl_is_a_note(
    methods_results: Path, tmp_path: Path, rendered: list[Figure]
) -> None:
    results = copy_results(methods_results, tmp_path / "results")
    runs = results / "methods" / "runs"
    (runs / "adain" / "losses.jsonl").write_text('not json\n{"step": 1}\n[1, 2]\n')
    first, second = split_styles(results)
    (runs / "johnson" / first / "losses.jsonl").write_bytes(b"\x00\xff\xfe")
    with (runs / "stytr" / "losses.jsonl").open("a") as f:
        f.write('{"step": 3, "total": \n')  # a line cut short: the good steps still plot
    (section,) = methods_sections(results)
    note = section.note
    assert (
        "Training curve of adain: `results/methods/runs/adain/losses.jsonl` is corrupt "
        "(3 unreadable lines, no step)." in note
    )
    assert (
        f"Training curve of johnson ({first}): `results/methods/runs/johnson/{first}/"
        "losses.jsonl` is corrupt (not UTF-8 text)." in note
    )
    assert "stytr/losses.jsonl` has 1 unreadable of 3 lines (skipped)." in note
    assert "Random weights: stytr" in note  # the section's own line stays
    assert [p.name for p in section.plots][-1] == "methods-curves"
    total = next(f for f in rendered if f.axes and f.axes[0].get_title().startswith("total loss"))
    labels = [line.get_label() for line in total.axes[0].get_lines()]
    assert labels == [f"johnson ({second})", "cin", "stytr"]
    # every losses.jsonl gone: no curves, a note each, and the page still builds
    for path in runs.rglob("losses.jsonl"):
        path.unlink()
    (section,) = methods_sections(results)
    assert "methods-curves" not in [p.name for p in section.plots]
    assert section.note.count("is missing.") == 5
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    assert "is missing." in (tmp_path / "reports" / "index.html").read_text()


def test_banner_names_the_methods_next_to_the_studies(
    methods_results: Path, tmp_path: Path
) -> None:
    results = copy_results(methods_results, tmp_path / "results")
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    fake_study(results, tmp_path / "data", "randomnet", {"beta": [1e3, 1e4]}, both)
    build_report(results, tmp_path / "reports", reconstruction_steps=0)
    banners = {}
    for page in ("index.html", "randomnet.html"):
        html = (tmp_path / "reports" / page).read_text()
        banner = BANNER.search(html)
        assert banner, page
        banners[page] = text = banner.group(1)
        assert "Random weights: study randomnet optimised seeded random backbone weights" in text
    text = banners["index.html"]  # the index warns about everything; a study page about itself
    assert (
        "Random weights in the methods comparison: stytr (encoder <code>deit_tiny</code> "
        "random:seed=0) ran with seeded random weights" in text
    )
    assert "ImageNet weights) in study randomnet and the methods comparison: their " in text
    assert "methods comparison" not in banners["randomnet.html"]
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "1 study and the methods comparison (smoke profile) from" in index
    # a random judge is named apart; every network pretrained and the judge too: no banner
    summary = json.loads((results / "methods" / "summary.json").read_text())
    shutil.rmtree(results / "randomnet")
    judge = {
        **summary["judge"],
        "backbone": "vgg16",
        "weights": "random:seed=0",
        "pretrained": "false",
    }
    edit_summary(results, judge=judge)
    found = load_methods(results)
    from nst.report.networks import random_weights_banner

    text = random_weights_banner([], False, found)
    assert "Judge with random weights: the methods comparison (random:seed=0)" in text
    assert "The judge ran with random weights" in methods_sections(results)[0].note
    for info in summary["methods"].values():
        for n in info["networks"]:
            n["pretrained"] = True
    edit_summary(
        results, methods=summary["methods"], random_weights_methods=[], judge=summary["judge"]
    )
    assert random_weights_banner([], False, load_methods(results)) == ""
    build_report(results, tmp_path / "clean", reconstruction_steps=0)
    assert 'id="random-weights-banner"' not in (tmp_path / "clean" / "index.html").read_text()
    note = methods_sections(results)[0].note  # the judge's line alone
    assert note.startswith("Judge: efficientnet_lite2") and "andom weights" not in note


def test_degenerate_outputs_are_recorded_and_named_instead_of_ranked(
    methods_results: Path, tmp_path: Path, sample_data: Path
) -> None:
    """results.csv records nst.metrics.degenerate of every result against its photo; a method
    whose outputs are flat (or the photo) in at least half its pairs is not ranked: a flat grey
    image wins on ssim, tv and patch_energy."""
    import pandas as pd
    import torch

    from nst.images import load_image
    from nst.metrics.degenerate import degenerate

    results = copy_results(methods_results, tmp_path / "results")
    table = pd.read_csv(results / "methods" / "results.csv", keep_default_na=False)
    size = json.loads((results / "methods" / "summary.json").read_text())["size"]
    for row in table.itertuples():
        result = load_image(results / "methods" / str(row.image))
        photo = load_image(sample_data / "content" / str(row.content), size=size)
        assert row.degenerate == degenerate(result, photo), row.image
    # adain's outputs turned flat grey, as evaluated: recorded near-uniform, with a top ssim
    adain = table["method"] == "adain"
    grey = torch.full((1, 3, 8, 8), 0.5)
    table.loc[adain, "degenerate"] = degenerate(grey, torch.rand(1, 3, 8, 8))
    table.loc[adain, "ssim"] = 0.99
    table.to_csv(results / "methods" / "results.csv", index=False)
    (section,) = methods_sections(results)
    flagged = {}  # method -> its recorded reasons, where they cover at least half its pairs
    for method, mine in table.groupby("method", sort=False):
        bad = mine[mine["degenerate"] != ""]
        if 2 * len(bad) >= len(mine):
            flagged[method] = f"{bad['degenerate'].iloc[0]} in {len(bad)} of {len(mine)} pairs"
    n = int(adain.sum())
    assert flagged["adain"] == f"near-uniform in {n} of {n} pairs"
    assert f"adain (near-uniform in {n} of {n} pairs)" in section.note
    metric = next(t for t in section.tables if t.headers[0] == "metric")
    assert metric.rows[-1] == [
        "degenerate outputs (not ranked)",
        *(flagged.get(m, "none") for m in metric.headers[1:]),
    ]
    paired = next(t for t in section.tables if t.headers[0] == "methods")
    for row in paired.rows:
        a, b = str(row[0]).split(" − ")
        text = " ".join(map(str, row))
        if a in flagged or b in flagged:
            assert text.count("not ranked") == 1 and "better" not in text, text
            for m in {a, b} & set(flagged):
                assert f"{m}'s outputs are {flagged[m]}" in text
        else:
            assert "not ranked" not in text
