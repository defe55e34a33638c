"""A fetched data folder: its lock file (what was fetched, from where, with which hashes) and its images."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from nst import NstError
from nst.data.manifest import KINDS, safe_path
from nst.imagefiles import atomic_write

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
#: the name of a data folder's identity (lock_hash) wherever it is printed or recorded:
#: `nst fetch`'s output, summary.json's provenance, the study run's nst.data_lock_sha256 tag
DATA_LOCK_SHA256 = "data_lock_sha256"


def _lock(
    files: dict, source: str, manifests: Sequence, n_content: int, n_styles: int, seed: int
) -> dict:
    sources = {f["source"] for f in files.values()}
    return {
        "version": 1,
        "source": sources.pop() if len(sources) == 1 else ("mixed" if sources else source),
        "selection": {
            "manifests": [str(m) for m in manifests],
            "content": n_content,
            "styles": n_styles,
            "seed": seed,
        },
        "files": dict(sorted(files.items())),
    }


def lock_digest(lock: Mapping[str, Any]) -> str:
    """sha256 of the lock's canonical JSON (sorted keys, no spaces) without its own "sha256"
    field: the same for the same selection and files however the file is laid out."""
    body = {k: v for k, v in lock.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()


def _write_lock(data_dir: Path, lock: dict) -> None:
    body = {k: v for k, v in lock.items() if k != "sha256"}
    text = json.dumps({**body, "sha256": lock_digest(body)}, indent=1)
    data_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(data_dir / "lock.json", lambda f: f.write(text.encode() + b"\n"))


def _prune(data_dir: Path, old: dict, keep: dict) -> None:
    """Delete files an earlier lock listed that the new selection no longer has."""
    for file in set(old.get("files", {})) - set(keep):
        with contextlib.suppress(NstError):  # a tampered lock: never delete outside data_dir
            safe_path(data_dir, file).unlink(missing_ok=True)


def read_lock(data_dir: str | Path) -> dict:
    path = Path(data_dir) / "lock.json"
    if not path.exists():
        return {}
    try:
        lock = json.loads(path.read_text())
        assert isinstance(lock.get("files"), dict)
        return lock
    except (ValueError, AssertionError):
        raise NstError(f"{path}: corrupt lock file; delete it to fetch again") from None


def lock_hash(data_dir: str | Path) -> str:
    """The data's identity (DATA_LOCK_SHA256): lock_digest of data_dir/lock.json, which pins
    every image. Recomputed from the lock's content, so it equals the "sha256" field that
    `fetch` writes, and a hand-edited lock gets a new identity instead of keeping the old one."""
    path = Path(data_dir) / "lock.json"
    if not path.exists():
        raise NstError(f"{path}: no lock file; run `nst fetch --out {data_dir}` first")
    return lock_digest(read_lock(data_dir))


def data_identity(data_dir: str | Path | None) -> str:
    """lock_hash of a data folder, or "" when there is no folder or it has no lock (images
    put there by hand: nothing pins them)."""
    if not data_dir or not (Path(data_dir) / "lock.json").exists():
        return ""
    return lock_hash(data_dir)


def list_images(data_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """(content_paths, style_paths) of a data dir: the files its lock lists, or, without a
    lock, every image under content/ and style/. Sorted, so the order is reproducible."""
    data_dir = Path(data_dir)
    lock = read_lock(data_dir)
    found: dict[str, list[Path]] = {kind: [] for kind in KINDS}
    if lock:
        for file, entry in sorted(lock["files"].items()):
            path = safe_path(data_dir, file)  # a tampered lock cannot point outside data_dir
            kind = entry.get("kind") if isinstance(entry, dict) else None
            if kind not in KINDS or PurePosixPath(file).parts[0] != kind:
                raise NstError(
                    f"{data_dir / 'lock.json'}: {file}: kind {kind!r} does not match "
                    "its folder; delete the lock and run `nst fetch` again"
                )
            if not path.is_file():
                raise NstError(f"{path}: listed in lock.json but missing; run `nst fetch` again")
            found[kind].append(path)
    else:
        for kind in KINDS:
            found[kind] = sorted(
                # safe_path refuses symlinks that lead out of data_dir
                safe_path(data_dir, f"{kind}/{p.name}")
                for p in (data_dir / kind).glob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
            )
    return found["content"], found["style"]
