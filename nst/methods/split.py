"""The held-out split: which photos a comparison evaluates and which it trains on.

The first `contents` photos of <data>/content, sorted by path, are evaluated and never trained
on; <root>/split/train/ links the rest (the training photos). The first `styles` images of
<data>/style are the evaluation styles; arbitrary-style methods (adain, stytr) train on the
other styles (<root>/split/styles/), or on all of them when no other is left (`facts`
says which). The methods comparison (nst.methods.run) and the training studies (nst.study)
both use it, so a study tunes on exactly the photos the comparison trains on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst import NstError
from nst.train.data import find_images


@dataclass(frozen=True)
class Split:
    contents: list[Path]  # evaluated, never trained on
    styles: list[Path]  # evaluated styles (johnson: one network each)
    train: Path  # folder of links to the training photos
    train_styles: Path  # folder of links to the arbitrary-style methods' training styles
    facts: dict[str, Any]  # for summary.json and the report


def held_out_split(data: Path, root: Path, contents: int, styles: int, train: bool = True) -> Split:
    """The split of `data` (module docstring), its training folders under root/split/.
    train=True needs at least one training photo beyond the `contents` evaluated ones."""
    photos, images = find_images(data / "content"), find_images(data / "style")
    need = contents + (1 if train else 0)
    if len(photos) < need:
        raise NstError(
            f"{data / 'content'} has {len(photos)} photos: the comparison evaluates "
            f"{contents} and needs at least one more to train on; lower pairs.content"
        )
    if len(images) < styles:
        raise NstError(f"{data / 'style'} has {len(images)} styles, pairs.styles is {styles}")
    eval_styles, rest = images[:styles], images[styles:]
    train_dir, style_dir = root / "split" / "train", root / "split" / "styles"
    _links(train_dir, photos[contents:])
    _links(style_dir, rest or eval_styles)
    facts = {
        "eval_contents": [p.name for p in photos[:contents]],
        "eval_styles": [p.name for p in eval_styles],
        "train_contents": len(photos) - contents,
        "arbitrary_styles": "held-out (the other styles)" if rest
        else "the evaluation styles (no other style in the data)",
    }  # fmt: skip
    return Split(photos[:contents], eval_styles, train_dir, style_dir, facts)


def _links(folder: Path, files: list[Path]) -> None:
    """`folder` holds exactly one symlink per file (named <index>_<name>, so names never clash)."""
    folder.mkdir(parents=True, exist_ok=True)
    want = {f"{i:04d}_{p.name}": p.resolve() for i, p in enumerate(files)}
    for old in folder.iterdir():
        if old.name not in want or not old.is_symlink() or old.resolve() != want[old.name]:
            old.unlink()
    for name, target in want.items():
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
