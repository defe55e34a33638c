"""A trained network as an ONNX graph with dynamic batch, height and width (`nst export`).

Exporter. torch.onnx's TorchScript-based exporter (`dynamo=False`), measured with torch
2.14.1: it exports the reflection padding, instance norm and nearest upsampling of
JohnsonNet in ~2 s with no extra dependency. The dynamo exporter gives the same graph
(same outputs to 1e-6) but needs the onnxscript package and takes ~23 s.

Shapes. JohnsonNet.forward pads each side to a multiple of 4 with a Python branch on the
shape (no padding when it divides; replication for tiny sides). A traced graph would bake
the branch taken at the example size into the graph, so the export traces `OnnxNet`
instead: the same layers with the padding written as shape arithmetic, reflect-padding the
bottom and right by (4 - s % 4) % 4 (zero when s divides). For sides of at least MIN_SIDE
(8) px that is exactly what JohnsonNet does, so the graph matches the network at every such
size; smaller images must be resized first.

The graph: input "image" (N x 3 x H x W float32 in [0, 1]) -> output "stylized" (same
shape), with the checkpoint's method, options and step in its metadata_props. The file is
checked against torch under onnxruntime before it is written (atomically: a temporary file
renamed into place), so a mismatching export never lands.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError
from nst.images import atomic_write
from nst.models.io import describe, load_model
from nst.models.johnson import MIN_SIDE, JohnsonNet

OPSET = 17
INPUT, OUTPUT = "image", "stylized"
DYNAMIC = {0: "batch", 2: "height", 3: "width"}
#: onnxruntime must agree with torch to this (max absolute difference, images in [0, 1])
TOLERANCE = 1e-3
#: the probe size of the check at export: sides not divisible by 4, to exercise the padding
CHECK_SHAPE = (1, 3, 45, 38)


class OnnxNet(nn.Module):
    """JohnsonNet with its padding as shape arithmetic (module docstring), for tracing."""

    def __init__(self, net: JohnsonNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = (4 - h % 4) % 4, (4 - w % 4) % 4
        n = self.net
        y = F.pad(x, (0, pw, 0, ph), mode="reflect")
        y = n.head(n.decoder(n.residuals(n.encoder(y))))
        return torch.sigmoid(y[..., :h, :w])


@dataclass
class ExportResult:
    path: Path
    meta: dict[str, Any]
    opset: int
    max_abs_diff: float  # onnxruntime vs torch at CHECK_SHAPE
    seconds: float


def exportable(model: nn.Module) -> OnnxNet:
    if not isinstance(model, JohnsonNet):
        raise NstError(f"no ONNX export for {type(model).__name__} networks (only johnson)")
    return OnnxNet(model).eval()


def onnx_bytes(model: nn.Module, meta: dict[str, Any], opset: int = OPSET) -> bytes:
    """The serialised ONNX graph of `model` (a JohnsonNet on the CPU), metadata included."""
    import onnx

    graph = exportable(model)
    example = torch.rand(1, 3, 64, 64)
    with tempfile.TemporaryDirectory(prefix="nst-onnx-") as tmp, warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice and tracer warnings about the shape
        # arithmetic (which is recorded as graph ops: checked at export by check_onnx)
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.onnx"
        with torch.no_grad():
            torch.onnx.export(
                graph, (example,), str(path), dynamo=False, opset_version=opset,
                input_names=[INPUT], output_names=[OUTPUT],
                dynamic_axes={INPUT: DYNAMIC, OUTPUT: DYNAMIC},
            )  # fmt: skip
        proto = onnx.load(str(path))
    info = {
        "nst.method": str(meta.get("method")),
        "nst.options": describe(meta),
        "nst.step": str(meta.get("step", "")),
        "nst.input": f"{INPUT}: N x 3 x H x W float32 in [0, 1], H, W >= {MIN_SIDE}",
    }
    for key, value in info.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(proto.SerializeToString())


def session(model: bytes | str | Path, threads: int = 0) -> Any:
    """An onnxruntime CPU InferenceSession (threads=0: onnxruntime's default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_onnx(sess: Any, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """The session's output for an N x 3 x H x W batch."""
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    return np.asarray(sess.run([OUTPUT], {INPUT: array.astype(np.float32)})[0])


def check_onnx(sess: Any, model: nn.Module, shape: tuple[int, ...] = CHECK_SHAPE) -> float:
    """max |onnxruntime - torch| on a seeded random batch of `shape`."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_onnx(sess, x)
    if got.shape != expected.shape:
        raise NstError(f"ONNX export: output shape {got.shape}, expected {expected.shape}")
    return float(np.abs(got - expected).max())


def export_onnx(model_path: str | Path, out: str | Path, *, opset: int = OPSET) -> ExportResult:
    """Export the checkpoint at `model_path` to the ONNX file `out` (module docstring)."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise NstError(f"--onnx {out}: is a directory, expected a file name")
    model, meta = load_model(model_path, "cpu")
    data = onnx_bytes(model, meta, opset)
    diff = check_onnx(session(data), model)
    if not diff <= TOLERANCE:
        raise NstError(
            f"ONNX export of {model_path}: onnxruntime differs from torch by {diff:.3g} "
            f"(> {TOLERANCE}); nothing written"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(data))
    return ExportResult(out, meta, opset, diff, time.perf_counter() - t0)
