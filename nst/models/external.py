"""External methods: a published network as an ONNX file, compared on nst's protocol.

A methods.yaml entry `{method: onnx, config: {...}}` names the file and how the network
expects its images; `ExternalNet` adapts nst's images (N x 3 x H x W RGB in [0, 1]) to it and
back, and runs it under onnxruntime (no torch in the graph's path):

    model        path to the .onnx file (its hash is recorded with the results)
    inputs       [content] or [content, style]: the graph's image inputs, in its order
    layout       nchw | nhwc: the graph's tensor layout, inputs and output alike
    value_range  0-1 | 0-255: the graph's pixel scale, inputs and output alike
    input_size   0: any size (a dynamic graph); S: the graph takes S x S images, so each input
                 is resized to S x S and the output resized back to the content's size

The output is clamped to [0, 1] after scaling back, as nst's own networks are in eval mode.
A graph whose inputs or output do not fit the entry is refused in one line naming the
mismatch, before any image is stylised. The conventions are numpy (`to_graph`, `from_graph`),
so `nst apply --model external.onnx` uses them without torch (nst.models.onnx_apply).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from nst import NstError
from nst.parts import build_config

if TYPE_CHECKING:
    import torch

VALUE_SCALE = {"0-1": 1.0, "0-255": 255.0}
LAYOUTS = ("nchw", "nhwc")


def to_graph(x: np.ndarray, layout: str, value_range: str) -> np.ndarray:
    """nst's N x 3 x H x W float32 in [0, 1] -> the graph's layout and pixel scale."""
    x = x.astype(np.float32) * VALUE_SCALE[value_range]
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if layout == "nhwc" else x)


def from_graph(y: np.ndarray, layout: str, value_range: str, what: str) -> np.ndarray:
    """The graph's output -> nst's N x 3 x H x W float32, clamped to [0, 1]; an output that is
    not an RGB batch in `layout` is one line naming `what` (the graph)."""
    if y.ndim != 4 or y.shape[3 if layout == "nhwc" else 1] != 3:
        raise NstError(
            f"{what} returned shape {tuple(y.shape)}, not an RGB batch in layout {layout}; "
            "fix the layout"
        )
    y = y.transpose(0, 3, 1, 2) if layout == "nhwc" else y
    return np.clip(y.astype(np.float32) / VALUE_SCALE[value_range], 0.0, 1.0)


def fixed_size(shape: list[Any], layout: str) -> int:
    """The side a graph input of `shape` takes when its height and width are fixed and equal
    (ExternalConfig.input_size), 0 when they are dynamic."""
    h, w = shape[1:3] if layout == "nhwc" else shape[2:4]
    return h if isinstance(h, int) and h == w else 0


@dataclass(frozen=True)
class ExternalConfig:
    """An external ONNX method (module docstring)."""

    model: str = ""
    inputs: tuple[str, ...] = ("content",)
    layout: Literal["nchw", "nhwc"] = "nchw"
    value_range: Literal["0-1", "0-255"] = "0-1"
    input_size: int = 0

    INPUTS: ClassVar[tuple[tuple[str, ...], ...]] = (("content",), ("content", "style"))

    def __post_init__(self) -> None:
        if not self.model:
            raise NstError("an onnx method needs config.model: the path to its .onnx file")
        if self.inputs not in self.INPUTS:
            raise NstError(
                f"inputs {list(self.inputs)}: use [content] or [content, style] (the graph's "
                "image inputs in its order)"
            )
        if self.input_size < 0:
            raise NstError(f"input_size {self.input_size}: 0 (any size) or the side it takes")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExternalConfig:
        return build_config(cls, values, "onnx ")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "inputs": list(self.inputs),
            "layout": self.layout,
            "value_range": self.value_range,
            "input_size": self.input_size,
        }


class ExternalNet:
    """An ONNX graph called like nst's networks: net(content[, style]) -> N x 3 x H x W."""

    def __init__(self, config: ExternalConfig):
        import onnxruntime as ort

        path = Path(config.model).expanduser()
        if not path.is_file():
            raise NstError(f"onnx model {config.model}: no such file; check config.model")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime's own exception types
            text = f"onnx model {path}: not a readable ONNX graph ({err})".splitlines()[0]
            raise NstError(text) from None
        self.config, self.path = config, path
        self.inputs = config.inputs
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        names = [i.name for i in self.session.get_inputs()]
        if len(names) != len(config.inputs):
            raise NstError(
                f"onnx model {path} has {len(names)} input(s) ({', '.join(names)}) but the entry "
                f"says inputs {list(config.inputs)}; fix config.inputs"
            )
        self.names = names

    def __call__(self, content: torch.Tensor, style: torch.Tensor | None = None) -> torch.Tensor:
        import torch

        from nst.images import resize_tensor

        h, w = content.shape[-2:]
        images = [content] if style is None or len(self.names) == 1 else [content, style]
        if len(images) != len(self.names):
            raise NstError(f"onnx model {self.path} takes a style image: pass one")
        feeds = {n: self._to_graph(x) for n, x in zip(self.names, images, strict=True)}
        try:
            (out,) = self.session.run(None, feeds)[:1]
        except Exception as err:  # onnxruntime's own exception types
            shapes = ", ".join(f"{n} {tuple(v.shape)}" for n, v in feeds.items())
            text = f"onnx model {self.path} failed on {shapes}: {err}".splitlines()[0]
            raise NstError(f"{text}; check config.layout, inputs and input_size") from None
        c = self.config
        y = torch.from_numpy(from_graph(out, c.layout, c.value_range, f"onnx model {self.path}"))
        if tuple(y.shape[-2:]) != (h, w):
            y = resize_tensor(y, (int(h), int(w))).clamp(0.0, 1.0)
        return y.contiguous()

    def _to_graph(self, x: torch.Tensor) -> Any:
        from nst.images import resize_tensor

        s = self.config.input_size
        if s:
            x = resize_tensor(x, (s, s))
        return to_graph(x.float().cpu().numpy(), self.config.layout, self.config.value_range)
