"""The contract of every trained method, parametrised over the method registry (timm style):
a method registered in nst.models.registry is held to it by name, with its smoke-profile
settings of experiments/methods.yaml (a registered method without them fails here too).

    any size     an image of any aspect ratio comes back at its own size
    determinism  the same seed trains the same bytes
    resume       2 steps + a resumed 2 equal 4 uninterrupted steps, bit for bit
    export       the ONNX graph (nst export) gives what the network gives
    serving      the MLflow pyfunc model gives what the network gives
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import SPEC
from torch import nn

from nst.methods.spec import load_plan
from nst.models.io import load_model
from nst.models.registry import list_models
from nst.train import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread_module")

#: sides that are no multiple of any network's stride, in both orientations
SIZES = ((45, 70), (70, 45))
STYLE_SIZE = (50, 38)


def contract_config(method: str, data: Path, **changes: Any) -> TrainConfig:
    """The method's smoke-profile config of experiments/methods.yaml, 4 steps."""
    plan = load_plan(SPEC, "smoke")
    entries = [m for m in plan.methods if m.method == method]
    assert entries, f"{method}: registered, but experiments/methods.yaml's smoke profile has none"
    config = plan.train_config(entries[0], data / "content", data / "style")
    if not (config.takes_style or config.entry.style_bank):  # johnson: one style image
        config = config.replace(style=str(sorted((data / "style").iterdir())[0]))
    base = {"steps": 4, "checkpoint_every": 2, "log_every": 1, "sample_every": 0}
    return config.replace(**{**base, **changes})


def quiet_train(config: TrainConfig, out: Path, resume: bool = False) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Path(train(config, out, resume=resume, progress=False).model)


@pytest.fixture(scope="module")
def trained(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """method -> model.pt of 4 uninterrupted steps (trained when a test first asks)."""

    class Cache(dict[str, Path]):
        def __missing__(self, method: str) -> Path:
            out = tmp_path_factory.mktemp(f"{method}-full")
            self[method] = quiet_train(contract_config(method, data), out)
            return self[method]

    return Cache()


def inputs_of(net: nn.Module, hw: tuple[int, int]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    images = [torch.rand(1, 3, *hw, generator=gen)]
    if "style" in getattr(net, "inputs", ("content",)):
        images.append(torch.rand(1, 3, *STYLE_SIZE, generator=gen))
    return images


def check_keeps_size(method: str, net: nn.Module) -> None:
    """AssertionError naming `method` unless every SIZES image comes back at its size."""
    for hw in SIZES:
        with torch.no_grad():
            y = net.eval()(*inputs_of(net, hw))
        assert tuple(y.shape) == (1, 3, *hw), f"{method}: {hw} came back {tuple(y.shape)}"
        assert float(y.min()) >= 0 and float(y.max()) <= 1, f"{method}: outside [0, 1]"


def same_state(a: Path, b: Path) -> bool:
    sa = torch.load(a, weights_only=False)["model"]
    sb = torch.load(b, weights_only=False)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("method", list_models())
def test_any_aspect_ratio_keeps_its_size(method: str, trained: dict[str, Path]) -> None:
    net, _ = load_model(trained[method])
    check_keeps_size(method, net)


@pytest.mark.parametrize("method", list_models())
def test_the_same_seed_trains_the_same_bytes(
    method: str, data: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    again = quiet_train(contract_config(method, data), tmp_path / "again")
    assert same_state(trained[method], again), f"{method}: same seed, other weights"


@pytest.mark.parametrize("method", list_models())
def test_resume_equals_an_uninterrupted_run(
    method: str, data: Path, trained: dict[str, Path], tmp_path: Path
) -> None:
    quiet_train(contract_config(method, data, steps=2), tmp_path / "run")
    resumed = quiet_train(contract_config(method, data), tmp_path / "run", resume=True)
    assert same_state(trained[method], resumed), f"{method}: resumed != uninterrupted"


@pytest.mark.parametrize("method", list_models())
def test_export_equals_eager(method: str, trained: dict[str, Path], tmp_path: Path) -> None:
    from nst.models.export import TOLERANCE, export_onnx, run_onnx, session

    result = export_onnx(trained[method], tmp_path / "model.onnx")
    net, _ = load_model(trained[method])
    for hw in SIZES:
        images = inputs_of(net, hw)
        with torch.no_grad():
            eager = net.eval()(*images).numpy()
        got = run_onnx(session(result.path), *images)
        assert float(np.abs(got - eager).max()) <= TOLERANCE, f"{method}: ONNX != eager at {hw}"


@pytest.mark.parametrize("method", list_models())
def test_serving_equals_eager(method: str, trained: dict[str, Path], tmp_path: Path) -> None:
    import mlflow.pyfunc

    from nst.models.serving import save_mlflow_model

    folder = save_mlflow_model(trained[method], tmp_path / "model")
    served = mlflow.pyfunc.load_model(str(folder))
    net, _ = load_model(trained[method])
    names = getattr(net, "inputs", ("content",))
    for hw in SIZES:
        images = inputs_of(net, hw)
        with torch.no_grad():
            eager = net.eval()(*images).numpy()
        arrays = [x.numpy() for x in images]
        got = served.predict(
            dict(zip(names, arrays, strict=True)) if len(arrays) > 1 else arrays[0]
        )
        assert float(np.abs(np.asarray(got) - eager).max()) <= 1e-5, f"{method}: served != eager"


def test_a_method_that_breaks_the_contract_fails_by_name() -> None:
    """A network that drops its last row and column is caught, the method named."""
    from nst.models.registry import JOHNSON, METHODS, NETWORKS, get_model

    class Cropping(nn.Module):
        inputs = ("content",)

        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.inner = get_model("johnson", width=width)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)[..., :-1, :-1]

    broken = type(JOHNSON)(**{**JOHNSON.__dict__, "name": "cropping", "module": __name__})
    METHODS.add("cropping", broken)
    NETWORKS["cropping"] = Cropping
    try:
        with pytest.raises(AssertionError, match=r"cropping: \(45, 70\) came back"):
            check_keeps_size("cropping", get_model("cropping", width=4))
        assert "cropping" in list_models()
    finally:
        del METHODS.entries["cropping"], NETWORKS["cropping"]
