"""The documentation: the MkDocs site (mkdocs.yml, docs/) builds with --strict, README.md stays
short and its links land, and the docs say what the code and the experiment files hold: every
`nst` command, every key of experiments/*.yaml and of params.yaml."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import markdown
import pytest
import yaml

from nst.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS = Path(sys.executable).with_name("mkdocs")
README_MAX_LINES = 200
FIGURE = "assets/methods-grid.png"

#: the chapters (docs/<name>.md -> <site>/<name>/index.html) and the API reference pages
CHAPTERS = (
    "transfer",
    "backbones",
    "training",
    "evaluation",
    "methods",
    "studies",
    "data",
    "pipeline",
    "tracking",
    "reports",
    "workers",
    "benchmarks",
    "layout",
    "DESIGN",
)
API_PAGES = {  # page -> a module it must render (its heading id is the module's path)
    "core": "nst.config",
    "backbones": "nst.backbones",
    "metrics": "nst.metrics",
    "data": "nst.data",
    "optimize": "nst.optimize",
    "tracking": "nst.tracking",
    "models": "nst.models",
    "train": "nst.train",
    "methods": "nst.methods",
    "study": "nst.study",
    "report": "nst.report",
}


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def docs_text() -> str:
    return "\n".join(p.read_text() for p in doc_pages())


class _CodeText(HTMLParser):
    """The text inside <code> elements: code spans and code blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.depth += tag == "code"

    def handle_endtag(self, tag: str) -> None:
        self.depth -= tag == "code"

    def handle_data(self, data: str) -> None:
        if self.depth > 0:
            self.parts.append(data)


def code_text(text: str) -> str:
    """What a Markdown text shows as code (spans, fenced and indented blocks), as MkDocs
    parses it: a key is documented where a reader sees it written as one."""
    parser = _CodeText()
    parser.feed(markdown.markdown(text, extensions=["tables", "pymdownx.superfences"]))
    return "\n".join(parser.parts)


def mentions(word: str, text: str) -> bool:
    """`word` in `text` as a whole identifier (`lr` is in `--lr 0.1`, not in `lr_decay`)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])", text) is not None


def keys_of(node: Any) -> set[str]:
    """Every mapping key in a YAML document, at every level, lists included."""
    if isinstance(node, dict):
        return {str(k) for k in node} | {k for v in node.values() for k in keys_of(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys_of(v)}
    return set()


def cli_commands() -> set[str]:
    """The subcommands of the real `nst` parser."""
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(subparsers) == 1, "nst's parser should have one set of subcommands"
    return set(subparsers[0].choices)


def page_ids(page: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', page.read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built as `make docs` builds it (strict: any warning fails), into a temp dir."""
    assert MKDOCS.exists(), f"{MKDOCS} is missing: `make setup` installs mkdocs"
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr}"
    return out


def test_site_builds_strictly_with_every_page(site: Path) -> None:
    assert (site / "index.html").is_file()
    for name in CHAPTERS:
        assert (site / name / "index.html").is_file(), f"no page for docs/{name}.md"
    for name, module in API_PAGES.items():
        page = site / "api" / name / "index.html"
        assert page.is_file(), f"no API page {name}"
        # mkdocstrings rendered the module (its heading), not an empty page
        assert module in page_ids(page), f"api/{name}: {module} was not rendered"
    assert "TransferConfig" in (site / "api" / "core" / "index.html").read_text()
    # the figure: referenced by the home page and copied into the site
    assert FIGURE in (site / "index.html").read_text()
    assert (site / FIGURE).is_file()


def test_every_docs_page_is_in_the_nav() -> None:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]

    def pages(node: Any) -> set[str]:
        if isinstance(node, str):
            return {node}
        if isinstance(node, dict):
            return {p for v in node.values() for p in pages(v)}
        return {p for v in node for p in pages(v)}

    in_nav = pages(nav)
    on_disk = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "templates" not in p.parts}
    assert on_disk - in_nav == set(), "pages missing from mkdocs.yml's nav"
    assert in_nav - on_disk == set(), "nav entries without a page"


def test_readme_is_short_and_its_links_land(site: Path) -> None:
    text = README.read_text()
    lines = len(text.splitlines())
    assert lines < README_MAX_LINES, f"README.md has {lines} lines (keep it under 200)"
    assert f"docs/{FIGURE}" in text and (DOCS / FIGURE).is_file()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links, "README.md links into the docs"
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # an external URL
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), f"README.md links to {path}, which does not exist"
        if anchor:
            assert path.startswith("docs/") and path.endswith(".md"), link
            page = site / Path(path).relative_to("docs").with_suffix("") / "index.html"
            assert anchor in page_ids(page), f"README.md: no heading #{anchor} in {path}"


def test_every_nst_command_is_documented() -> None:
    commands = cli_commands()
    assert {"transfer", "train", "study"} <= commands  # the parser was read, not an empty set
    text = docs_text()
    missing = sorted(c for c in commands if not mentions(f"nst {c}", text))
    assert missing == [], f"`nst <command>` never shown in README.md or docs/: {missing}"


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "experiments").rglob("*.yaml")), ROOT / "params.yaml"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_key_of_the_experiment_files_is_documented(path: Path) -> None:
    keys = keys_of(yaml.safe_load(path.read_text()))
    assert keys, f"{path} has no keys"
    code = "\n".join(code_text(p.read_text()) for p in doc_pages())
    missing = sorted(k for k in keys if not mentions(k, code))
    assert missing == [], (
        f"keys of {path.relative_to(ROOT)} never written as code in README.md or docs/: {missing}"
    )


@pytest.mark.parametrize(
    "config",
    ["nst.config:TransferConfig", "nst.config:StrotssConfig", "nst.train.config:TrainConfig"],
    ids=str,
)
def test_every_config_field_is_documented(config: str) -> None:
    """Every field of a config is an option of its command and a key of its files."""
    import dataclasses
    import importlib

    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    code = "\n".join(code_text(p.read_text()) for p in doc_pages())
    missing = sorted(f.name for f in dataclasses.fields(cls) if not mentions(f.name, code))
    assert missing == [], f"fields of {name} never written as code in the docs: {missing}"


def test_the_checks_themselves_catch_what_they_are_for() -> None:
    # keys at every level, inside lists too
    assert keys_of({"a": {"b": [{"c": 1}, 2]}, "d": None}) == {"a", "b", "c", "d"}
    # a key counts only where it is written as code, and only as a whole identifier
    code = code_text("Set `lr_decay: 0` here;\n\n    fixed: {lr: 1}\n\nthe name in prose.")
    assert mentions("lr_decay", code) and mentions("lr", code) and mentions("fixed", code)
    assert not mentions("name", code) and not mentions("decay", code)
    assert mentions("nst train", "run `nst train --method adain`")
    assert not mentions("nst train", "nst training")
