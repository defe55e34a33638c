"""The losses of arbitrary-style training (adain, stytr) and their (content, style) streams.

Both streams are nst.train.data.ContentStream (one source of truth for seeded shuffling,
random crops, the rank split, unreadable files and the resumable position): the content
photos from `data`, the style images from `styles`, the style stream seeded with
seed + STYLE_SEED so its shuffles and crops are independent of the content's. Step k pairs the
k-th content batch with the k-th style batch. With mu, sigma the per-channel mean and
standard deviation over positions (nst.losses.mean_std), phi_l the loss network's layer
l, and sums over layers as in the papers' code:

    L_ms(a, b)  = sum_l ||mu(phi_l a) - mu(phi_l b)||^2 + ||sigma(phi_l a) - sigma(phi_l b)||^2
                  (each squared norm a mean over the batch and channels: mse_loss)

adain (Huang & Belongie 2017, eq. 11-13): t = AdaIN(f(c), f(s)), output g(t),

    L_content = mse(f(g(t)), t)                       at the encoder layer
    L_style   = L_ms(g(t), s) over style_layers       (relu1_1..relu4_1)
    L         = alpha * L_content + beta * L_style    (alpha 1, beta = lambda = 10)

stytr (Deng et al. 2022, the released code's losses): output I_cs, identities I_cc = T(c, c),
I_ss = T(s, s), and norm(x) = (x - mu(x)) / sigma(x) per channel,

    L_content   = sum_{l in content_layers} mse(norm(phi_l I_cs), norm(phi_l c))   (relu4_1, relu5_1)
    L_style     = L_ms(I_cs, s) over style_layers                                 (relu1_1..relu5_1)
    L_identity1 = mse(I_cc, c) + mse(I_ss, s)                                     (pixels)
    L_identity2 = sum_{l in style_layers} mse(phi_l I_cc, phi_l c) + mse(phi_l I_ss, phi_l s)
    L           = alpha L_content + beta L_style + identity1 L_identity1 + identity2 L_identity2
                  (7, 10, 70, 1)

Every term is a mean over batch items, so DDP's gradient averaging holds as for johnson.
"""

from __future__ import annotations

import typing
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nst.backbones import get_backbone
from nst.backbones.base import Backbone
from nst.losses import mean_std, moment_loss
from nst.train.config import TrainConfig
from nst.train.data import ContentStream
from nst.train.losses import LOSSES

#: the style stream's seed is seed + STYLE_SEED
STYLE_SEED = 1_000_003
ADAIN_TERMS = ("content", "style", "total")
STYTR_TERMS = ("content", "style", "identity1", "identity2", "total")


def style_stream(config: TrainConfig, rank: int, world_size: int, warn: bool) -> ContentStream:
    return ContentStream(
        config.styles,
        config.size,
        config.batch_size,
        config.seed + STYLE_SEED,
        rank,
        world_size,
        warn=warn,
        what="style",
        resize=config.resize,
    )


def normalised(f: torch.Tensor) -> torch.Tensor:
    mu, sigma = mean_std(f.float())
    return (f.float() - mu) / sigma


class PairLoss:
    """A loss of an arbitrary-style network: runs it on the pair with its extra outputs."""

    terms: tuple[str, ...] = ()

    def __call__(
        self, net: Any, content: torch.Tensor, style: torch.Tensor | None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        assert style is not None, "an arbitrary-style network trains on (content, style) pairs"
        out = net(content, style, extras=True)
        return out["output"], self.terms_of(out, content, style)

    def terms_of(
        self, out: dict[str, torch.Tensor], content: torch.Tensor, style: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError


@LOSSES.register("adain")
class AdaINLoss(PairLoss):
    """alpha * content (at the AdaIN target) + beta * mean/std style (module docstring)."""

    terms = ADAIN_TERMS

    def __init__(self, config: TrainConfig, net: Any, backbone: Backbone):
        backbone.check_layers(config.style_layers)
        self.config, self.net, self.backbone = config, net, backbone

    @classmethod
    def build(
        cls, config: TrainConfig, net: nn.Module, device: torch.device, style: Any = None
    ) -> AdaINLoss:
        """On the network's own (frozen, truncated) encoder when `backbone` names it with the
        same weights and has the layers, else on a new registered backbone."""
        enc = typing.cast(Any, net).encoder
        reuse = (
            config.backbone == config.encoder
            and config.weights == config.encoder_weights
            and all(k in enc.layer_names for k in config.style_layers)
        )
        backbone = enc if reuse else get_backbone(config.backbone, weights=config.weights)
        return cls(config, net, backbone.to(device))

    def terms_of(
        self, out: dict[str, torch.Tensor], content: torch.Tensor, style: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        c, layers = self.config, self.config.style_layers
        y, t = out["output"], out["target"]
        lc = F.mse_loss(self.net.encode(self.net.pad(y)).float(), t.float())
        with torch.no_grad():
            fs = self.backbone.features(style, layers)
        fy = self.backbone.features(y, layers)
        ls = sum((moment_loss(fy[k], fs[k]) for k in layers), torch.zeros((), device=y.device))
        return {"content": lc, "style": ls, "total": c.alpha * lc + c.beta * ls}


@LOSSES.register("stytr")
class StyTrLoss(PairLoss):
    """StyTr2's content, style and two identity losses (module docstring)."""

    terms = STYTR_TERMS

    def __init__(self, config: TrainConfig, backbone: Backbone):
        backbone.check_layers(config.content_layers + config.style_layers)
        self.config, self.backbone = config, backbone
        self.layers = tuple(dict.fromkeys(config.content_layers + config.style_layers))

    @classmethod
    def build(
        cls, config: TrainConfig, net: nn.Module, device: torch.device, style: Any = None
    ) -> StyTrLoss:
        return cls(config, get_backbone(config.backbone, weights=config.weights).to(device))

    def terms_of(
        self, out: dict[str, torch.Tensor], content: torch.Tensor, style: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        c, n = self.config, content.shape[0]
        with torch.no_grad():
            ft = self.backbone.features(torch.cat([content, style]), self.layers)
        images = torch.cat([out["output"], out["identity_c"], out["identity_s"]])
        fo = self.backbone.features(images, self.layers)
        zero = torch.zeros((), device=content.device)
        lc = sum(
            (F.mse_loss(normalised(fo[k][:n]), normalised(ft[k][:n])) for k in c.content_layers),
            zero,
        )
        ls = sum((moment_loss(fo[k][:n], ft[k][n:]) for k in c.style_layers), zero)
        id1 = F.mse_loss(out["identity_c"].float(), content.float()) + F.mse_loss(
            out["identity_s"].float(), style.float()
        )
        id2 = sum(
            (
                F.mse_loss(fo[k][n : 2 * n].float(), ft[k][:n].float())
                + F.mse_loss(fo[k][2 * n :].float(), ft[k][n:].float())
                for k in c.style_layers
            ),
            zero,
        )
        total = c.alpha * lc + c.beta * ls + c.identity1 * id1 + c.identity2 * id2
        return {"content": lc, "style": ls, "identity1": id1, "identity2": id2, "total": total}


def parameter_counts(net: nn.Module) -> dict[str, Any]:
    """Trainable (LoRA, decoders) vs frozen (encoders, loss-free) parameters of a network."""
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    lora = sum(p.numel() for n, p in net.named_parameters() if "lora_" in n)
    return {
        "trainable": trainable,
        "frozen": total - trainable,
        "total": total,
        "lora": lora,
        "trainable_share": trainable / total if total else 0.0,
    }


def describe_counts(counts: dict[str, Any]) -> str:
    lora = f", of which LoRA {counts['lora']:,}" if counts["lora"] else ""
    return (
        f"trainable parameters: {counts['trainable']:,} of {counts['total']:,} "
        f"({100 * counts['trainable_share']:.2f}%{lora}); frozen {counts['frozen']:,}"
    )
