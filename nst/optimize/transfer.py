"""`stylize`: one content image in the style of one or more style images, by optimising its pixels.

A plain config runs the optimisation loop once at config.size (nst.optimize.loop); a config with
a pyramid runs it once per size, each stage starting from the last (nst.optimize.pyramid).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.optimize.loop import Callback, Result, stylize_stage
from nst.optimize.pyramid import stylize_pyramid


def stylize(
    config: TransferConfig,
    content: torch.Tensor,
    style: torch.Tensor | Sequence[torch.Tensor],
    callbacks: Sequence[Callback] = (),
    backbone: Backbone | None = None,
    init: torch.Tensor | None = None,
) -> Result:
    """Optimise an image that has `content`'s content and `style`'s style.

    content, style: 1x3xHxW tensors in [0, 1] (any size; resized to config.size); style may be
    several tensors, mixed by config.style_blend. backbone: pass one to reuse it across runs;
    built from the config otherwise. init: start from this image instead of config.init.
    """
    if config.pyramid:
        return stylize_pyramid(config, content, style, callbacks, backbone, init=init)
    return stylize_stage(config, content, style, callbacks, backbone, init=init)
