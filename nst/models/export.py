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

Arbitrary-style networks (adain, stytr) export the same way with two inputs, "content"
(N x 3 x H x W) and "style" (N x 3 x H' x W', its own dynamic sizes), through ArbitraryOnnx:
both images reflect-padded at the bottom/right to the network's multiple as shape arithmetic
(adain: its encoder's `multiple`; stytr: the patch size 16), the network run on the padded
pair (its own Python padding branch then never pads), the output cropped back to H x W. Sides
must be at least that multiple. Stytr is exported as a merged copy (`merge_lora()` on a deep
copy: the caller's model keeps its adapters) with three export-only rewrites that compute
the same function: CAPE's AdaptiveAvgPool2d(18), which the exporter refuses for a dynamic
input size, as two pooling matrices built from the grid size (`MatrixPool`); the decoder's
nn.MultiheadAttention, whose trace bakes in the example's token counts, as the same attention
with -1 sequence lengths (`MatrixAttention`); and timm's antialiased bicubic resampling of
the position embeddings (aten::_upsample_bicubic2d_aa, which the
TorchScript exporter does not support) as an ONNX Resize with antialias=1, cubic_coeff_a =
-0.5, exclude_outside=1, which needs opset 18 (stytr's default; lower opsets are refused).
AdaIN's alpha is fixed at 1 in the graph (full style; alpha is a Python branch).

The graph: input "image" (N x 3 x H x W float32 in [0, 1]) -> output "stylized" (same
shape), with the checkpoint's method, options and step in its metadata_props. The file is
checked against torch under onnxruntime before it is written (atomically: a temporary file
renamed into place), so a mismatching export never lands.
"""

from __future__ import annotations

import tempfile
import time
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nst import NstError
from nst.imagefiles import atomic_write
from nst.models.io import describe, load_model
from nst.models.johnson import MIN_SIDE, JohnsonNet
from nst.models.registry import model_inputs

OPSET = 17
#: stytr's antialiased Resize (module docstring) needs opset 18
ANTIALIAS_OPSET = 18
INPUT, OUTPUT = "image", "stylized"
DYNAMIC = {0: "batch", 2: "height", 3: "width"}
#: onnxruntime must agree with torch to this (max absolute difference, images in [0, 1])
TOLERANCE = 1e-3
#: the probe size of the check at export: sides not divisible by 4, to exercise the padding
CHECK_SHAPE = (1, 3, 45, 38)
#: the style image's probe size for arbitrary-style networks (another size than the content)
CHECK_STYLE_SHAPE = (1, 3, 37, 51)
STYLE_DYNAMIC = {0: "style_batch", 2: "style_height", 3: "style_width"}


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
        return n.output_layer(y[..., :h, :w])


@dataclass
class ExportResult:
    path: Path
    meta: dict[str, Any]
    opset: int
    max_abs_diff: float  # onnxruntime vs torch at CHECK_SHAPE
    seconds: float
    inputs: tuple[str, ...] = (INPUT,)  # the graph's input names
    min_side: int = MIN_SIDE  # the smallest side the graph takes


class MatrixPool(nn.Module):
    """AdaptiveAvgPool2d(size) as P_h @ f @ P_w^T with the pooling matrices built from the
    input's size by tensor ops (the exporter refuses adaptive pooling of a dynamic size).
    Row i of P_n averages positions floor(i n / size) .. ceil((i + 1) n / size) - 1."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def matrix(self, axis: torch.Tensor) -> torch.Tensor:
        j = torch.cumsum(torch.ones_like(axis), 0) - 1  # 0 .. n-1, n = len(axis)
        n = j[-1] + 1
        i = torch.arange(self.size, dtype=axis.dtype, device=axis.device)
        start, end = torch.floor(i * n / self.size), torch.ceil((i + 1) * n / self.size)
        inside = (j[None] >= start[:, None]) & (j[None] < end[:, None])
        return inside.to(axis.dtype) / (end - start)[:, None]

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        ph, pw = self.matrix(f[0, 0, :, 0]), self.matrix(f[0, 0, 0, :])
        return torch.matmul(torch.matmul(ph, f), pw.transpose(0, 1))


class MatrixAttention(nn.Module):
    """nn.MultiheadAttention (batch_first, no masks) written with -1 sequence lengths, sharing
    its weights: the traced nn.MultiheadAttention bakes the example's token counts in."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        self.mha = mha

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **_: Any) -> Any:
        m = self.mha
        heads, dim = m.num_heads, m.embed_dim
        w, b = m.in_proj_weight.chunk(3), m.in_proj_bias.chunk(3)

        def split(x: torch.Tensor, i: int) -> torch.Tensor:
            y = F.linear(x, w[i], b[i])
            return y.reshape(y.shape[0], -1, heads, dim // heads).transpose(1, 2)

        qh, kh, vh = split(q, 0), split(k, 1), split(v, 2)
        att = torch.softmax(torch.matmul(qh, kh.transpose(-2, -1)) / (dim // heads) ** 0.5, -1)
        out = torch.matmul(att, vh).transpose(1, 2).reshape(q.shape[0], -1, dim)
        return m.out_proj(out), None


class ArbitraryOnnx(nn.Module):
    """An adain or stytr network with its padding as shape arithmetic (module docstring)."""

    inputs = ("content", "style")

    def __init__(self, net: nn.Module, multiple: int):
        super().__init__()
        self.net, self.multiple = net, multiple

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w, m = x.shape[-2], x.shape[-1], self.multiple
        return F.pad(x, (0, (m - w % m) % m, 0, (m - h % m) % m), mode="reflect")

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        h, w = content.shape[-2], content.shape[-1]
        return self.net(self.pad(content), self.pad(style))[..., :h, :w]  # type: ignore[no-any-return]


def min_side(model: nn.Module) -> int:
    """The smallest image side the exported graph takes."""
    if isinstance(model, JohnsonNet):
        return MIN_SIDE
    side: Any = getattr(model, "multiple", None) or getattr(model, "patch", 1)
    return int(side)


def default_opset(model: nn.Module) -> int:
    """The opset a network asks for (its `onnx_opset`: stytr's antialiased Resize needs 18)."""
    return int(getattr(model, "onnx_opset", OPSET))


def exportable(model: nn.Module) -> nn.Module:
    """The traceable graph of `model`: never `model` itself mutated. A network with export-only
    rewrites returns them from `traceable()` (johnson: OnnxNet; stytr: a merged copy with
    MatrixPool and MatrixAttention); one that takes a style is padded by ArbitraryOnnx."""
    if isinstance(model, JohnsonNet):
        return OnnxNet(model).eval()
    graph = typing.cast(Any, model).traceable() if hasattr(model, "traceable") else model
    if "style" in model_inputs(model):
        return ArbitraryOnnx(graph, min_side(model)).eval()
    return graph.eval()


def _bicubic_aa(g: Any, x: Any, output_size: Any, align_corners: Any, *_: Any) -> Any:
    """aten::_upsample_bicubic2d_aa as ONNX Resize (opset 18: antialias), PyTorch's kernel:
    cubic a = -0.5, taps outside the image excluded (weights renormalised)."""
    from torch.onnx import symbolic_helper as sh

    def const(v: Any) -> Any:
        return g.op("Constant", value_t=torch.tensor(v, dtype=torch.int64))

    if sh._is_packed_list(output_size):
        parts = [
            g.op("Cast", v, to_i=7) if sh._is_value(v) else const(int(v))
            for v in sh._unpack_list(output_size)
        ]
        size = g.op("Concat", *[g.op("Reshape", p, const([1])) for p in parts], axis_i=0)
    else:
        size = g.op("Cast", output_size, to_i=7)
    nc = g.op("Slice", g.op("Shape", x), const([0]), const([2]))
    empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    corners = bool(sh._maybe_get_const(align_corners, "b"))
    return g.op(
        "Resize",
        x,
        empty,
        empty,
        g.op("Concat", nc, size, axis_i=0),
        mode_s="cubic",
        cubic_coeff_a_f=-0.5,
        antialias_i=1,
        exclude_outside_i=1,
        coordinate_transformation_mode_s="align_corners" if corners else "half_pixel",
    )


def onnx_bytes(model: nn.Module, meta: dict[str, Any], opset: int | None = None) -> bytes:
    """The serialised ONNX graph of `model` (a network on the CPU), metadata included."""
    import onnx

    needed = default_opset(model)
    opset = opset or needed
    if opset < needed:
        raise NstError(
            f"{getattr(model, 'method', type(model).__name__)} ONNX export needs opset >= "
            f"{needed} (antialiased Resize of the ViT position embeddings), got --opset {opset}"
        )
    if opset >= ANTIALIAS_OPSET:
        torch.onnx.register_custom_op_symbolic(
            "aten::_upsample_bicubic2d_aa", _bicubic_aa, ANTIALIAS_OPSET
        )
    graph = exportable(model)
    arbitrary = "style" in model_inputs(model)
    names = [*model_inputs(model)] if arbitrary else [INPUT]
    axes = {names[0]: DYNAMIC, OUTPUT: DYNAMIC}
    if arbitrary:
        axes[names[1]] = STYLE_DYNAMIC
    example: tuple[torch.Tensor, ...] = tuple(torch.rand(1, 3, 64, 64) for _ in names)
    with tempfile.TemporaryDirectory(prefix="nst-onnx-") as tmp, warnings.catch_warnings():
        # the TorchScript exporter's deprecation notice and tracer warnings about the shape
        # arithmetic (which is recorded as graph ops: checked at export by check_onnx)
        warnings.simplefilter("ignore")
        path = Path(tmp) / "graph.onnx"
        with torch.no_grad():
            torch.onnx.export(
                graph,
                example,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=names,
                output_names=[OUTPUT],
                dynamic_axes=axes,
            )
        proto = onnx.load(str(path))
    info = {
        "nst.method": str(meta.get("method")),
        "nst.options": describe(meta),
        "nst.step": str(meta.get("step", "")),
        "nst.input": ", ".join(names) + " (each): N x 3 x H x W float32 in [0, 1], "
        f"H, W >= {min_side(model)}",
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


def run_onnx(sess: Any, *images: torch.Tensor | np.ndarray) -> np.ndarray:
    """The session's output for N x 3 x H x W batches, one per graph input (in order)."""
    arrays = [x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x for x in images]
    names = [i.name for i in sess.get_inputs()]
    if len(names) != len(arrays):
        raise NstError(f"the ONNX graph takes {len(names)} image(s) ({', '.join(names)})")
    feed = {n: a.astype(np.float32) for n, a in zip(names, arrays, strict=True)}
    return np.asarray(sess.run([OUTPUT], feed)[0])


def check_onnx(sess: Any, model: nn.Module, shape: tuple[int, ...] = CHECK_SHAPE) -> float:
    """max |onnxruntime - torch| on a seeded random batch of `shape` (and a style batch of
    CHECK_STYLE_SHAPE for arbitrary-style networks)."""
    gen = torch.Generator().manual_seed(0)
    x = [torch.rand(*shape, generator=gen)]
    if "style" in model_inputs(model):
        x.append(torch.rand(*CHECK_STYLE_SHAPE, generator=gen))
    with torch.no_grad():
        expected = model(*x).numpy()
    got = run_onnx(sess, *x)
    if got.shape != expected.shape:
        raise NstError(f"ONNX export: output shape {got.shape}, expected {expected.shape}")
    return float(np.abs(got - expected).max())


def export_onnx(
    model_path: str | Path, out: str | Path, *, opset: int | None = None
) -> ExportResult:
    """Export the checkpoint at `model_path` to the ONNX file `out` (module docstring)."""
    t0 = time.perf_counter()
    out = Path(out)
    if out.is_dir():
        raise NstError(f"--onnx {out}: is a directory, expected a file name")
    model, meta = load_model(model_path, "cpu")
    opset = opset or default_opset(model)
    data = onnx_bytes(model, meta, opset)
    diff = check_onnx(session(data), model)
    if not diff <= TOLERANCE:
        raise NstError(
            f"ONNX export of {model_path}: onnxruntime differs from torch by {diff:.3g} "
            f"(> {TOLERANCE}); nothing written"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(data))
    names = model_inputs(model) if "style" in model_inputs(model) else (INPUT,)
    return ExportResult(out, meta, opset, diff, time.perf_counter() - t0, names, min_side(model))
