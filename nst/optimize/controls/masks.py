"""Content-region masks: where the style may be applied.

A mask m is a grey image resized to the content, m in [0, 1]: white (1) = stylise, black (0) =
keep the content. It acts twice (both, so soft masks give soft transitions):

1. During the optimisation the pixel gradient is masked, grad_x L <- m * grad_x L (a hook on the
   image tensor), so pixels under black never move away from their start; with the default
   content init they stay the content exactly (Adam and SGD take no step on a zero gradient).
2. The output is blended, y = m * x + (1 - m) * c, so masked-out pixels are the content whatever
   the init (noise, style) or optimiser did.

The losses still see the whole image: the style statistics are pushed into the white region
only, because that is the only region that can change.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nst.imagefiles import ImageError
from nst.images import load_image, luma, resize_tensor


def load_mask(path: str | Path, hw: tuple[int, int]) -> torch.Tensor:
    """Read a mask file as a 1x1xHxW tensor in [0, 1] of the given size (luminance of any image)."""
    try:
        rgb = load_image(path)
    except ImageError as err:
        raise ImageError(f"mask {err}") from None
    grey = luma(rgb).clamp(0, 1)
    return resize_tensor(grey, hw)


def mask_gradient(x: torch.Tensor, mask: torch.Tensor) -> None:
    """Register grad <- mask * grad on the leaf tensor x (applies to every later backward)."""
    x.register_hook(lambda grad: grad * mask)


def blend(image: torch.Tensor, content: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """y = m * image + (1 - m) * content."""
    return mask * image + (1.0 - mask) * content
