"""Tables of images in the report: content x style grids, best results per setting.

A figure of thumbnails (nst.report.figures renders it): each cell an image file, an array, a
text or nothing, with column titles, row labels and, under a cell, where its image came from.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from nst.report import figures as figs

THUMB = 160  # long side of an image-grid cell, pixels


def _thumbnail(path: Path | np.ndarray | None) -> np.ndarray | None:
    if path is None or isinstance(path, np.ndarray):
        return path
    try:
        with Image.open(path) as opened:
            img = opened.convert("RGB")
        img.thumbnail((THUMB, THUMB))
        return np.asarray(img)
    except OSError:
        return None


def image_grid(
    cells: Sequence[Sequence[Path | np.ndarray | str | None]],
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    name: str,
    caption: str,
    empty: str = "missing",
    cell_labels: Sequence[Sequence[str]] = (),
) -> figs.Plot | None:
    """A table of images (files or HxWx3 arrays; rows x columns). A text cell shows its text
    ("" is a blank, unframed corner); a missing image (None, or an unreadable file) says
    `empty`; `cell_labels[r][c]` is written under its cell (where the image came from)."""
    if not cells or not any(p is not None for row in cells for p in row):
        return None
    nrows, ncols = len(cells), max(len(r) for r in cells)
    fig, axes = figs._figure(ncols=ncols, nrows=nrows, width=1.9, height=1.9)
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            cell = cells[r][c] if c < len(cells[r]) else None
            image = None if isinstance(cell, str) else _thumbnail(cell)
            if isinstance(cell, str) and not cell:  # a header corner: no frame, only labels
                ax.set_facecolor("none")
                for spine in ax.spines.values():
                    spine.set_visible(False)
            elif image is None:
                ax.text(
                    0.5,
                    0.5,
                    cell if isinstance(cell, str) else empty,
                    ha="center",
                    va="center",
                    color="0.5",
                    transform=ax.transAxes,
                )
            else:
                ax.imshow(image, interpolation="nearest")
            if r == 0:
                ax.set_title(_wrap(col_labels[c]), fontsize=9)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
            below = cell_labels[r][c] if r < len(cell_labels) and c < len(cell_labels[r]) else ""
            if below:
                ax.set_xlabel(_wrap(below), fontsize=7)
    return figs.Plot(name, figs._render(fig), caption)


def _wrap(label: str, width: int = 22) -> str:
    """A column label in lines that fit over a 1.9-inch cell: after `=` first (a long
    `backbone=efficientnet_lite0 (#1)` overlapped its neighbours), then at spaces and after
    the commas of a layer list."""
    if len(label) <= width:
        return label
    parts = label.replace("=", "=\n").replace(",", ", ").split("\n")
    lines = (line for part in parts for line in textwrap.wrap(part, width) or [""])
    return "\n".join(line.replace(", ", ",") for line in lines)
