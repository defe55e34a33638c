"""An image sample that needs no network: what the pipeline uses when the sources are offline.

Content photos ship inside the scikit-image wheel (public domain or CC0). Style images are
its CC0 textures (grayscale, replicated to RGB) plus *generated compositions*: seeded,
Kandinsky-like arrangements of circles, strokes, polygons and arcs on a tinted ground, so
that any number of distinct, colourful style targets exists offline. The same seed gives
byte-identical PNG files (Pillow's encoder is deterministic), so DVC sees the same data.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nst.images import save_image

SKIMAGE = "https://scikit-image.org/docs/stable/api/skimage.data.html#skimage.data."

#: name -> (title, author, licence), licences quoted from the skimage.data docstrings
PHOTOS = {
    "astronaut": ("Astronaut Eileen Collins", "NASA", "Public domain"),
    "chelsea": ("Chelsea the cat", "Stefan van der Walt", "CC0"),
    "coffee": ("Coffee cup", "Rachel Michetti", "CC0"),
    "rocket": ("Launch of DSCOVR on Falcon 9", "SpaceX", "Public domain"),
    "camera": ("Cameraman (grayscale)", "Lav Varshney", "CC0"),
    "hubble_deep_field": ("Hubble eXtreme Deep Field", "NASA", "Public domain"),
}
TEXTURES = {
    "brick": ("Brick wall texture (Bricks25)", "CC0Textures", "CC0"),
    "grass": ("Grass texture (Grass 01)", "linolafett", "CC0"),
    "gravel": ("Gravel texture (Gravel04)", "CC0Textures", "CC0"),
}
COMPOSITION_SIZE = 512


def write_embedded(out_dir: Path, n_content: int, n_styles: int, seed: int) -> list[dict]:
    """Write the sample under out_dir/content and out_dir/style; return one lock-style entry
    (file, kind, title, author, licence, url) per image written, content first."""
    from skimage import data as skdata

    if n_content > len(PHOTOS):
        raise ValueError(f"the embedded sample has only {len(PHOTOS)} content photos")
    entries = []
    for name in list(PHOTOS)[:n_content]:
        title, author, licence = PHOTOS[name]
        img = _rgb(getattr(skdata, name)())
        entries.append(
            _write(out_dir, "content", name, img, title, author, licence, SKIMAGE + name)
        )
    rng = random.Random(f"{seed}:embedded-styles")
    textures = list(TEXTURES)
    rng.shuffle(textures)
    for k in range(n_styles):
        # alternate generated compositions and textures; compositions once textures run out
        if k % 2 == 1 and k // 2 < len(textures):
            name = textures[k // 2]
            title, author, licence = TEXTURES[name]
            img = _rgb(getattr(skdata, name)())
            url = SKIMAGE + name
            entries.append(
                _write(out_dir, "style", f"texture_{name}", img, title, author, licence, url)
            )
        else:
            img = composition(seed * 1000 + k)
            entries.append(
                _write(
                    out_dir,
                    "style",
                    f"composition_{seed}_{k}",
                    img,
                    f"Generated composition {k} (seed {seed})",
                    "nst (generated)",
                    "CC0",
                    "nst.embedded.composition",
                )
            )
    return entries


def composition(seed: int, size: int = COMPOSITION_SIZE) -> Image.Image:
    """A seeded abstract composition: a tinted ground, then (back to front) large translucent
    circles, thick strokes, polygons and arcs in a 5-colour palette drawn around one hue."""
    rng = random.Random(seed)
    base = rng.random()
    palette = [
        _hsv(base + rng.uniform(-0.35, 0.35), rng.uniform(0.5, 1), rng.uniform(0.4, 1))
        for _ in range(5)
    ]
    ground = _hsv(base + 0.5, rng.uniform(0.05, 0.25), rng.uniform(0.8, 0.97))
    img = Image.new("RGB", (size, size), ground)
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)

    def point() -> tuple[int, int]:
        return rng.randrange(size), rng.randrange(size)

    for _ in range(rng.randint(3, 6)):  # circles with halos, the Kandinsky signature
        (x, y), r = point(), rng.randint(size // 16, size // 4)
        draw.ellipse(
            (x - r, y - r, x + r, y + r),
            fill=(*rng.choice(palette), 170),
            outline=(*rng.choice(palette), 255),
            width=rng.randint(2, 10),
        )
    for _ in range(rng.randint(6, 14)):  # strokes
        draw.line(
            [point() for _ in range(rng.randint(2, 4))],
            fill=(*rng.choice(palette), 230),
            width=rng.randint(2, size // 24),
            joint="curve",
        )
    for _ in range(rng.randint(2, 5)):  # polygons
        draw.polygon([point() for _ in range(rng.randint(3, 5))], fill=(*rng.choice(palette), 200))
    for _ in range(rng.randint(2, 5)):  # arcs
        (x, y), r = point(), rng.randint(size // 10, size // 3)
        start = rng.randrange(360)
        draw.arc(
            (x - r, y - r, x + r, y + r),
            start,
            start + rng.randint(60, 240),
            fill=(*rng.choice(palette), 255),
            width=rng.randint(2, 8),
        )
    img.paste(layer, mask=layer)
    return img


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    pixel = Image.new("HSV", (1, 1), (int(h % 1.0 * 255), int(s * 255), int(v * 255)))
    r, g, b = pixel.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
    return r, g, b


def _rgb(arr: np.ndarray) -> Image.Image:
    arr = np.asarray(arr, dtype=np.uint8)
    return Image.fromarray(np.stack([arr] * 3, axis=-1) if arr.ndim == 2 else arr[..., :3])


def _write(
    out_dir: Path,
    kind: str,
    name: str,
    img: Image.Image,
    title: str,
    author: str,
    licence: str,
    url: str,
) -> dict:
    file = f"{kind}/{name}.png"
    save_image(img, out_dir / file)
    return {
        "file": file,
        "kind": kind,
        "id": f"embedded-{name}",
        "title": title,
        "author": author,
        "licence": licence,
        "url": url,
        "page": url,
    }
