"""ONNX export and the MLflow pyfunc model of the arbitrary-style networks (adain, stytr): two
inputs with their own dynamic sizes, onnxruntime against torch at two sizes, stytr exported as
a merged copy (the caller's network keeps its adapters), and the pyfunc model's
{"content", "style"} input in a plain subprocess. Tiny untrained networks with random weights
(non-zero LoRA B, so merging matters), saved as checkpoints without a training run."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_train import ENV

from nst.cli import main
from nst.models import get_model, load_model
from nst.models.io import FORMAT
from nst.models.registry import model_inputs

OPTIONS = {
    "adain": {"encoder": "efficientnet_lite0", "layer": "stage2", "decoder_width": 0.25},
    "stytr": {"encoder": "deit_tiny", "decoder_width": 0.125, "decoder_layers": 1},
}


# one torch thread (conftest); the random encoder weights' loud warning is expected here
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore")]


def tiny(method: str) -> Any:
    torch.manual_seed(0)
    net = get_model(method, weights="random", **OPTIONS[method])
    for name, p in net.named_parameters():
        if "lora_B" in name:  # peft starts B at zero: make the adapters change the function
            torch.nn.init.normal_(p, std=0.05)
    return net.eval()


@pytest.fixture(scope="module", params=["adain", "stytr"])
def checkpoint(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    method = str(request.param)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = tiny(method)
    path = tmp_path_factory.mktemp(method) / "model.pt"
    meta = {"method": method, "options": dict(net.options), "step": 0}
    torch.save({"format": FORMAT, "meta": meta, "model": net.state_dict()}, path)
    return path


def test_onnx_export_takes_content_and_style_and_matches_torch_at_two_sizes(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from nst.models.export import run_onnx, session

    net, meta = load_model(checkpoint)
    out = tmp_path / "net.onnx"
    assert main(["export", "--model", str(checkpoint), "--onnx", str(out)]) == 0
    err = capsys.readouterr().err
    assert "inputs content and style" in err and "max |diff|" in err, err
    proto = onnx.load(str(out))
    dims = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in proto.graph.input}
    assert dims == {
        "content": ["batch", "", "height", "width"],
        "style": ["style_batch", "", "style_height", "style_width"],
    }
    assert {p.key: p.value for p in proto.metadata_props}["nst.method"] == meta["method"]
    sess = session(out, threads=1)
    # stytr: multiples of its patch size 16; adain: any side >= its encoder's multiple (8)
    sizes = [((1, 3, 32, 32), (1, 3, 48, 32)), ((2, 3, 48, 64), (2, 3, 32, 32))]
    if meta["method"] == "adain":
        sizes.append(((1, 3, 37, 50), (1, 3, 29, 41)))
    for content_shape, style_shape in sizes:
        c, s = torch.rand(*content_shape), torch.rand(*style_shape)
        with torch.no_grad():
            expected = net(c, s).numpy()
        got = run_onnx(sess, c, s)
        assert got.shape == content_shape
        assert np.abs(got - expected).max() <= 1e-3, content_shape


def test_stytr_is_exported_as_a_merged_copy_and_its_opset_checked(tmp_path: Path) -> None:
    from nst import NstError
    from nst.models.export import exportable, onnx_bytes

    net = tiny("stytr")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    graph = exportable(net)
    assert not net.merged and graph.net.merged  # type: ignore[union-attr]
    assert not any("lora_" in k for k in graph.state_dict())
    assert before.keys() == net.state_dict().keys()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    c, s = torch.rand(1, 3, 32, 48), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (graph(c, s) - net(c, s)).abs().max() <= 1e-5
    with pytest.raises(NstError, match="opset >= 18"):
        onnx_bytes(net, {"method": "stytr"}, opset=17)
    assert model_inputs(graph) == ("content", "style")


def test_the_mlflow_model_takes_content_and_style_in_a_plain_subprocess(
    checkpoint: Path, tmp_path: Path
) -> None:
    from nst.models.serving import save_mlflow_model

    folder = save_mlflow_model(checkpoint, tmp_path / "model")
    rng = np.random.default_rng(0)
    c = rng.random((2, 32, 48, 3), dtype=np.float32)  # NHWC
    s = rng.random((1, 32, 32, 3), dtype=np.float32)  # one style for the batch, another size
    np.save(tmp_path / "c.npy", c)
    np.save(tmp_path / "s.npy", s)
    script = (
        "import mlflow, numpy as np\n"
        f"model = mlflow.pyfunc.load_model({str(folder)!r})\n"
        f"c, s = np.load({str(tmp_path / 'c.npy')!r}), np.load({str(tmp_path / 's.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, model.predict({{'content': c, 'style': s}}))\n"
        "print(model.metadata.signature.to_dict()['inputs'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"content"' in done.stdout and '"style"' in done.stdout, done.stdout
    net, _ = load_model(checkpoint)
    ct, st = torch.from_numpy(c).permute(0, 3, 1, 2), torch.from_numpy(s).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = net(ct, st.expand(2, -1, -1, -1)).numpy()
    y = np.load(tmp_path / "y.npy")
    assert y.shape == c.shape
    assert np.abs(y.transpose(0, 3, 1, 2) - expected).max() <= 1e-5
