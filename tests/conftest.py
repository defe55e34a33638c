"""Shared fixtures. Tests never touch the network beyond 127.0.0.1 and never phone home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import make_images, tree_state, write_sample

os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")

REPO = Path(__file__).resolve().parents[1]
#: the user's own stores: no test may create or change them
PROJECT_STORES = ("mlflow.db", "mlartifacts", "optuna.db", "optuna.log", "results", "reports")


def _snapshot() -> dict[str, tuple[int, int] | None]:
    """(files, newest mtime in ns) under each project store, None when it does not exist."""
    out: dict[str, tuple[int, int] | None] = {}
    for name in PROJECT_STORES:
        path = REPO / name
        if not path.exists():
            out[name] = None
            continue
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        out[name] = (len(files), max((p.stat().st_mtime_ns for p in files), default=0))
    return out


@pytest.fixture(scope="session", autouse=True)
def project_stores_untouched(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Point the default MLflow store and Optuna storage at a temp dir for the whole session
    (subprocesses inherit it), and fail the session if a project store changed anyway."""
    stores = tmp_path_factory.mktemp("default-stores")
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "NST_OPTUNA_STORAGE")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{stores / 'mlflow.db'}"
    os.environ["NST_OPTUNA_STORAGE"] = f"sqlite:///{stores / 'optuna.db'}"
    before = _snapshot()
    yield stores
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    after = _snapshot()
    changed = [name for name in PROJECT_STORES if before[name] != after[name]]
    assert not changed, f"the test session wrote the project's own stores: {changed}"


@pytest.fixture(scope="session")
def sample_data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The test images: nst's embedded offline sample (helpers.write_sample) in a temp folder,
    written once per session; read-only for the tests (the session fails if one changed it)."""
    root = write_sample(tmp_path_factory.mktemp("sample"))
    before = tree_state(root)
    yield root
    assert tree_state(root) == before, "a test changed the shared test sample"


@pytest.fixture
def tiny_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth 'photo' and a striped 'painting', 1x3x32x32 in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    content = torch.stack([x, y, (x + y) / 2]).unsqueeze(0)
    stripes = (torch.sin(x * 40) > 0).float()
    style = torch.stack([stripes, 1 - stripes, stripes * 0.5]).unsqueeze(0)
    return content, style


@pytest.fixture
def isolated_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, so `auto` weights never pick up a real cache."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _one_thread():  # type: ignore[no-untyped-def]
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture
def one_thread():  # type: ignore[no-untyped-def]
    """torch on one thread for the test: the test machine's cores are shared, and
    oversubscribed threads are several times slower (subprocesses use 1 too)."""
    yield from _one_thread()


@pytest.fixture(scope="module")
def one_thread_module():  # type: ignore[no-untyped-def]
    """one_thread for a whole module, its module-scoped fixtures (a smoke run) included: use
    it as `pytestmark = pytest.mark.usefixtures("one_thread_module")`."""
    yield from _one_thread()


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list:  # type: ignore[type-arg]
    """Every figure the report renders meanwhile (matplotlib Figures), kept to read back what
    it drew."""
    from nst.report import figures as figs

    kept: list = []  # type: ignore[type-arg]
    real = figs._render

    def keep(fig):  # type: ignore[no-untyped-def]
        kept.append(fig)
        return real(fig)

    monkeypatch.setattr(figs, "_render", keep)
    return kept


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos and three striped styles made by the test (tests/helpers.make_images): a
    folder the methods comparison, the contract and the plug-in tests split and train on."""
    root = tmp_path_factory.mktemp("data")
    make_images(root / "content", 3, seed=0)
    make_images(root / "style", 3, seed=1, stripes=True)
    return root
