"""The training losses, one registry entry each: a method's entry names its loss (Method.loss).

A training loss is built once per run, `Loss.build(config, net, device, style)` (`style`: the
style image of a per-style method, None for methods that take the style as an input), and
called once per step as `loss(net, content, style) -> (output, terms)`: it runs the network
itself (a per-style network on the content, an arbitrary-style one on the pair, with the extra
outputs its loss needs), so the training loop and validation never ask which kind of network
they hold. `terms` are named, the total last; each is a mean over the batch items, so
DistributedDataParallel's gradient averaging gives the whole batch's gradient.

    perceptual  Johnson et al. 2016 (nst.train.perceptual)
    style_bank  Dumoulin et al. 2017: the perceptual loss of one style of a bank per step
                (nst.train.perceptual.StyleBankLoss)
    adain       Huang & Belongie 2017, content at the AdaIN target + mean/std style
                (nst.train.arbitrary)
    stytr       Deng et al. 2022, content + style + two identity losses (nst.train.arbitrary)

Another package adds losses through the entry-point group nst.losses (nst.registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from nst.registry import Registry

if TYPE_CHECKING:
    import torch
    from torch import nn

    from nst.backbones.base import Backbone
    from nst.train.config import TrainConfig


class Loss(Protocol):
    """What the training loop asks of a loss (module docstring)."""

    terms: tuple[str, ...]
    backbone: Backbone  # the loss network (its weights identity is recorded with the run)

    @classmethod
    def build(
        cls,
        config: TrainConfig,
        net: nn.Module,
        device: torch.device,
        style: torch.Tensor | None,
    ) -> Loss: ...

    def __call__(
        self, net: Any, content: torch.Tensor, style: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...


#: name -> a class following `Loss` (Any: a protocol's classmethod and class attributes do not
#: type-check against concrete classes)
LOSSES: Registry[Any] = Registry(
    "loss",
    {
        "nst.train.perceptual": ("perceptual", "style_bank"),
        "nst.train.arbitrary": ("adain", "stytr"),
    },
)
