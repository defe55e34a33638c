"""The image sample: manifests -> seeded selection -> verified files + lock + attribution.

A *manifest* (nst/manifests/*.json, shipped with the package) lists facts about images:
id, kind (content|style), relative file name, URL, title, author, licence, and sha256 when
known. `fetch` draws a seeded sample from the manifests and makes `data_dir` hold exactly it:

    data/content/*, data/style/*   the images
    data/lock.json                 {"files": {file: {"sha256", "size", "source", ...}}, ...,
                                    "sha256": hash of the rest}  -- pins every byte
    data/ATTRIBUTION.md            title, author, licence and URL of every file

Files already present whose sha256 matches the lock are kept, so a second run downloads
nothing and an interrupted run resumes. A file's expected sha256 is the manifest's, else
the lock's: a source that starts serving different bytes is refused, not silently used.
When the sources cannot be reached at all, `fetch` falls back (loudly) to `embedded_sample`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import urllib.parse
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from nst import NstError
from nst.download import DownloadError, DownloadPolicy, fetch_file, sha256_file
from nst.embedded import PHOTOS, write_embedded
from nst.images import atomic_write

MANIFEST_DIR = Path(__file__).parent / "manifests"
DEFAULT_MANIFESTS = ("coco_val2017", "wikiart_pd")
KINDS = ("content", "style")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
#: this many failed connections before any success means "offline"
UNREACHABLE_AFTER = 2


class OfflineDataWarning(UserWarning):
    """The sources could not be reached; the embedded sample was used instead."""


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


@dataclass
class FetchReport:
    source: str  # "network" | "mirror" | "embedded"
    fetched: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    lock_sha256: str = ""


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


def fetch(
    data_dir: str | Path,
    *,
    manifests: Sequence[str | Path] = DEFAULT_MANIFESTS,
    n_content: int = 4,
    n_styles: int = 4,
    seed: int = 0,
    mirror: str | Path | None = None,
    policy: DownloadPolicy | None = None,
    fallback: bool = True,
    progress: bool = True,
) -> FetchReport:
    """Make `data_dir` hold the seeded sample; see the module docstring.

    `mirror` is a directory or an http(s) URL prefix serving the manifests' file names.
    Raises NstError listing every file that failed (the others are kept for the next run)."""
    data_dir = Path(data_dir)
    policy = policy or DownloadPolicy()
    items = select([i for m in manifests for i in load_manifest(m)], n_content, n_styles, seed)
    mode = "network" if mirror is None else "mirror"
    if mirror is not None and "://" not in str(mirror) and not Path(mirror).is_dir():
        raise NstError(f"--mirror {mirror}: no such directory")
    old = read_lock(data_dir)
    files: dict[str, dict] = {}
    report = FetchReport(source=mode)
    failures: list[str] = []
    unreachable = 0
    for tmp in data_dir.glob("*/.*.part"):
        tmp.unlink()  # left by a killed run
    bar = tqdm(items, desc="nst fetch", unit="file", disable=not progress)
    for item in bar:
        bar.set_postfix_str(item.file, refresh=False)
        dest = safe_path(data_dir, item.file)
        entry = old.get("files", {}).get(item.file, {})
        pinned = item.sha256 or (entry.get("sha256") if entry.get("url") == item.url else None)
        if dest.is_file() and pinned and sha256_file(dest) == pinned:
            size, source = dest.stat().st_size, entry.get("source", mode)
            files[item.file] = {**_meta(item), "sha256": pinned, "size": size, "source": source}
            report.kept.append(item.file)
            continue
        if dest.is_file() and pinned:
            warnings.warn(
                f"{dest}: differs from its locked sha256; fetching it again", stacklevel=2
            )
        try:
            digest, size = fetch_file(
                _source(item, mirror), dest, expected_sha256=pinned, policy=policy
            )
        except DownloadError as err:
            failures.append(str(err))
            unreachable += err.unreachable
            if err.unreachable and unreachable >= UNREACHABLE_AFTER and not report.fetched:
                break  # nothing answers: do not spend retries on every remaining file
            continue
        files[item.file] = {**_meta(item), "sha256": digest, "size": size, "source": mode}
        report.fetched.append(item.file)
        _write_lock(data_dir, {**old, "files": {**old.get("files", {}), **files}})
    bar.close()
    # offline: every attempt failed to connect and nothing of the sample is here yet
    if failures and unreachable == len(failures) and not report.fetched and not report.kept:
        if not fallback:
            raise NstError(f"the image sources cannot be reached: {failures[0]}")
        warnings.warn(
            "!!! IMAGE SOURCES UNREACHABLE: using the EMBEDDED offline sample (scikit-image "
            "photos, textures and generated compositions), NOT the COCO/WikiArt sample; results "
            f"are not comparable to fetched data. First error: {failures[0]}",
            OfflineDataWarning,
            stacklevel=2,
        )
        content, styles = embedded_sample(data_dir, min(n_content, len(PHOTOS)), n_styles, seed)
        written = [p.relative_to(data_dir).as_posix() for p in content + styles]
        return FetchReport(source="embedded", fetched=written, lock_sha256=lock_hash(data_dir))
    _prune(data_dir, old, keep=files)
    _write_lock(data_dir, _lock(files, mode, manifests, n_content, n_styles, seed))
    write_attribution(data_dir)
    report.lock_sha256 = lock_hash(data_dir)
    if failures:
        raise DownloadError(
            f"{len(failures)} of {len(items)} files failed ({len(report.fetched)} fetched, "
            f"{len(report.kept)} kept; re-run to resume): " + "; ".join(failures)
        )
    return report


def _source(item: Item, mirror: str | Path | None) -> str:
    if mirror is None:
        if not item.url:
            raise DownloadError(f"{item.file}: the manifest gives no URL (use --mirror)")
        return item.url
    if "://" in str(mirror):
        return str(mirror).rstrip("/") + "/" + urllib.parse.quote(item.file)
    return str(safe_path(Path(mirror), item.file))


def _meta(item: Item) -> dict:
    keys = ("id", "kind", "url", "title", "author", "licence", "licence_url", "page")
    return {"manifest": item.manifest, **{k: getattr(item, k) for k in keys}}


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


def _write_lock(data_dir: Path, lock: dict) -> None:
    body = {k: v for k, v in lock.items() if k != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    text = json.dumps({**body, "sha256": hashlib.sha256(canonical).hexdigest()}, indent=1)
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
    """sha256 of data_dir/lock.json (which pins every image): the data's identity for provenance."""
    path = Path(data_dir) / "lock.json"
    if not path.exists():
        raise NstError(f"{path}: no lock file; run `nst fetch --out {data_dir}` first")
    return sha256_file(path)


def write_attribution(data_dir: Path) -> None:
    lock = read_lock(data_dir)
    cell = lambda s: str(s or "").replace("|", "\\|")  # noqa: E731
    lines = [
        "# Attribution",
        "",
        f"Images in this directory (source: {lock.get('source')}), written by `nst fetch`. "
        "Each keeps its own licence; CC BY / CC BY-SA photos require crediting the author "
        "shown on the linked page.",
        "",
        "| file | title | author | licence | URL |",
        "|---|---|---|---|---|",
    ]
    for file, e in lock.get("files", {}).items():
        licence = (
            f"[{cell(e['licence'])}]({e['licence_url']})"
            if e.get("licence_url")
            else cell(e["licence"])
        )
        url = e.get("page") or e.get("url")
        lines.append(f"| {file} | {cell(e['title'])} | {cell(e['author'])} | {licence} | {url} |")
    text = "\n".join(lines) + "\n"
    atomic_write(data_dir / "ATTRIBUTION.md", lambda f: f.write(text.encode()))


def embedded_sample(
    out_dir: str | Path, n_content: int = 4, n_styles: int = 4, seed: int = 0
) -> tuple[list[Path], list[Path]]:
    """Write the offline sample (see nst.embedded) with its lock ("source": "embedded") and
    attribution into out_dir; return (content_paths, style_paths)."""
    out_dir = Path(out_dir)
    if n_content > len(PHOTOS):
        raise NstError(f"the embedded sample has {len(PHOTOS)} content photos, not {n_content}")
    old = read_lock(out_dir)
    entries = write_embedded(out_dir, n_content, n_styles, seed)
    files = {}
    for e in entries:
        path = out_dir / e["file"]
        files[e["file"]] = {
            **e,
            "manifest": "embedded",
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
            "source": "embedded",
        }
        del files[e["file"]]["file"]
    _prune(out_dir, old, keep=files)
    _write_lock(out_dir, _lock(files, "embedded", ["embedded"], n_content, n_styles, seed))
    write_attribution(out_dir)
    return list_images(out_dir)


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
                raise NstError(f"{data_dir / 'lock.json'}: {file}: kind {kind!r} does not match "
                               "its folder; delete the lock and run `nst fetch` again")  # fmt: skip
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
