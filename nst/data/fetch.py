"""The image sample: manifests -> seeded selection -> verified files + lock + attribution.

A *manifest* (nst/manifests/*.json, shipped with the package) lists facts about images:
id, kind (content|style), relative file name, URL, title, author, licence, and sha256 when
known. `fetch` draws a seeded sample from the manifests and makes `data_dir` hold exactly it:

    data/content/*, data/style/*   the images
    data/lock.json                 {"files": {file: {"sha256", "size", "source", ...}}, ...,
                                    "sha256": lock_hash, the data's identity}  -- pins every byte
    data/ATTRIBUTION.md            title, author, licence and URL of every file

Files already present whose sha256 matches the lock are kept, so a second run downloads
nothing and an interrupted run resumes. A file's expected sha256 is the manifest's, else
the lock's: a source that starts serving different bytes is refused, not silently used.
When the sources cannot be reached at all, `fetch` falls back (loudly) to `embedded_sample`.
"""

from __future__ import annotations

import urllib.parse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from nst import NstError
from nst.data.download import DownloadError, DownloadPolicy, fetch_file
from nst.data.embedded import PHOTOS, write_embedded
from nst.data.lock import _lock, _prune, _write_lock, list_images, lock_hash, read_lock
from nst.data.manifest import DEFAULT_MANIFESTS, Item, load_manifest, safe_path, select
from nst.imagefiles import atomic_write
from nst.provenance import sha256_file

#: this many failed connections before any success means "offline"
UNREACHABLE_AFTER = 2


class OfflineDataWarning(UserWarning):
    """The sources could not be reached; the embedded sample was used instead."""


@dataclass
class FetchReport:
    source: str  # "network" | "mirror" | "embedded"
    fetched: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    data_lock_sha256: str = ""  # lock_hash: the data's identity (nst.data.lock.DATA_LOCK_SHA256)


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
        return FetchReport(source="embedded", fetched=written, data_lock_sha256=lock_hash(data_dir))
    _prune(data_dir, old, keep=files)
    _write_lock(data_dir, _lock(files, mode, manifests, n_content, n_styles, seed))
    write_attribution(data_dir)
    report.data_lock_sha256 = lock_hash(data_dir)
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
