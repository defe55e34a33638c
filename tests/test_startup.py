"""Start-up: `nst --help` builds every parser without the heavy libraries, `nst transfer --no-track`
never imports the tracking or study stack, and the CLI leaves the process's warnings alone."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from nst.backbones import list_backbones
from nst.backbones.registry import BACKBONES, FAMILIES
from nst.cli import COMMANDS, main

HEAVY = ("torch", "torchvision", "timm", "mlflow", "optuna", "dvc", "matplotlib", "pandas")
ENV = {
    **os.environ,
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}


def imported_after(code: str) -> set[str]:
    """The top-level packages imported by running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, check=True
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_help_of_every_command_imports_no_heavy_library() -> None:
    code = (
        "from nst.cli import COMMANDS, build_parser\n"
        "import contextlib, io\n"
        "p = build_parser()\n"
        "for c in COMMANDS:\n"
        "    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "        p.parse_args([c, '--help'])\n"
    )
    loaded = imported_after(code) & set(HEAVY)
    assert not loaded, f"`nst --help` imports {sorted(loaded)}"


def test_transfer_without_tracking_imports_no_tracking_or_study_stack(
    tmp_path: Path, tiny_images: tuple[Path, Path]
) -> None:
    content, style = tiny_images
    out = tmp_path / "out.png"
    argv = [
        "transfer",
        "--content",
        str(content),
        "--style",
        str(style),
        "--out",
        str(out),
        "--size",
        "32",
        "--steps",
        "2",
        "--weights",
        "random",
        "--no-track",
    ]
    loaded = imported_after(f"from nst.cli import main\nassert main({argv!r}) == 0")
    assert out.is_file()
    assert "torch" in loaded  # the probe sees real imports
    assert not loaded & {"mlflow", "optuna", "dvc"}


@pytest.fixture
def tiny_images(tmp_path: Path) -> tuple[Path, Path]:
    from PIL import Image

    paths = []
    for name, colour in (("content.png", (200, 40, 40)), ("style.png", (20, 40, 220))):
        path = tmp_path / name
        Image.new("RGB", (40, 32), colour).save(path)
        paths.append(path)
    return paths[0], paths[1]


def test_cli_restores_the_process_warning_machinery(tmp_path: Path) -> None:
    before = (warnings.showwarning, warnings.formatwarning)
    assert (
        main(
            [
                "fetch",
                "--out",
                str(tmp_path / "d"),
                "--content",
                "0",
                "--styles",
                "0",
                "--manifest",
                str(tmp_path / "missing.json"),
                "--quiet",
            ]
        )
        == 2
    )
    assert (warnings.showwarning, warnings.formatwarning) == before


@pytest.mark.parametrize("module", sorted(FAMILIES))
def test_each_backbone_module_registers_exactly_its_declared_names(module: str) -> None:
    importlib.import_module(module)
    registered = {n for n, f in BACKBONES.entries.items() if f.__module__ == module}
    assert registered == set(FAMILIES[module])


def test_every_command_is_listed() -> None:
    found = {p.stem for p in (Path(__file__).parents[1] / "nst" / "cli").glob("*.py")}
    assert set(COMMANDS) == found - {"__init__", "options"}
    assert list_backbones() == sorted(n for names in FAMILIES.values() for n in names)


def test_the_recorded_command_pastes_back_into_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from nst.provenance import command_line

    argv = ["/x/bin/nst", "study", "e.yaml", "--tracking-uri", "", "--fresh", "--note", "a b"]
    monkeypatch.setattr(sys, "argv", argv)
    assert shlex.split(command_line()) == ["nst", *argv[1:]]


def test_every_config_option_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from nst.config import TransferConfig

    with pytest.raises(SystemExit):
        main(["transfer", "--help"])
    out = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for f in dataclasses.fields(TransferConfig):
        described = f.metadata.get("help", "")
        assert len(described) > 10, f"{f.name} has no description"
        wanted = "".join(f"{described} (default:".split())
        assert wanted in out, f"--{f.name} does not show its description"
    assert "oneofdeit_base,deit_small" in out and "imagenet|random|auto|PATH" in out


def test_every_option_of_every_command_has_a_one_line_description() -> None:
    """The --help of every command describes each of its options (the config fields' from
    their field_ declarations, nst.parts): none blank, none more than one sentence's line."""
    import argparse

    from nst.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if action.dest == "help":
                continue
            text = (action.help or "").strip()
            if path and (not text or "\n" in text):
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}".strip())

    walk(build_parser(), "")
    assert not missing, "options without a one-line description: " + ", ".join(missing)
