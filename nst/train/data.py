"""The content stream: photos from any folder, seeded shuffling and random crops, resumable.

The stream is an endless sequence of (epoch, index) positions. Epoch e visits the N usable
photos in the order of perm_e = randperm(N) drawn from a torch.Generator seeded with
seed + e; position (e, i) is the photo perm_e[i], then (e, i + 1), ..., then (e + 1, 0).

Each photo is resized (bilinear) so that its short side is `resize` (default: `size`), then
cropped to size x size at an offset drawn from a generator seeded by sha256(seed, e, i). The
references of AdaIN and StyTr2 resize to 512 and crop 256, so a crop covers half the image's
side and strokes are learned at that scale; Johnson's (pytorch/examples) resizes to the crop
size. nst keeps the aspect ratio (the short side to `resize`), where those references squash
every image to 512 x 512: a square resize stretches landscapes' strokes by their aspect ratio.
Crops are a function of the position alone, so the data position (epoch, index) is the whole
state of the stream: saving and restoring it reproduces every later batch exactly.

Distributed split. One step consumes the global batch of B * W consecutive positions p_0 ..
p_{BW-1} (B = batch_size per process, W = world size); rank r takes p_{r}, p_{r+W}, p_{r+2W},
... (every W-th, B items). The union over ranks is the batch one process with batch size
B * W would take, and every rank advances the position by B * W, so the stream, the crops
and the per-item mean losses (averaged by DistributedDataParallel) are those of that process.

The same class streams the style images of arbitrary-style training (`what="style"`, with
its own seed: nst.train.arbitrary).

Loading ahead (`workers` > 0). A torch DataLoader's worker processes compute the batches
ahead, in pinned memory when the run is on CUDA (so the copy to the device overlaps the
step): batch k after the stream's position is a function of the position and k alone, so the
workers deliver the same tensors, in the same order, as the training process would compute
itself, and the stream's position (what a checkpoint saves) advances as the loop consumes them.
The DataLoader's own seed comes from a generator of its own, so the global RNGs, saved with
checkpoints, draw the same numbers with or without workers.

Unreadable files. Files Pillow cannot identify are dropped when the folder is scanned; a file
that fails to decode later is replaced by the next readable photo of the same permutation
(positions i + 1, i + 2, ...), without advancing the stream. Whether a file decodes does not
depend on the rank or on when it is read, so the replacement is deterministic too. Every
skipped file is counted (`skipped`) and reported with one warning each.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import warnings
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from nst import NstError
from nst.imagefiles import ImageError, open_rgb
from nst.images import to_tensor

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class UnreadableImageWarning(UserWarning):
    """A content photo was skipped because it cannot be read."""


@dataclass(frozen=True)
class Position:
    """Where the stream stands: the next item is photo perm_epoch[index]."""

    epoch: int = 0
    index: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}

    @classmethod
    def from_dict(cls, d: dict[str, int]) -> Position:
        return cls(int(d["epoch"]), int(d["index"]))


def find_images(folder: str | Path) -> list[Path]:
    """Image files under `folder` (recursively, by extension), sorted by path."""
    root = Path(folder)
    if not root.is_dir():
        raise NstError(f"data folder {root}: no such directory")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())


def readable_header(path: Path) -> bool:
    """Pillow identifies the file (header only: cheap enough for a COCO-sized folder)."""
    try:
        with Image.open(path) as img:
            return img.width > 0 and img.height > 0
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False


def crop_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed from sha256 of (seed, epoch, index), the same in every process."""
    digest = hashlib.sha256(f"{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def resized(path: Path, side: int) -> Image.Image:
    """The image with its short side resized to `side` (bilinear), each side at least `side`."""
    img = open_rgb(path)
    scale = side / min(img.size)
    new = (max(side, round(img.width * scale)), max(side, round(img.height * scale)))
    return img if new == img.size else img.resize(new, Image.Resampling.BILINEAR)


def square_crop(path: Path, size: int, seed: int, resize: int) -> torch.Tensor:
    """3 x size x size: the photo with its short side resized to `resize`, randomly cropped."""
    img = resized(path, resize)
    gen = torch.Generator().manual_seed(seed)
    x = int(torch.randint(0, img.width - size + 1, (1,), generator=gen))
    y = int(torch.randint(0, img.height - size + 1, (1,), generator=gen))
    return to_tensor(img.crop((x, y, x + size, y + size)))[0]


class ContentStream:
    """Batches of content crops (module docstring); `position` is saved with checkpoints."""

    def __init__(
        self,
        folder: str | Path,
        size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        warn: bool = True,
        what: str = "content",
        resize: int = 0,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.folder, self.size, self.batch_size, self.seed = Path(folder), size, batch_size, seed
        self.rank, self.world_size, self.warn, self.what = rank, world_size, warn, what
        self.resize = resize or size
        found = find_images(folder)
        self.skipped: list[Path] = []
        self.paths = []
        for path in found:
            if readable_header(path):
                self.paths.append(path)
            else:
                self._skip(path, f"{path}: not an image Pillow can read")
        if not self.paths:
            extra = f" ({len(self.skipped)} unreadable)" if self.skipped else ""
            raise NstError(
                f"{what} folder {self.folder}: no readable images{extra}; expected "
                f"{', '.join(EXTENSIONS)} files (e.g. `nst fetch` writes data/{what})"
            )
        self.position = Position()
        self._bad: set[Path] = set()
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def permutation(self, epoch: int) -> torch.Tensor:
        """perm_e = randperm(N) from torch.Generator().manual_seed(seed + epoch)."""
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = (epoch, torch.randperm(len(self.paths), generator=gen))
        return self._perm[1]

    def positions(self, start: Position, count: int) -> list[Position]:
        """`count` consecutive positions from `start`, crossing epochs."""
        out, epoch, index, n = [], start.epoch, start.index, len(self.paths)
        for _ in range(count):
            if index >= n:
                epoch, index = epoch + 1, 0
            out.append(Position(epoch, index))
            index += 1
        return out

    def advanced(self, start: Position, count: int) -> Position:
        """The position after the `count` items from `start`: the last one's index + 1 (an
        index of N is the next epoch's start, as `positions` reads it)."""
        if count == 0:
            return start
        n = len(self.paths)
        last = start.epoch * n + start.index + count - 1
        return Position(last // n, last % n + 1)

    def batch_at(self, start: Position) -> torch.Tensor:
        """This rank's B x 3 x size x size crops of the global batch that begins at `start`."""
        span = self.positions(start, self.batch_size * self.world_size)
        return torch.stack([self.item(p) for p in span[self.rank :: self.world_size]])

    def next_batch(self) -> torch.Tensor:
        """This rank's B x 3 x size x size crops of the next global batch; advances the position."""
        batch = self.batch_at(self.position)
        self.position = self.advanced(self.position, self.batch_size * self.world_size)
        return batch

    def item(self, pos: Position) -> torch.Tensor:
        """The crop at `pos`: the first readable photo at perm[index], perm[index + 1], ...
        (wrapping around the epoch), cropped with the position's own seed."""
        perm, n = self.permutation(pos.epoch), len(self.paths)
        for k in range(n):
            path = self.paths[int(perm[(pos.index + k) % n])]
            if path in self._bad:
                continue
            try:
                seed = crop_seed(self.seed, pos.epoch, pos.index)
                return square_crop(path, self.size, seed, self.resize)
            except ImageError as err:
                self._bad.add(path)
                self._skip(path, str(err))
        raise NstError(f"{self.what} folder {self.folder}: none of its {n} images decodes")

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(path)
        if self.warn:
            warnings.warn(
                f"skipping {self.what} image {reason}", UnreadableImageWarning, stacklevel=3
            )

    def validation(self, count: int) -> torch.Tensor:
        """The first `count` readable photos (sorted), resized like the crops and centre-cropped
        to size x size: fixed photos whose stylisations show training progress."""
        out: list[torch.Tensor] = []
        for path in self.paths:
            if len(out) == count:
                break
            try:
                img = resized(path, self.resize)
            except ImageError:
                continue
            w, h = img.size
            x, y = (w - self.size) // 2, (h - self.size) // 2
            out.append(to_tensor(img.crop((x, y, x + self.size, y + self.size)))[0])
        return torch.stack(out) if out else torch.zeros(0, 3, self.size, self.size)


class AheadBatches(torch.utils.data.Dataset[tuple[torch.Tensor, list[Path]]]):
    """Batch k after `start` of a copy of the stream, with the files its copy skipped (run in a
    DataLoader worker: the training process merges them into the stream's `skipped`)."""

    def __init__(self, stream: ContentStream, start: Position):
        self.stream, self.start = stream, start
        self.span = stream.batch_size * stream.world_size

    def __getitem__(self, k: int) -> tuple[torch.Tensor, list[Path]]:
        before = len(self.stream.skipped)
        batch = self.stream.batch_at(self.stream.advanced(self.start, k * self.span))
        return batch, self.stream.skipped[before:]


def batches(stream: ContentStream, workers: int, pin: bool) -> Generator[torch.Tensor, None, None]:
    """The stream's batches from its position on, endlessly; the position advances as each
    batch is taken. workers > 0: computed ahead by that many DataLoader processes, pinned when
    `pin` (module docstring); 0: in this process, when taken."""
    if not workers:
        while True:
            yield stream.next_batch()
    quiet = copy.copy(stream)  # the workers' copy: the training process warns
    quiet.warn, quiet.skipped, quiet._bad = False, list(stream.skipped), set(stream._bad)
    span = stream.batch_size * stream.world_size
    loader = torch.utils.data.DataLoader(
        AheadBatches(quiet, stream.position),
        batch_size=None,
        sampler=itertools.count(),  # type: ignore[arg-type]
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(stream.seed),
    )
    for batch, skipped in loader:
        for path in skipped:
            if path not in stream.skipped:
                stream._skip(path, f"{path}: it does not decode")
        stream.position = stream.advanced(stream.position, span)
        yield batch
