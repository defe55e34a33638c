"""Manifests (nst/data/manifests/*.json): facts about images (source URL, sha256, licence), and the
seeded selection of a sample from them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nst import NstError

MANIFEST_DIR = Path(__file__).parent / "manifests"

DEFAULT_MANIFESTS = ("coco_val2017", "wikiart_pd")

KINDS = ("content", "style")


@dataclass(frozen=True)
class Item:
    """One manifest entry. `file` is relative to the data dir (and to a mirror)."""

    id: str
    kind: str
    file: str
    url: str | None
    title: str
    author: str
    licence: str
    licence_url: str | None = None
    page: str | None = None
    sha256: str | None = None
    manifest: str = ""


def safe_path(data_dir: Path, file: str) -> Path:
    """data_dir/file, refusing names that could land outside data_dir."""
    rel = PurePosixPath(file)
    if not file or "\\" in file or rel.is_absolute() or ".." in rel.parts or ":" in rel.parts[0]:
        raise NstError(f"unsafe file name {file!r} in manifest: must be relative, without '..'")
    if rel.parts[0] not in KINDS or len(rel.parts) < 2:
        raise NstError(f"unsafe file name {file!r} in manifest: must start with content/ or style/")
    path = data_dir / rel
    if not path.resolve().is_relative_to(data_dir.resolve()):
        raise NstError(f"unsafe file name {file!r} in manifest: escapes the data directory")
    return path


def load_manifest(name_or_path: str | Path) -> list[Item]:
    """Items of a shipped manifest (by name, e.g. "wikiart_pd") or of a JSON file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MANIFEST_DIR / f"{name_or_path}.json"
        if not path.exists():
            names = sorted(p.stem for p in MANIFEST_DIR.glob("*.json"))
            raise NstError(f"unknown manifest {name_or_path!r}; shipped: {', '.join(names)}")
    try:
        doc = json.loads(path.read_text())
        items = [_item(raw, doc.get("name", path.stem)) for raw in doc["items"]]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise NstError(f"{path}: not a valid manifest ({type(err).__name__}: {err})") from None
    for item in items:
        safe_path(Path("/data"), item.file)
    return items


def _item(raw: dict, manifest: str) -> Item:
    if raw["kind"] not in KINDS:
        raise ValueError(f"item {raw['id']}: kind must be content or style")
    fields = {k: raw.get(k) for k in Item.__dataclass_fields__ if k != "manifest"}
    return Item(**fields, manifest=manifest)  # type: ignore[arg-type]


def select(items: Iterable[Item], n_content: int, n_styles: int, seed: int) -> list[Item]:
    """A seeded sample: each kind sorted by id, shuffled by its own Random(f"{seed}:{kind}"),
    and the first n taken -- so asking for more images later keeps the earlier ones."""
    by_file: dict[str, Item] = {}
    for item in items:
        if item.file in by_file and by_file[item.file].url != item.url:
            raise NstError(f"two manifests give different sources for {item.file}")
        by_file[item.file] = item
    chosen = []
    for kind, n in (("content", n_content), ("style", n_styles)):
        pool = sorted((i for i in by_file.values() if i.kind == kind), key=lambda i: i.id)
        if n > len(pool) or n < 0:
            raise NstError(f"asked for {n} {kind} images but the manifests list {len(pool)}")
        random.Random(f"{seed}:{kind}").shuffle(pool)
        chosen += pool[:n]
    return chosen
