"""Rebuild nst/manifests/*.json from the curated lists in ../shared/data (run once, by hand).

    .venv/bin/python scripts/build_manifests.py [SHARED_DATA_DIR]

The manifests hold facts only (ids, URLs, licences, titles, authors, sha256 where known);
no image is copied into the repository. Every item gets a relative `file` name under
content/ or style/, which is also the name a mirror (`nst fetch --mirror`) must serve.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nst" / "manifests"

#: COCO licence ids that allow redistribution and modification (CC BY, CC BY-SA, no known
#: copyright restrictions, US Government work); 1-3 and 6 are NC or ND and are dropped.
COCO_PERMISSIVE = {4, 5, 7, 8}

#: where the shared sample's files came from: (repository, short commit) for github.com/raw URLs
REPO_COMMITS = {
    "jcjohnson/neural-style": "07c4b8299f8f",
    "gordicaleksa/pytorch-neural-style-transfer": "a244dc61797f",
    "cysmith/neural-style-tf": "a2c374f9ee29",
}


def slug(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60]


def coco(shared: Path) -> dict:
    src = json.loads((shared / "manifests" / "coco_val2017.json").read_text())
    items = []
    for img in src["images"]:
        if img["license"] not in COCO_PERMISSIVE:
            continue
        licence = src["licences"][str(img["license"])]
        name, _, url = licence.partition(" http")
        photo = re.search(r"/(\d+)_[0-9a-f]+(?:_[a-z])?\.jpg$", img["flickr_url"])
        items.append(
            {
                "id": f"coco-{img['id']}",
                "kind": "content",
                "file": f"content/coco_{img['file_name']}",
                "url": img["coco_url"],
                "title": f"COCO val2017 image {img['id']}",
                "author": "Flickr photographer (credited on the photo page)",
                "licence": name.strip(),
                "licence_url": ("http" + url).strip(" ()") if url else None,
                "page": f"https://www.flickr.com/photo.gne?id={photo.group(1)}"
                if photo
                else img["flickr_url"],
                "sha256": None,
                "width": img["width"],
                "height": img["height"],
            }
        )
    return {
        "name": "coco_val2017",
        "description": "COCO 2017 val photos (from Flickr) under permissive licences",
        "source": src["source"],
        "notes": src["notes"]
        + [
            "Filtered to COCO licences 4, 5, 7, 8 (CC BY, CC BY-SA, no "
            "known restrictions, US Government work)."
        ],
        "items": items,
    }


def wikiart(shared: Path) -> dict:
    src = json.loads((shared / "manifests" / "wikiart_pd.json").read_text())
    items, seen = [], set()
    for img in src["images"]:
        base = slug(f"{img['artist']}_{img['title']}")
        assert base not in seen, base
        seen.add(base)
        ext = img["commons_file"].rsplit(".", 1)[-1].lower()
        items.append(
            {
                "id": f"wikiart-{base}",
                "kind": "style",
                "file": f"style/wikiart_{base}.{'jpg' if ext == 'jpeg' else ext}",
                "url": img["url"],
                "title": f"{img['title']}, {img['year']}",
                "author": img["artist"],
                "licence": "Public domain in the US" if img.get("us_only") else img["licence"],
                "licence_url": None,
                "page": "https://commons.wikimedia.org/wiki/File:"
                + img["commons_file"].replace(" ", "_"),
                "sha256": None,
                "style": img.get("style"),
            }
        )
    return {
        "name": "wikiart_pd",
        "description": "Public-domain paintings as listed on WikiArt, files from Wikimedia Commons",
        "source": src["source"],
        "notes": src["notes"],
        "items": items,
    }


def classic(shared: Path) -> dict:
    """The classic NST examples of ../shared/data (with sha256), minus unknown licences."""
    origins = dict(
        re.findall(
            r"^\| (\S+) \| \w+ \| .*? \| (.+?) \| .*? \| `[0-9a-f]{64}`",
            (shared / "SOURCES.md").read_text(),
            re.M,
        )
    )
    items = []
    for entry in json.loads((shared / "manifest.json").read_text()):
        if entry["licence"].lower().startswith("unknown"):
            continue  # e.g. tubingen.jpg: widely copied, licence never stated
        origin = origins[entry["path"]]
        if origin.startswith("scikit-image"):
            path = origin.split(": ", 1)[1]
            url = f"https://github.com/scikit-image/scikit-image/raw/v0.26.0/{path}"
        else:
            repo, path = origin.split(":", 1)
            url = f"https://github.com/{repo}/raw/{REPO_COMMITS[repo]}/{path}"
        items.append(
            {
                "id": f"classic-{entry['name']}",
                "kind": entry["kind"],
                "file": entry["path"],
                "url": url,
                "title": entry["title"],
                "author": entry["creator"],
                "licence": entry["licence"],
                "licence_url": None,
                "page": url,
                "sha256": entry["sha256"],
                "size": entry["bytes"],
            }
        )
    return {
        "name": "classic",
        "description": "Classic NST examples (Gatys et al. paintings, scikit-image photos/textures)",
        "source": "neural-style example repositories on GitHub and the scikit-image 0.26.0 data",
        "notes": [
            "sha256 pins the exact bytes; a mirror such as ../shared/data serves the same names."
        ],
        "items": items,
    }


def main() -> None:
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    OUT.mkdir(exist_ok=True)
    for manifest in (coco(shared), wikiart(shared), classic(shared)):
        path = OUT / f"{manifest['name']}.json"
        path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.relative_to(ROOT)}: {len(manifest['items'])} items")


if __name__ == "__main__":
    main()
