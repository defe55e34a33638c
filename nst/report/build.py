"""`build_report`: results/<study>/ and results/methods/ -> reports/ (index.html, README.md,
one page per study).

A page is a list of sections; a section holds plots (nst.report.figures), tables, commands
and, when its data is missing, a one-line note saying so. The same pages are rendered twice
with jinja2 (nst/templates/): HTML with every image embedded as a base64 data URI (the file
opens from disk and makes no request) and Markdown that links PNG files under reports/assets/.
results/methods/ (`nst methods`) adds the "Methods compared" section (nst.report.methods) and
is enough on its own: a results folder without studies gives an index of that section.
A banner tops every page when any run used random instead of pretrained weights; it names the
studies that optimised random weights, the compared methods that ran a random network and,
apart, whether the judges were pretrained (nst.report.networks).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import markupsafe

from nst import NstError, __version__
from nst.imagefiles import atomic_write
from nst.report import figures as figs
from nst.report.data import (
    MethodsResults,
    StudyResults,
    comparison_names,
    load_methods,
    load_results,
    no_results_message,
)
from nst.report.networks import judge_text, networks_text, random_weights_banner
from nst.report.page import (
    DEFAULT_MLFLOW_URL,
    RECONSTRUCTION_SIZE,
    RECONSTRUCTION_STEPS,
    Cell,
    Link,
    Links,
    Page,
    Section,
    Table,
)
from nst.report.study import budget_text


def build_report(
    results_dir: str | Path = "results",
    out_dir: str | Path = "reports",
    *,
    mlflow_url_template: str | None = DEFAULT_MLFLOW_URL,
    optuna_dashboard_url: str | None = None,
    reconstruction_size: int = RECONSTRUCTION_SIZE,
    reconstruction_steps: int = RECONSTRUCTION_STEPS,
) -> list[Path]:
    """Write the report for every study under `results_dir`; returns the files written.
    The layer-by-layer reconstructions are computed at `reconstruction_size` px with
    `reconstruction_steps` steps (0 steps: skip them)."""
    from nst.report.compare import cross_study_sections
    from nst.report.methods import methods_sections
    from nst.report.reconstruct import reconstruction_section
    from nst.report.study import study_sections

    if reconstruction_steps < 0 or reconstruction_size < 16:
        raise NstError(
            f"reconstruction steps must be >= 0 and size >= 16 px, got {reconstruction_steps} "
            f"and {reconstruction_size}"
        )
    links = Links(mlflow_url_template, optuna_dashboard_url)
    studies = load_results(results_dir, required=False)
    methods = load_methods(results_dir)  # results/methods/ (nst methods), when present
    others = [n for n in comparison_names(results_dir) if n != "methods"]  # style_losses, ...
    if not studies and not others and (methods is None or methods.error):
        raise NstError(no_results_message(Path(results_dir), methods.error if methods else ""))
    cross = cross_study_sections(studies) if studies else []  # with none, each would be a note
    cross += methods_sections(results_dir, methods)
    recon_random = False
    if reconstruction_steps > 0:
        recon, recon_random = reconstruction_section(
            studies, reconstruction_size, reconstruction_steps
        )
        cross.append(recon)
    else:
        cross.append(
            Section("Layer-by-layer reconstruction", note="Skipped (reconstruction steps = 0).")
        )
    banner = random_weights_banner(studies, recon_random, methods)
    index_link = Link("overview", "index", page=True)
    pages = [
        Page(
            "index",
            "Neural style transfer: study report",
            banner,
            f"{_contents(studies, methods, others)} from {Path(results_dir)}; generated "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by nst {__version__}.",
            [overview_section(studies, links), *cross],
            [Link(s.name, s.name, page=True) for s in studies],
        )
    ]
    for study in studies:
        intro = str(study.summary.get("description") or "")
        nav = [index_link] + [Link(s.name, s.name, page=True) for s in studies if s is not study]
        # a study's page warns about its own networks only: the index carries the whole banner
        own = random_weights_banner([study])
        pages.append(
            Page(study.name, f"Study {study.name}", own, intro, study_sections(study, links), nav)
        )
    return write_pages(pages, Path(out_dir))


def _contents(
    studies: list[StudyResults], methods: MethodsResults | None, others: list[str]
) -> str:
    """What the report is built from: "2 studies and the methods comparison and the
    comparison style_losses (smoke profile)"."""
    text = f"{len(studies)} {'study' if len(studies) == 1 else 'studies'}"
    named = ([] if methods is None else ["the methods comparison"]) + [
        f"the comparison {n}" for n in others
    ]
    if not named:
        return text
    profile = methods.summary.get("profile") if methods is not None else None
    comparison = " and ".join(named) + (f" ({profile} profile)" if profile else "")
    return (
        f"{text} and {comparison}"
        if studies
        else f"{comparison[0].upper()}{comparison[1:]}, no study,"
    )


def overview_section(studies: list[StudyResults], links: Links) -> Section:
    if not studies:
        return Section(
            "Studies",
            note="No study results (`nst study` writes results/<study>/): "
            "the backbone, optimiser, initialisation and content x style sections "
            "need them; the methods comparison is below.",
        )
    rows: list[list[Cell]] = []
    for s in studies:
        best = []
        for obj in figs.objectives_of(s):
            trial = s.best_by(obj)
            if trial is not None:
                best.append(
                    f"{obj.name} {obj.arrow} {figs.nice(float(trial[obj.name]))} (#{trial['number']})"
                )
        states = s.states
        dash = links.dashboard(s)
        budget = budget_text(s)
        rows.append(
            [
                Link(s.name, s.name, page=True),
                str(s.summary.get("description") or ""),
                (", ".join(f"{k} {v}" for k, v in states.items()) or "–")
                + (f"; budget {budget}" if budget else ""),
                s.data_source or "–",
                "; ".join(best) or "–",
                networks_text(s),
                judge_text(s),
                dash if dash else "–",
            ]
        )
    headers = [
        "study",
        "description",
        "trials",
        "data",
        "best (trial)",
        "network",
        "judge",
        "dashboard",
    ]
    caption = (
        "Every study, its trial states against its budget, where its images came from (the data "
        "lock's source), its best value per objective, the network it optimised (pretrained or "
        "random weights) and the judge that scored it (nst.metrics' held-out network)."
    )
    table = Table(headers, rows, caption)
    embedded = [s.name for s in studies if s.data_source == "embedded"]
    note = (
        f"Data: {_names(embedded, len(studies))} used the offline embedded sample "
        "(`source: embedded` in the data lock), not the COCO/WikiArt images: results are not "
        "comparable with fetched data."
        if embedded
        else ""
    )
    return Section(
        "Studies", note=note, tables=[table], code=["dvc repro   # re-run the whole pipeline"]
    )


def _names(names: list[str], total: int) -> str:
    if len(names) == total and total > 1:
        return f"all {total} studies"
    return ("study " if len(names) == 1 else "studies ") + ", ".join(names)


def inline_code(text: object) -> markupsafe.Markup:
    """HTML of a line whose `backticked` words are code, as Markdown would show them."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped))


#: what Markdown (CommonMark + GitHub tables) would read as markup or HTML, outside code spans
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#~|])")


def markdown_text(text: object) -> str:
    """`text` as Markdown shows it literally, on one line: outside `code` spans every character
    Markdown or HTML would read as markup is backslash-escaped ("imagenet:<file>" would
    otherwise be an HTML tag and vanish, "<s>" strike everything after it); code spans stay
    code, with only `|` escaped (a table cell ends at an unescaped one, even in code)."""
    parts = re.split(r"(`[^`\n]+`)", str(text).replace("\n", " "))
    return "".join(
        p.replace("|", "\\|") if i % 2 else MARKDOWN_SPECIAL.sub(r"\\\1", p)
        for i, p in enumerate(parts)
    )


def write_pages(pages: list[Page], out: Path) -> list[Path]:
    """Render every page to HTML and Markdown, and the Markdown's PNGs; atomic writes."""
    try:
        (out / "assets").mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise NstError(f"cannot create {out}: {err.strerror}") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("nst.report", "templates"),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["md"] = markdown_text
    env.filters["code"] = inline_code
    env.filters["plain"] = lambda text: str(text).replace("`", "")
    env.tests["link"] = lambda cell: isinstance(cell, Link)
    written: list[Path] = []

    def put(path: Path, data: bytes) -> None:
        atomic_write(path, lambda f: f.write(data))  # with open()'s mode: a report is for reading
        written.append(path)

    for page in pages:
        for plot in (p for s in page.sections for p in s.plots):
            put(out / "assets" / f"{page.slug}-{plot.name}.png", plot.png)
        html = env.get_template("page.html.j2").render(page=page)
        put(out / f"{page.slug}.html", html.encode())
        md = env.get_template("page.md.j2").render(page=page)
        put(out / ("README.md" if page.slug == "index" else f"{page.slug}.md"), md.encode())
    for stale in set((out / "assets").glob("*.png")) - set(written):
        stale.unlink(missing_ok=True)  # plots of a study that no longer exists
    return written
