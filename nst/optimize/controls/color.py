"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman, 2016, "Preserving color in
neural artistic style transfer").

Style transfer copies the style image's colours along with its strokes. Two remedies:

* Luminance-only transfer. Work in YIQ, the NTSC luma-chroma space,

      [Y]   [0.299   0.587   0.114] [R]
      [I] = [0.596  -0.274  -0.322] [G]
      [Q]   [0.211  -0.523   0.312] [B]

  transfer style between the luminance images only (Y replicated to three channels, the style's
  luminance first matched to the content's mean and spread: Y_s' = sigma_c / sigma_s (Y_s - mu_s) +
  mu_c), then combine the result's Y with the content's I and Q. The chroma of the output is the
  content's, exactly (see `combine_luma_chroma` for how Y is kept inside the RGB gamut).

* Colour histogram matching. Remap each RGB channel of the style image so that its histogram
  equals the content's (classic CDF matching, skimage.exposure.match_histograms) before the
  transfer, or of the result after it.

All functions take and return 1x3xHxW float tensors in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.exposure import match_histograms as _sk_match_histograms

from nst.images import LUMA

#: The RGB -> YIQ matrix (FCC NTSC), whose Y row is the luma of nst.images; its inverse maps back.
RGB_TO_YIQ = torch.tensor(
    [list(LUMA), [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=torch.float64
)
YIQ_TO_RGB = torch.linalg.inv(RGB_TO_YIQ)

COLOR_MODES = ("none", "luminance", "histogram", "histogram_post")


def _apply(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", matrix.to(x), x)


def rgb_to_yiq(x: torch.Tensor) -> torch.Tensor:
    """(Y, I, Q) = M (R, G, B) per pixel; Y in [0, 1], I and Q signed."""
    return _apply(RGB_TO_YIQ, x)


def yiq_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(R, G, B) = M^-1 (Y, I, Q) per pixel; not clamped."""
    return _apply(YIQ_TO_RGB, x)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B (nst.images.LUMA), as an Nx1xHxW tensor."""
    return rgb_to_yiq(x)[:, :1]


def grey(x: torch.Tensor) -> torch.Tensor:
    """The luminance image as RGB (Y in all three channels), what the backbone is shown."""
    return luminance(x).expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Grey style image whose luminance has the content's mean and standard deviation:
    Y_s' = sigma_c / sigma_s * (Y_s - mu_s) + mu_c (Gatys et al. 2016, section 2.2)."""
    ys, yc = luminance(style), luminance(content)
    matched = (ys - ys.mean()) * (yc.std() / (ys.std() + eps)) + yc.mean()
    return matched.expand(-1, 3, -1, -1).clamp(0, 1).contiguous()


def combine_luma_chroma(luma_from: torch.Tensor, chroma_from: torch.Tensor) -> torch.Tensor:
    """RGB image with the luminance of `luma_from` and the I, Q chroma of `chroma_from`.

    Each RGB channel is Y + o_k(I, Q) for a fixed chroma offset o_k, so the output stays in
    [0, 1]^3 exactly when max_k(-o_k) <= Y <= min_k(1 - o_k). We clamp Y to that interval
    (never empty: the chroma source's own Y lies in it) instead of clamping RGB, which would
    change the chroma of out-of-gamut pixels.
    """
    y = luminance(luma_from)
    iq = rgb_to_yiq(chroma_from)[:, 1:]
    offsets = yiq_to_rgb(torch.cat([torch.zeros_like(y), iq], dim=1))  # o_k = RGB at Y = 0
    lo = (-offsets).amax(dim=1, keepdim=True)
    hi = (1.0 - offsets).amin(dim=1, keepdim=True)
    y = torch.maximum(torch.minimum(y, hi), lo)
    return offsets + y  # in [0, 1] up to float rounding


def match_histograms(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """`source` with each RGB channel's histogram remapped to `reference`'s (CDF matching:
    v -> F_ref^-1(F_src(v))). Sizes may differ."""
    src = source.detach().float().cpu()[0].permute(1, 2, 0).numpy().astype(np.float64)
    ref = reference.detach().float().cpu()[0].permute(1, 2, 0).numpy().astype(np.float64)
    out = _sk_match_histograms(src, ref, channel_axis=-1)
    return torch.from_numpy(np.clip(out, 0, 1)).permute(2, 0, 1).unsqueeze(0).to(source)


def histogram_distance(a: torch.Tensor, b: torch.Tensor, bins: int = 32) -> float:
    """Mean over RGB channels of the L1 distance between normalised channel histograms, in [0, 2]:
    d = 1/3 sum_c sum_k |h_a^c(k) - h_b^c(k)|. A simple measure for tests and benchmarks."""
    total = 0.0
    for ch in range(3):
        ha = torch.histc(a[:, ch].float(), bins=bins, min=0.0, max=1.0)
        hb = torch.histc(b[:, ch].float(), bins=bins, min=0.0, max=1.0)
        total += float((ha / ha.sum() - hb / hb.sum()).abs().sum())
    return total / 3.0


class ColorControl:
    """The pre- and post-processing that `stylize` applies for `config.color`.

    prepare(): what the optimiser sees (grey images for luminance, recoloured style for histogram);
    finish(): what the user gets (content chroma put back, or the result's colours matched).
    """

    def __init__(self, mode: str, content: torch.Tensor):
        if mode not in COLOR_MODES:
            raise ValueError(f"unknown colour mode {mode!r}; use one of {', '.join(COLOR_MODES)}")
        self.mode, self.content = mode, content

    def content_image(self) -> torch.Tensor:
        return grey(self.content) if self.mode == "luminance" else self.content

    def style_image(self, style: torch.Tensor) -> torch.Tensor:
        if self.mode == "luminance":
            return match_luminance(style, self.content)
        if self.mode == "histogram":
            return match_histograms(style, self.content)
        return style

    def init_image(self, init: torch.Tensor) -> torch.Tensor:
        return grey(init) if self.mode == "luminance" else init

    def finish(self, image: torch.Tensor) -> torch.Tensor:
        if self.mode == "luminance":
            return combine_luma_chroma(image, self.content).clamp(0, 1)
        if self.mode == "histogram_post":
            return match_histograms(image, self.content)
        return image
