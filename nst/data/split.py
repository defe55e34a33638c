"""One split of a data folder's photos and styles into train / validation / test.

Every number nst reports is measured on images that nothing chose a setting on:

    train       what a training study's trials train on (photos; the arbitrary-style
                methods' styles)
    validation  what studies select settings on: optimisation studies draw their pairs here,
                training studies validate here (johnson's study trains on the first
                validation style)
    test        what the methods comparison reports: its photos are never trained on and
                its styles never seen by a study or by an arbitrary-style method's training
                (johnson trains one network per test style: a per-style network is defined
                by its style, and is still tested on photos it never saw). The comparison's
                networks train on train + validation: the settings were selected on
                validation, and refitting on both once they are is the usual last step

The rule, the same for every caller (nst.study and nst.methods read one split of a folder):
each kind's images are ordered by sha256(f"{seed}:{kind}:{file sha256}") -- a seeded order
fixed by the images' bytes, not their names or the order they were fetched in -- and the
first round(n x TEST) are test, the next round(n x VALIDATION) validation, the rest train,
each part at least one image (so a kind needs at least 3). SPLIT_SEED and FRACTIONS are the
one place to change it; `facts` records the rule and every image's part and hash, for
summary.json and the report.

Too few images is an NstError naming the minimum and the data option to change; there is no
fallback that would let a test image leak into training or selection.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nst import NstError
from nst.data.lock import list_images
from nst.provenance import sha256_file

SPLIT_SEED = 0
#: kind -> (validation, test) fractions; styles keep half for the arbitrary-style methods'
#: training, which needs many styles (on 4 styles AdaIN's decoder rendered every result in
#: one style's colours)
FRACTIONS = {"content": (1 / 3, 1 / 3), "style": (0.25, 0.25)}
PARTS = ("train", "validation", "test")
#: the data option that sets how many images of a kind `nst fetch` writes
DATA_OPTION = {
    "content": "data.content in params.yaml (`nst fetch --content N`)",
    "style": "data.styles in params.yaml (`nst fetch --styles N`)",
}
NOUN = {"content": "photos", "style": "styles"}


@dataclass(frozen=True)
class Parts:
    """One kind's images by part, each list in the split's order."""

    train: list[Path]
    validation: list[Path]
    test: list[Path]

    def of(self, part: str) -> list[Path]:
        return {"train": self.train, "validation": self.validation, "test": self.test}[part]


@dataclass(frozen=True)
class DataSplit:
    data: Path
    seed: int
    content: Parts
    style: Parts
    sha256: dict[Path, str]

    def kind(self, kind: str) -> Parts:
        return self.content if kind == "content" else self.style

    def take(self, kind: str, part: str, count: int, who: str) -> list[Path]:
        """The first `count` images of a part, or one line saying the data is too small."""
        have = self.kind(kind).of(part)
        if count > len(have):
            val, test = FRACTIONS[kind]
            share = {"test": test, "validation": val, "train": 1 - val - test}[part]
            total = sum(len(self.kind(kind).of(p)) for p in PARTS)
            need = max(3, math.ceil(count / share))
            raise NstError(
                f"{self.data / kind}: {total} {NOUN[kind]}, whose {part} split holds "
                f"{len(have)}, but {who} uses {count}; fetch at least {need} "
                f"({DATA_OPTION[kind]}) or use fewer"
            )
        return have[:count]

    def facts(self) -> dict[str, Any]:
        """The rule, each part's size and every image's part and hash (summary.json, the
        report)."""
        kinds = ("content", "style")
        return {
            "seed": self.seed,
            "rule": RULE,
            "counts": {k: {part: len(self.kind(k).of(part)) for part in PARTS} for k in kinds},
            "images": {
                k: {
                    part: [
                        {"name": p.name, "sha256": self.sha256[p]} for p in self.kind(k).of(part)
                    ]
                    for part in PARTS
                }
                for k in kinds
            },
        }


RULE = (
    "images ordered by sha256(seed:kind:file sha256); photos: first third test, next third "
    "validation, rest train; styles: first quarter test, next quarter validation, rest train"
)


def split_data(data: str | Path, seed: int = SPLIT_SEED) -> DataSplit:
    """The split of a data folder's content/ and style/ images (module docstring)."""
    data = Path(data)
    contents, styles = list_images(data)
    hashes: dict[Path, str] = {}
    parts = {}
    for kind, images in (("content", contents), ("style", styles)):
        if len(images) < 3:
            raise NstError(
                f"{data / kind}: {len(images)} {NOUN[kind]}; a train / validation / test split "
                f"needs at least 3: fetch more ({DATA_OPTION[kind]})"
            )
        for p in images:
            hashes[p] = sha256_file(p)
        keys = {p: _key(seed, kind, hashes[p]) for p in images}
        order = sorted(images, key=keys.__getitem__)
        val, test = FRACTIONS[kind]
        n_test = max(1, round(len(order) * test))
        n_val = max(1, round(len(order) * val))
        n_test = min(n_test, len(order) - 2)  # leave one each for validation and train
        n_val = min(n_val, len(order) - n_test - 1)
        parts[kind] = Parts(order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test])
    return DataSplit(data, seed, parts["content"], parts["style"], hashes)


@dataclass(frozen=True)
class Selection:
    """What one caller evaluates and trains on: `contents` x `styles` of one part (test for
    the methods comparison, validation for studies), the training photos, the
    arbitrary-style methods' training styles and the evaluated styles (a style bank's, cin's,
    training styles) as folders of links."""

    part: str
    contents: list[Path]
    styles: list[Path]
    train: Path  # folder of links to the training photos
    train_styles: Path  # folder of links to the training styles
    facts: dict[str, Any]  # for summary.json and the report
    bank: Path  # folder of links to `styles`, in their order


def select(
    data: str | Path, part: str, contents: int, styles: int, root: Path, who: str
) -> Selection:
    """The first `contents` photos and `styles` styles of `part` of data's split, and the
    training folders under root/split/: every part before `part` (validation: train;
    test: train + validation, the usual refit once the settings were selected) (`who` names
    the caller in a too-small error)."""
    split = split_data(data)
    chosen = (split.take("content", part, contents, who), split.take("style", part, styles, who))
    before = PARTS[: PARTS.index(part)]
    photos = [p for b in before for p in split.content.of(b)]
    train = link_folder(root / "split" / "train", photos)
    train_styles = link_folder(
        root / "split" / "styles", [p for b in before for p in split.style.of(b)]
    )
    facts = {
        "part": part,
        "trained_on": list(before),
        "contents": [p.name for p in chosen[0]],
        "styles": [p.name for p in chosen[1]],
        **split.facts(),
    }
    bank = link_folder(root / "split" / "bank", chosen[1])
    return Selection(part, chosen[0], chosen[1], train, train_styles, facts, bank)


def _key(seed: int, kind: str, sha: str) -> str:
    return hashlib.sha256(f"{seed}:{kind}:{sha}".encode()).hexdigest()


def link_folder(folder: Path, files: list[Path]) -> Path:
    """`folder` holds exactly one symlink per file (named <index>_<name>, so names never
    clash): the training photos or styles of a split as a folder the training loop reads."""
    folder.mkdir(parents=True, exist_ok=True)
    want = {f"{i:04d}_{p.name}": p.resolve() for i, p in enumerate(files)}
    for old in folder.iterdir():
        if old.name not in want or not old.is_symlink() or old.resolve() != want[old.name]:
            old.unlink()
    for name, target in want.items():
        if not (folder / name).is_symlink():
            (folder / name).symlink_to(target)
    return folder
