"""One network for a bank of styles: conditional instance normalisation (Dumoulin, Shlens &
Kudlur, ICLR 2017, "A learned representation for artistic style").

The network is Johnson et al.'s (nst.models.johnson) with every instance norm conditional on
the style: each of the S styles has its own per-channel scale and shift, the convolutions are
shared by all of them,

    CIN(x, s) = gamma_s * (x - mu(x)) / sigma(x) + beta_s            (the paper's eq. 5)

and a mixture w of the styles (w >= 0, sum 1) uses gamma = sum_s w_s gamma_s and
beta = sum_s w_s beta_s: the paper's interpolation between styles (its figure 7). Training
(nst.train.perceptual.StyleBankLoss) runs each step in one style drawn uniformly and judges it
against that style's Gram targets, so S styles are one training instead of S.

The bank is named: `styles` is the list of the style images' names (their paths under the
training's style folder), so a checkpoint rebuilds the network with its names and `nst apply
--style NAME` picks one (or `--style A B --style-weights 0.7,0.3` mixes). `select` sets the
style forward uses when it is given none (the first, initially): what apply, tiling and
export run.

Deviations: magenta's released code (image_stylization_train) draws a style per batch item;
nst draws one per step, which the perceptual loss of a batch needs (one set of style targets)
and which gives each step the same expected gradient. Its defaults (VGG16, content relu3_x,
16 crops of 256 px, 40,000 steps of lr 1e-3) are the starting point of nst's `full` profile,
where the johnson entry's loss layers are used instead (Johnson's, relu2_2 for content).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nst import NstError
from nst.models.johnson import JohnsonNet
from nst.models.registry import register

#: a style of the bank: its index, its name, or its name's file stem
StyleRef = int | str


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with a scale and shift per style, mixed by `mixture` (N x S or 1 x S),
    which the network sets before each forward (module docstring)."""

    def __init__(self, channels: int, styles: int):
        super().__init__()
        # the normalisation itself, not affine: nst.models.tiling freezes its statistics
        self.norm = nn.InstanceNorm2d(channels)
        self.weight = nn.Parameter(torch.ones(styles, channels))
        self.bias = nn.Parameter(torch.zeros(styles, channels))
        self.mixture = torch.eye(styles)[:1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.mixture.to(device=x.device, dtype=self.weight.dtype)
        gamma, beta = w @ self.weight, w @ self.bias
        return self.norm(x) * gamma[..., None, None] + beta[..., None, None]


class StyleBankNet(JohnsonNet):
    """Johnson's network with conditional instance norms over the named `styles`."""

    method = "cin"

    def __init__(
        self, width: int = 32, styles: Sequence[str] = ("style",), output: str = "sigmoid"
    ):
        if not styles:
            raise NstError("a cin network needs at least one style")
        self.style_names = list(styles)
        n = len(self.style_names)
        super().__init__(width, output, norm=lambda c: ConditionalInstanceNorm2d(c, n))
        self.selected = torch.eye(n)[:1]

    @property
    def options(self) -> dict[str, int | str | list[str]]:  # type: ignore[override]
        """The factory options that rebuild this network: get_model("cin", **options)."""
        return {"width": self.width, "styles": list(self.style_names), "output": self.output}

    def index(self, ref: StyleRef) -> int:
        """The bank index of a style given by index, name or the name's file stem."""
        names = self.style_names
        if isinstance(ref, int) or str(ref).isdigit():
            if 0 <= int(ref) < len(names):
                return int(ref)
        else:
            given = {str(ref), str(ref).rsplit("/", 1)[-1]}  # a path to the image: its name
            for i, name in enumerate(names):
                base = name.rsplit("/", 1)[-1]
                if given & {name, base, base.rsplit(".", 1)[0]}:
                    return i
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        raise NstError(
            f"style {ref!r} is not in this network's bank: {shown} (or 0..{len(names) - 1})"
        )

    def mixture(
        self, styles: Sequence[StyleRef] | StyleRef, weights: Sequence[float] | None = None
    ) -> torch.Tensor:
        """The 1 x S mixture of `styles` (one, or several weighted by `weights`, normalised)."""
        refs = [styles] if isinstance(styles, (int, str)) else list(styles)
        w = list(weights) if weights else [1.0] * len(refs)
        if len(w) != len(refs) or any(x < 0 for x in w) or sum(w) <= 0:
            raise NstError(
                f"style weights {w}: one non-negative weight per style ({len(refs)}), "
                "with a positive sum"
            )
        out = torch.zeros(1, len(self.style_names))
        for ref, x in zip(refs, w, strict=True):
            out[0, self.index(ref)] += x / sum(w)
        return out

    def select(
        self, styles: Sequence[StyleRef] | StyleRef, weights: Sequence[float] | None = None
    ) -> StyleBankNet:
        """Make `styles` (mixed by `weights`) the style forward uses when given none."""
        self.selected = self.mixture(styles, weights)
        return self

    def forward(
        self, x: torch.Tensor, style: StyleRef | torch.Tensor | None = None
    ) -> torch.Tensor:
        """`x` stylised in `style` (an index, a name, or an N x S mixture), else the selected."""
        if style is None:
            w = self.selected
        elif isinstance(style, torch.Tensor):
            w = style
        else:
            w = self.mixture(style)
        for m in self.modules():
            if isinstance(m, ConditionalInstanceNorm2d):
                m.mixture = w
        return super().forward(x)


@register("cin")
def cin(
    width: int = 32, styles: Sequence[str] = ("style",), output: str = "sigmoid"
) -> StyleBankNet:
    return StyleBankNet(width=width, styles=styles, output=output)
