"""requirements.lock pins the environment: what `make setup` installed is exactly the lock."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            out[name.lower().replace("_", "-")] = version
    return out


def freeze(python: str) -> dict[str, str]:
    out = subprocess.run(
        [python, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return pins("\n".join(line for line in out.splitlines() if not line.lower().startswith("nst")))


def test_the_installed_environment_is_the_lock() -> None:
    lock = pins((ROOT / "requirements.lock").read_text())
    installed = freeze(sys.executable)
    assert installed == lock, {
        "not in the lock": sorted(set(installed) - set(lock)),
        "locked, not installed": sorted(set(lock) - set(installed)),
        "other version": sorted(k for k in set(lock) & set(installed) if lock[k] != installed[k]),
    }


def test_the_lock_covers_every_declared_dependency() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    lock = pins((ROOT / "requirements.lock").read_text())
    for requirement in declared:
        name = requirement.split(";")[0]
        for sep in "<>=!~[ ":
            name = name.split(sep)[0]
        assert name.lower().replace("_", "-") in lock, f"{name} is declared but not locked"


@pytest.mark.slow
def test_a_fresh_setup_gives_the_same_freeze(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "VENV": str(venv), "PY": sys.executable},
    )
    assert freeze(str(venv / "bin" / "python")) == pins((ROOT / "requirements.lock").read_text())
