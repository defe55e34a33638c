"""Safe image loading: every bad file gives a one-line error naming it; every mode becomes RGB."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import transfer_argv
from PIL import Image

from nst.imagefiles import ImageError, atomic_write
from nst.images import LUMA, fit_size, load_image, luma, save_image
from nst.metrics import fit_style, structure
from nst.optimize.controls.color import RGB_TO_YIQ, luminance
from nst.optimize.controls.masks import load_mask


def _bad_files(tmp_path):
    good = tmp_path / "good.png"
    noise = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good)
    data = good.read_bytes()
    middle = len(data) // 2
    files = {
        "empty": (tmp_path / "empty.png", b"", "file is empty"),
        "not an image": (
            tmp_path / "notes.jpg",
            b"hello, this is text\n" * 10,
            "not an image file",
        ),
        "truncated": (tmp_path / "truncated.png", data[: len(data) // 2], "corrupt or truncated"),
        "corrupt": (
            tmp_path / "corrupt.png",
            data[:middle] + b"\xff" * 64 + data[middle + 64 :],
            "corrupt or truncated",
        ),
    }
    for path, content, _ in files.values():
        path.write_bytes(content)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (10_000, 10_000)).save(bomb)  # 100 Mpx but a few KiB on disk
    files["bomb"] = (bomb, None, "decompression bomb")
    files["missing"] = (tmp_path / "missing.png", None, "no such file")
    files["directory"] = (tmp_path, None, "is a directory")
    return files


def test_each_bad_image_gives_a_one_line_error_naming_the_file(tmp_path):
    for kind, (path, _, message) in _bad_files(tmp_path).items():
        with pytest.raises(ImageError) as info:
            load_image(path)
        text = str(info.value)
        assert message in text and str(path) in text and "\n" not in text, kind


def test_cli_exits_nonzero_without_traceback_for_each_bad_image(tmp_path):
    style = tmp_path / "style.png"
    Image.new("RGB", (16, 16), (0, 0, 255)).save(style)
    for kind, (path, _, message) in _bad_files(tmp_path).items():
        argv = transfer_argv(
            content=path, style=style, out=tmp_path / "out.png", size=16, weights=None
        )
        proc = subprocess.run(
            [sys.executable, "-m", "nst", *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, (kind, proc.stderr)
        assert "Traceback" not in proc.stderr and message in proc.stderr, (kind, proc.stderr)
        assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "L", "I;16", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    path = tmp_path / f"img.{'tif' if mode == 'CMYK' else 'png'}"
    if mode == "I;16":
        arr = (np.arange(20 * 10).reshape(10, 20) * 300).astype(np.uint16)
        Image.fromarray(arr).save(path)
    else:
        Image.new("RGB", (20, 10), (120, 60, 30)).convert(mode).save(path)
    x = load_image(path)
    assert x.shape == (1, 3, 10, 20) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    if mode == "I;16":  # the 16-bit range is scaled, not clipped at 255
        assert x.max() == 1.0 and x.min() == 0.0 and len(torch.unique(x)) > 100


def test_transparent_pixels_become_white(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(path)
    assert torch.equal(load_image(path), torch.ones(1, 3, 4, 4))


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    x = load_image(path)
    assert x.shape[-2:] == (40, 20)  # portrait once oriented
    assert x[0, :, :10, :].mean() > 0.9 and x[0, :, -10:, :].mean() < 0.1  # band now on top


def test_resize_long_side(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (200, 100)).save(path)
    assert load_image(path, size=64).shape[-2:] == (32, 64)


def test_save_is_atomic_and_refuses_to_overwrite_inputs(tmp_path):
    content = tmp_path / "content.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(content)
    before = content.read_bytes()
    with pytest.raises(ImageError, match="refusing to overwrite an input"):
        save_image(torch.zeros(1, 3, 8, 8), content, protect=(content,))
    assert content.read_bytes() == before
    out = save_image(torch.rand(1, 3, 8, 8), tmp_path / "sub" / "out.png")
    assert out.exists() and [p.name for p in out.parent.iterdir()] == ["out.png"]  # no temp left
    with pytest.raises(ImageError, match="unknown image extension"):
        save_image(torch.zeros(1, 3, 8, 8), tmp_path / "out.xyz")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, umask):
    """Not mkstemp's 0600: results, configs and images others on the machine may read."""
    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "notes.txt", lambda f: f.write(b"x"))
        save_image(torch.rand(1, 3, 8, 8), tmp_path / "out.png")
        with open(tmp_path / "plain.txt", "w"):
            pass
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(["notes.txt", "out.png", "plain.txt"], 0o666 & ~umask)


def test_fit_size_keeps_the_aspect_rounds_to_multiples_and_floors_each_side():
    """The one "fit to size" rule (stylize, reconstruction and the metrics' style all use it)."""
    img = torch.rand(1, 3, 30, 40)
    assert fit_size(img, 20).shape[-2:] == (15, 20)
    assert fit_size(img, 64, 16).shape[-2:] == (48, 64)  # 30 * 1.6 = 48, a multiple of 16
    assert fit_size(img, 40) is img  # already that size: the very tensor, no resampling
    panorama = torch.rand(1, 3, 12, 4000)
    assert fit_size(panorama, 48).shape[-2:] == (1, 48)  # never 0 px
    assert fit_size(panorama, 48, 16).shape[-2:] == (16, 48)  # at least one multiple
    assert fit_size(panorama, 48, minimum=16).shape[-2:] == (16, 48)
    result = torch.rand(1, 3, 20, 48)
    torch.testing.assert_close(fit_style(panorama, result), fit_size(panorama, 48, minimum=16))
    torch.testing.assert_close(fit_style(img, result), fit_size(img, 48), rtol=0, atol=0)


def test_one_luma_for_masks_metrics_and_colour(tmp_path):
    x = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    by_hand = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    assert LUMA == (0.299, 0.587, 0.114)
    torch.testing.assert_close(luma(x), by_hand, rtol=0, atol=0)
    assert structure.luma is luma
    assert tuple(RGB_TO_YIQ[0].tolist()) == LUMA
    torch.testing.assert_close(luminance(x), luma(x))
    path = save_image(x, tmp_path / "mask.png")
    torch.testing.assert_close(load_mask(path, (5, 7)), luma(load_image(path)).clamp(0, 1))
