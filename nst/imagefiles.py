"""Image files in and out without torch: safe reading with Pillow, resizing, atomic writes.

Every failure to read an image becomes an `ImageError` whose one-line message names the file
and what is wrong with it. nst.images builds its tensors on these; `nst apply` of an ONNX
file (nst.models.onnx_apply) uses them alone, so it never imports torch.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nst import NstError

MAX_PIXELS = 64_000_000  # larger files are refused as possible decompression bombs


class ImageError(NstError):
    """An image file that cannot be used, with the reason."""


def check_file(path: Path) -> None:
    """An existing, non-empty file, or one ImageError line saying which it is not."""
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, expected an image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: file is empty")


def open_rgb(path: str | Path) -> Image.Image:
    path = Path(path)
    check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, MAX_PIXELS
            try:
                with Image.open(path) as img:
                    img.load()
                    return _to_rgb(ImageOps.exif_transpose(img))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{path}: image is larger than {MAX_PIXELS:,} pixels (possible decompression bomb); "
            "downscale it first"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: corrupt or truncated image ({err})".splitlines()[0]) from None


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.width == 0 or img.height == 0:
        raise ValueError("image has zero size")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16/32-bit grey: scale the actual range to 8 bits instead of clipping at 255
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.round().astype(np.uint8), mode="L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)  # transparent pixels become white
    return img.convert("RGB")


def long_side(wh: tuple[int, int], size: int) -> tuple[int, int]:
    """(width, height) `wh` scaled so that the long side is `size` pixels, each at least 1."""
    scale = size / max(wh)
    return max(1, round(wh[0] * scale)), max(1, round(wh[1] * scale))


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    new = long_side(img.size, size)
    return img if new == img.size else img.resize(new, Image.Resampling.LANCZOS)


def save_picture(
    img: Image.Image,
    path: str | Path,
    protect: tuple[str | Path, ...] = (),
) -> Path:
    """Write a PIL image atomically (temp file + rename). Refuse to overwrite any `protect`
    file, so that `--out` pointing at an input never destroys it."""
    path = Path(path)
    for other in protect:
        if Path(other).exists() and path.exists() and path.resolve() == Path(other).resolve():
            raise ImageError(f"{path}: refusing to overwrite an input image; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image extension; use .png or .jpg")
    atomic_write(path, lambda f: img.save(f, format=fmt))
    return path


def current_umask() -> int:
    """The process's umask, read without setting it (os.umask can only read by writing, which
    would change it for every thread meanwhile): Linux's /proc/self/status "Umask:" line, else
    a set-and-restore with os.umask."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def new_file_mode() -> int:
    """The mode open() gives a new file: 0o666 less the umask. tempfile.mkstemp makes 0600,
    which a rename would keep: results other users of the machine could not read."""
    return 0o666 & ~current_umask()


def atomic_write(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    """Call write(file) on a temporary file beside `path`, then rename it into place; the
    file gets the mode a plain open() would give it (new_file_mode)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_paths(contents: list[Path], out: Path) -> list[Path]:
    """<out>/<stem>.png per input; a repeated stem gets _2, _3, ..."""
    seen: dict[str, int] = {}
    paths = []
    for c in contents:
        seen[c.stem] = seen.get(c.stem, 0) + 1
        suffix = f"_{seen[c.stem]}" if seen[c.stem] > 1 else ""
        paths.append(out / f"{c.stem}{suffix}.png")
    return paths


def image_size(path: str | Path, size: int | None = None) -> tuple[int, int]:
    """(width, height) of an image file from its header (nothing decoded, EXIF rotation
    applied), after a resize of the long side to `size` when given."""
    check_file(Path(path))
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 degrees
                w, h = h, w
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: corrupt or truncated image ({err})".splitlines()[0]) from None
    return long_side((w, h), size) if size else (w, h)
