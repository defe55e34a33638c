"""Images as tensors: loading, resizing, tensor <-> image, luma, saving.

Tensors are float RGB in [0, 1], shape 1x3xHxW. The files themselves (safe reading with
Pillow, one-line `ImageError`s, atomic writes) are nst.imagefiles, which needs no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nst.imagefiles import open_rgb, resize_long_side, save_picture

#: ITU-R BT.601 luma weights, Y = 0.299 R + 0.587 G + 0.114 B (also the Y row of NTSC YIQ)
LUMA = (0.299, 0.587, 0.114)


def load_image(path: str | Path, size: int | None = None) -> torch.Tensor:
    """Read an image file as a 1x3xHxW float tensor in [0, 1], optionally resized so that
    its long side is `size` pixels. EXIF orientation is applied; any mode becomes RGB."""
    return to_tensor(resize_long_side(open_rgb(path), size) if size else open_rgb(path))


def to_tensor(img: Image.Image) -> torch.Tensor:
    # one float copy of the image (the division's result is fresh and writable): a 24 MP
    # photo is 288 MB of float32, so every extra copy is felt
    arr = np.asarray(img, dtype=np.float32)
    arr /= 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def to_image(tensor: torch.Tensor) -> Image.Image:
    # one float temporary, scaled, clamped and rounded in place, then 8 bits
    scaled = tensor.detach().float().squeeze(0).mul(255.0).clamp_(0, 255).round_()
    arr = scaled.to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


def resize_tensor(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(hw):
        return x
    return F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True).clamp(
        0, 1
    )


def pad_to_multiple(x: torch.Tensor, multiple: int, min_side: int = 0) -> torch.Tensor:
    """`x` padded at the bottom and right to sides max(min_side, the next multiple of
    `multiple`): reflection where the padding is shorter than the side, else replication
    (a network's stride or patch size; cropped back after the network)."""
    h, w = x.shape[-2:]
    ph = max(min_side, -(-h // multiple) * multiple) - h
    pw = max(min_side, -(-w // multiple) * multiple) - w
    if not (ph or pw):
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def fit_size(
    image: torch.Tensor, size: int, multiple: int = 1, minimum: int | None = None
) -> torch.Tensor:
    """Resize so the long side is about `size`, aspect kept: each side rounded to a multiple of
    `multiple` and at least `minimum` pixels (default: `multiple`)."""
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    floor = multiple if minimum is None else minimum
    hw = tuple(max(floor, round(s * scale / multiple) * multiple) for s in (h, w))
    return resize_tensor(image, hw)  # type: ignore[arg-type]


def luma(image: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B (LUMA) of an Nx3xHxW image, as Nx1xHxW."""
    w = torch.tensor(LUMA, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    return (image * w).sum(dim=1, keepdim=True)


def save_image(
    image: torch.Tensor | Image.Image,
    path: str | Path,
    protect: tuple[str | Path, ...] = (),
) -> Path:
    """Write a 1x3xHxW tensor in [0, 1] (or a PIL image) atomically: nst.imagefiles.save_picture."""
    return save_picture(
        to_image(image) if isinstance(image, torch.Tensor) else image, path, protect
    )
