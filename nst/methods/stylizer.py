"""`Stylizer`: one interface for every way to stylise, `stylise(content, style) -> Stylized`.

An optimisation method's config (gatys: a TransferConfig, nst.optimize.stylize; strotss: a
StrotssConfig, nst.optimize.strotss; the image is optimised) and a trained
feed-forward network (a checkpoint path, or a runs:/ or models:/ MLflow URI that
nst.models.uri resolves) become the same object. The methods comparison (nst.methods.run)
stylises and measures only through it, so every method is timed and measured the same way:

    seconds         wall time of the call (torch.cuda.synchronize first and last on a GPU)
    peak_memory_mb  nst.runtime.peak_memory_mb, the harness's one rule: on CUDA the peak
                    allocated since the call began (peak stats reset first), on the CPU the
                    process's peak resident set so far (ru_maxrss: never goes down, so it is an
                    upper bound for the call, not the call's own increment)

Memory (nst.memory), when `max_memory` is given (a size such as "4GB") or `tile` is "auto"
(then against the memory available now): an optimisation's config is checked before the run
(check_config, refused in one line naming the --size that would fit); a trained network's
image runs whole when its predicted peak fits, else in the largest tile that does (`auto`;
nst.models.apply.fitted_tile), else is refused in one line. Without them nothing is checked and
`tile` (a side in px, 0 for the whole image) is used as given.

The image is exactly what calling the method directly gives: its run function (the registry
entry's `run`, e.g. nst.optimize.stylize(config, content, style).image for gatys), nst.models.apply.apply_network for johnson (its style is built in:
`style` is ignored) and nst.models.pairs.stylize_pairs for adain and stytr.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.backbones import Backbone
from nst.memory import budget, check_config
from nst.models.apply import apply_network, fitted_tile
from nst.models.external import ExternalConfig, ExternalNet
from nst.models.io import load_model
from nst.models.pairs import stylize_pairs
from nst.models.registry import get_method, model_inputs
from nst.models.uri import local_checkpoint
from nst.perceptual import loss_backbone
from nst.runtime import peak_memory_mb, resolve_device


@dataclass(frozen=True)
class Stylized:
    image: torch.Tensor  # 1x3xHxW in [0, 1], CPU float32
    seconds: float
    peak_memory_mb: float
    tile: int = 0  # the tile side a network ran in, 0: the whole image


@dataclass(frozen=True)
class Network:
    """A network a method involves, as the report names it."""

    role: str  # "loss network" | "encoder"
    backbone: str
    weights: str  # WeightsInfo.identity, e.g. "imagenet:...", "random:seed=0"
    pretrained: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "backbone": self.backbone,
            "weights": self.weights,
            "pretrained": self.pretrained,
        }


@dataclass
class Stylizer:
    """A way to stylise: build it with from_config, from_checkpoint or from_external, then
    call stylise."""

    name: str
    method: str  # a method of nst.models.registry
    device: torch.device
    config: Any = None  # an optimisation method's config
    backbone: Backbone | None = None
    model: nn.Module | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    networks: list[Network] = field(default_factory=list)
    #: a trained network: stylise in tiles of this side (nst.models.tiling), "auto" (module
    #: docstring) or 0: the whole image
    tile: int | str = 0
    #: the memory a call may use (module docstring), e.g. "4GB"; None: unchecked
    max_memory: str | None = None

    @classmethod
    def from_config(
        cls,
        config: Any,
        name: str = "gatys",
        method: str = "gatys",
        *,
        max_memory: str | None = None,
    ) -> Stylizer:
        """An optimisation method's config (gatys: a TransferConfig, strotss: a
        StrotssConfig); its loss network is built once here and reused for every image."""
        backbone = loss_backbone(config)
        info = backbone.weights_info
        net = Network("loss network", config.backbone, info.identity, info.pretrained)
        return cls(
            name,
            method,
            resolve_device(config.device),
            config=config,
            backbone=backbone,
            networks=[net],
            max_memory=max_memory,
        )

    @classmethod
    def from_checkpoint(
        cls,
        spec: str | Path,
        name: str | None = None,
        device: str = "cpu",
        tracking_uri: str | None = None,
        *,
        tile: int | str = 0,
        max_memory: str | None = None,
    ) -> Stylizer:
        """A trained network: a checkpoint file, runs:/RUN_ID/PATH or models:/NAME/VERSION;
        `tile` and `max_memory` as the module docstring says."""
        dev = resolve_device(device)
        with local_checkpoint(spec, tracking_uri) as path:
            model, meta = load_model(path, dev)
        method = str(meta.get("method"))
        return cls(
            name or method,
            method,
            dev,
            model=model,
            meta=meta,
            networks=networks_of(meta),
            tile=tile,
            max_memory=max_memory,
        )

    @classmethod
    def from_external(cls, config: ExternalConfig, name: str = "onnx") -> Stylizer:
        """An external ONNX network (nst.models.external), run under onnxruntime on the CPU."""
        net = ExternalNet(config)
        meta = {"method": "onnx", "config": config.to_dict(), "sha256": net.sha256}
        return cls(name, "onnx", torch.device("cpu"), model=net, meta=meta)  # type: ignore[arg-type]

    @property
    def takes_style(self) -> bool:
        """Takes the style as an input (adain, stytr); johnson has its style built in."""
        return self.model is not None and "style" in model_inputs(self.model)

    def stylize(self, content: torch.Tensor, style: torch.Tensor) -> Stylized:
        """`content` (1x3xHxW in [0, 1]) in `style`'s style, timed and measured (module doc)."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        tile = self._fit(content)
        t0 = time.perf_counter()
        image = self._run(content, style, tile)
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        return Stylized(image.detach().float().cpu(), seconds, peak_memory_mb(self.device), tile)

    def _fit(self, content: torch.Tensor) -> int:
        """The tile side to run in, the memory checked first (module docstring)."""
        checked = self.max_memory is not None or self.tile == "auto"
        if not checked or self.device.type == "cuda":
            return 0 if self.tile == "auto" else int(self.tile)
        h, w = content.shape[-2:]
        if self.config is not None:
            check_config(self.config, self.max_memory, aspect=min(h, w) / max(h, w))
            return 0
        limit, source = budget(self.max_memory)
        return fitted_tile(self.meta, h * w / 1e6, self.tile, limit, source)[0]

    def _run(self, content: torch.Tensor, style: torch.Tensor, tile: int) -> torch.Tensor:
        if self.config is not None:
            run = get_method(self.method).runner()
            return run(self.config, content, style, backbone=self.backbone).image  # type: ignore[no-any-return]
        assert self.model is not None
        if isinstance(self.model, ExternalNet):
            return self.model(content, style if self.takes_style else None)
        if self.takes_style:
            return stylize_pairs(self.model, [content], [style], tile=tile)[0]
        return apply_network(self.model, [content], tile=tile)[0]


def networks_of(meta: dict[str, Any]) -> list[Network]:
    """The loss network and (adain, stytr) the encoder a checkpoint's meta records."""
    config = meta.get("config") or {}
    out = []
    for role, key, field_name in (
        ("loss network", "weights", "backbone"),
        ("encoder", "encoder_weights", "encoder"),
    ):
        weights = str(meta.get(key) or "")
        if weights:
            backbone = str(config.get(field_name, "?"))
            out.append(Network(role, backbone, weights, not weights.startswith("random")))
    return out
