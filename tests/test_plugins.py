"""Methods from outside nst: an external ONNX model named in a methods file, and a method a
separate package adds through an entry point, each compared on the smoke protocol, shown in
`nst methods --list`, the report and MLflow."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SPEC

from nst import NstError
from nst.cli import main
from nst.images import load_image
from nst.models.external import ExternalConfig, ExternalNet

pytestmark = pytest.mark.usefixtures("one_thread_module")


class Reinhard(torch.nn.Module):
    """Reinhard et al. 2001's colour transfer in RGB, as a published network might ship:
    NHWC images in 0-255, the content's per-channel mean and deviation replaced by the
    style's."""

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        c, s = content / 255.0, style / 255.0
        mc, sc = c.mean(dim=(1, 2), keepdim=True), c.std(dim=(1, 2), keepdim=True)
        ms, ss = s.mean(dim=(1, 2), keepdim=True), s.std(dim=(1, 2), keepdim=True)
        return ((c - mc) / (sc + 1e-5) * ss + ms).clamp(0, 1) * 255.0


def reinhard_nchw(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """The same function on nst's NCHW [0, 1] images: what the entry must give."""
    nhwc = Reinhard()(content.permute(0, 2, 3, 1) * 255, style.permute(0, 2, 3, 1) * 255)
    return (nhwc / 255).permute(0, 3, 1, 2)


def export_reinhard(path: Path) -> Path:
    example = (torch.rand(1, 40, 48, 3) * 255, torch.rand(1, 36, 30, 3) * 255)

    def dynamic(name: str) -> dict[int, str]:
        return {0: f"{name}_n", 1: f"{name}_h", 2: f"{name}_w"}

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Reinhard(),
            example,
            str(path),
            input_names=["photo", "painting"],
            output_names=["out"],
            dynamic_axes={"photo": dynamic("c"), "painting": dynamic("s"), "out": dynamic("c")},
            opset_version=17,
            dynamo=False,
        )
    return path


def spec_with(
    tmp: Path,
    methods: dict[str, dict[str, object]],
    keep: tuple[str, ...],
    smoke_settings: dict[str, dict[str, object]] | None = None,
) -> Path:
    """experiments/methods.yaml plus `methods` (and their `smoke_settings`), its smoke profile
    leaving out the built-in methods not in `keep` (the comparison stays seconds long)."""
    spec = yaml.safe_load(SPEC.read_text())
    spec["methods"].update(methods)
    smoke = spec["profiles"]["smoke"]
    smoke["methods"].update(smoke_settings or {})
    builtin = ("gatys", "strotss", "johnson", "cin", "adain", "stytr")
    smoke["leave_out"] = {m: "not part of this test" for m in builtin if m not in keep}
    path = tmp / "methods.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_external_net_adapts_layout_range_and_size(tmp_path: Path) -> None:
    model = export_reinhard(tmp_path / "reinhard.onnx")
    content, style = torch.rand(2, 3, 37, 45), torch.rand(2, 3, 29, 33)
    net = ExternalNet(
        ExternalConfig.from_dict(
            {
                "model": str(model),
                "inputs": ["content", "style"],
                "layout": "nhwc",
                "value_range": "0-255",
            }
        )
    )
    assert torch.allclose(net(content, style), reinhard_nchw(content, style), atol=1e-4)
    fixed = ExternalNet(
        ExternalConfig(str(model), ("content", "style"), "nhwc", "0-255", input_size=32)
    )
    y = fixed(content, style)
    assert y.shape == content.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    with pytest.raises(NstError, match=r"has 2 input\(s\) \(photo, painting\).*fix config.inputs"):
        ExternalNet(ExternalConfig(str(model), ("content",), "nhwc", "0-255"))
    with pytest.raises(NstError, match="no such file"):
        ExternalNet(ExternalConfig(str(tmp_path / "missing.onnx")))
    with pytest.raises(NstError, match="unknown onnx config key.*valid keys: model"):
        ExternalConfig.from_dict({"model": "x.onnx", "scale": 255})


def test_an_onnx_entry_is_compared_on_the_smoke_protocol(data: Path, tmp_path: Path) -> None:
    model = export_reinhard(tmp_path / "reinhard.onnx")
    entry = {
        "method": "onnx",
        "config": {
            "model": str(model),
            "inputs": ["content", "style"],
            "layout": "nhwc",
            "value_range": "0-255",
        },
    }
    spec = spec_with(tmp_path, {"reinhard": entry}, keep=("gatys",))
    out, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    argv = ["methods", str(spec), "--profile", "smoke", "--data", str(data), "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*argv, "--tracking-uri", uri, "--quiet"]) == 0
    root = out / "methods"
    with (root / "results.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["gatys", "reinhard"]
    summary = json.loads((root / "summary.json").read_text())
    (photo,), (style,) = summary["split"]["contents"], summary["split"]["styles"]
    size = summary["size"]
    content = load_image(data / "content" / photo, size=size)
    painting = load_image(data / "style" / style, size=size)
    result = load_image(root / rows["reinhard"]["image"])
    expected = reinhard_nchw(content, painting)
    assert result.shape == content.shape
    assert float((result - expected).abs().max()) <= 2 / 255  # PNG rounding
    assert rows["reinhard"]["degenerate"] in ("", "False", "false")
    # the report and MLflow show it like any method
    from mlflow import MlflowClient

    from nst.report.methods import methods_sections

    (section,) = methods_sections(out)
    assert section.tables[0].headers == ["metric", "gatys", "reinhard"]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("methods")
    names = {r.info.run_name for r in client.search_runs([exp.experiment_id])}
    assert {"methods-smoke", "gatys", "reinhard"} <= names


PLUGIN = {
    "pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "nst-plugin-demo"
        version = "0.1"

        [project.entry-points."nst.methods"]
        tiny = "nst_plugin_demo:METHOD"

        [project.entry-points."nst.backbones"]
        edges = "nst_plugin_demo.net:edges"

        [tool.setuptools]
        packages = ["nst_plugin_demo"]
    """,
    "nst_plugin_demo/__init__.py": '''
        """A method from another package: its entry is torch-free, its network in net.py."""
        from nst.models.registry import LOSS_OPTIONS, Method

        METHOD = Method(
            "tiny", "network", "two convolutions trained per style (plug-in demo)",
            module="nst_plugin_demo.net", options={"width": "width"},
            fields=("width", "style", "style_size"),
            defaults={"backbone": "vgg16", "alpha": 1.0, "beta": 4.0e5}, loss="perceptual",
            loss_options=LOSS_OPTIONS,
        )
    ''',
    "nst_plugin_demo/net.py": """
        import torch
        from torch import nn

        from nst.backbones.base import Backbone, WeightsInfo, seeded, tensors_sha256
        from nst.models.registry import register


        class Tiny(nn.Module):
            method = "tiny"
            inputs = ("content",)

            def __init__(self, width: int = 8):
                super().__init__()
                self.width = width
                self.body = nn.Sequential(
                    nn.Conv2d(3, width, 3, padding=1, padding_mode="reflect"), nn.ReLU(),
                    nn.Conv2d(width, 3, 3, padding=1, padding_mode="reflect"),
                )

            @property
            def options(self) -> dict:
                return {"width": self.width}

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.sigmoid(self.body(x) + torch.logit(x.clamp(1e-3, 1 - 1e-3)))


        @register("tiny")
        def tiny(width: int = 8) -> Tiny:
            return Tiny(width)


        class Edges(Backbone):
            # a fixed two-layer feature extractor: colours, then seeded random filters

            def __init__(self, seed: int) -> None:
                super().__init__()
                self.name, self.layer_names = "edges", ("rgb", "conv")
                self.conv = seeded(seed, lambda: nn.Conv2d(3, 16, 5, stride=2, padding=2))
                state = {k: v.detach() for k, v in self.conv.state_dict().items()}
                self.weights_info = WeightsInfo(f"random:seed={seed}", tensors_sha256(state), False)
                self.freeze()

            def features(self, x: torch.Tensor, layers) -> dict:
                self.check_layers(layers)
                out = {"rgb": x, "conv": torch.relu(self.conv(x))}
                return {k: out[k] for k in layers}


        def edges(weights: str = "random", seed: int = 0, **_: object) -> Edges:
            return Edges(seed)


        edges.layer_presets = (("conv",), ("rgb", "conv"))
    """,
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo package pip-installed (offline, no dependencies) into a fresh target folder:
    a temporary environment on PYTHONPATH, not the project's venv."""
    src, site = tmp_path_factory.mktemp("plugin-src"), tmp_path_factory.mktemp("plugin-site")
    for name, text in PLUGIN.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(textwrap.dedent(text).lstrip())
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        "--no-build-isolation",
        "--target",
        str(site),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert list(site.glob("nst_plugin_demo-0.1.dist-info/entry_points.txt"))
    return str(site)


def nst(args: list[str], pythonpath: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "nst", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_entry_point_plugin_adds_a_method_to_nst_the_report_and_mlflow(
    plugin_path: str, data: Path, tmp_path: Path
) -> None:
    listed = nst(["methods", "--list"], plugin_path, tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("tiny "))
    assert "network" in line and "plug-in nst_plugin_demo:METHOD" in line
    assert "tiny" not in nst(["methods", "--list"], "", tmp_path).stdout  # not installed: absent
    entry = {"method": "tiny", "config": {"steps": 40000}}
    # the plug-in's own backbone as the loss network, with its layer presets
    smoke = {"tiny": {"backbone": "edges", "width": 4, "steps": 2}}
    spec = spec_with(tmp_path, {"tiny": entry}, keep=("johnson",), smoke_settings=smoke)
    out, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = nst(
        [
            "methods",
            str(spec),
            "--profile",
            "smoke",
            "--data",
            str(data),
            "--out",
            str(out),
            "--tracking-uri",
            uri,
            "--quiet",
        ],
        plugin_path,
        tmp_path,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "  tiny: " in run.stdout
    root = out / "methods"
    with (root / "results.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["johnson", "tiny"]
    image = load_image(root / rows["tiny"]["image"])
    assert float(image.std()) > 0.02  # a picture, not a flat image
    from mlflow import MlflowClient

    from nst.report.methods import methods_sections

    (section,) = methods_sections(out)
    assert section.tables[0].headers == ["metric", "johnson", "tiny"]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("methods")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert "tiny" in runs and any(n.startswith("train-tiny-") for n in runs)
    trained = next(r for n, r in runs.items() if n.startswith("train-tiny-"))
    assert trained.data.tags["nst.method"] == "tiny"
    assert (
        json.loads((root / "summary.json").read_text())["methods"]["tiny"]["config"]["backbone"]
        == "edges"
    )
