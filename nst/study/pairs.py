"""Which (content, style) pairs an optimisation study's trials stylise: distinct pairs drawn
with a seed from the validation part of the data's split (never a test image), spread so that
two pairs are two photos and two styles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from nst import NstError
from nst.study.faults import readable_data
from nst.study.spec import ExperimentSpec


@dataclass(frozen=True)
class Pair:
    content: Path
    style: Path


def choose_pairs(
    spec: ExperimentSpec, data: Path | None, cache: Path, skipped: list[str] | None = None
) -> list[Pair]:
    """`pairs.count` distinct content x style pairs, drawn with `pairs.seed` from the
    validation photos and styles of the data directory's split (nst.data.split: a study never
    sees a test image), or of the embedded sample when there is no data (spread_pairs).
    Unreadable images are skipped and appended to `skipped`."""
    from nst.data.fetch import embedded_sample
    from nst.data.lock import list_images
    from nst.data.split import split_data

    skipped = [] if skipped is None else skipped
    folder = Path(data) if data and Path(data).is_dir() else None
    if folder is None or not any(list_images(folder)):
        embedded_sample(cache)
        folder = cache
    split = split_data(folder)
    good = readable_data(folder, skipped)
    contents = [p for p in split.content.validation if p in good]
    styles = [p for p in split.style.validation if p in good]
    if not contents or not styles:
        raise NstError(
            f"{folder}: no readable validation photo or style left after skipping "
            f"{len(skipped)} unreadable ones; run `nst fetch` again"
        )
    return spread_pairs(contents, styles, int(spec.pairs["count"]), int(spec.pairs["seed"]))


def spread_pairs(contents: list[Path], styles: list[Path], count: int, seed: int) -> list[Pair]:
    """`count` distinct pairs of the content x style grid, in a seeded order, each new pair
    taking a photo and a style not drawn yet while there are any (then a new round starts):
    two pairs are two photos and two styles, so a study's mean spans the sample instead of
    one photo's luck (a plain draw of 2 of the 36 embedded pairs gave the same photo twice)."""
    grid = [Pair(c, s) for c in contents for s in styles]
    if count >= len(grid):
        return grid
    random.Random(seed).shuffle(grid)
    chosen: list[Pair] = []
    while len(chosen) < count:  # one round: one pass over the pairs not drawn yet
        seen: set[Path] = set()
        rest = []
        for p in grid:
            if len(chosen) < count and not {p.content, p.style} & seen:
                chosen.append(p)
                seen |= {p.content, p.style}
            else:
                rest.append(p)
        grid = rest
    return chosen
