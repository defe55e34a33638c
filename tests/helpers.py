"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: a local mirror of public-domain images beside the checkout, where one exists (NST_SHARED_DATA
#: points elsewhere, e.g. at a missing folder to run as a fresh clone would). Optional: only
#: the pipeline test uses it, as a mirror `nst fetch` may read; every other test reads SAMPLE.
SHARED_DATA = Path(
    os.environ.get("NST_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
)
#: the methods comparison's spec
SPEC = Path(__file__).resolve().parents[1] / "experiments" / "methods.yaml"

#: what every test run of `nst transfer` uses unless it says otherwise: tiny, fast, and never
#: tracked, so that no test writes the project's own mlflow.db; VGG19 (the tests name its
#: layers), whose family recipe is TransferConfig's defaults
TRANSFER_DEFAULTS: dict[str, object] = {
    "backbone": "vgg19",
    "size": 32,
    "steps": 1,
    "weights": "random",
    "no_track": True,
}


def transfer_argv(*extra: str, **overrides: object) -> list[str]:
    """The argument list of `nst transfer`, from TRANSFER_DEFAULTS updated by `overrides`.

    A keyword becomes its option (content_layers -> --content-layers); True is a bare flag,
    False or None leaves the option out; a list or tuple is comma-joined, except for `style`,
    where each item is its own --style. `extra` arguments are appended as they are (a later
    option overrides an earlier one in argparse).
    """
    argv = ["transfer"]
    for key, value in {**TRANSFER_DEFAULTS, **overrides}.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif key == "style" and isinstance(value, list | tuple):
            for item in value:
                argv += [flag, str(item)]
        elif isinstance(value, Sequence) and not isinstance(value, str):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return [*argv, *extra]


def make_images(folder: Path, n: int, seed: int, stripes: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(40, 56)), int(rng.integers(40, 56))
        yy, xx = np.mgrid[0:h, 0:w] / 6.0
        if stripes:
            arr = np.stack([np.sin(xx * (i + 2)) > 0, np.cos(yy * 3) > 0, np.sin(xx + yy) > 0], -1)
            arr = arr * 2.0 - 1.0
        else:
            arr = np.stack([np.sin(xx * (i + 1)), np.cos(yy * (i + 2)), np.sin(xx + yy)], -1)
        Image.fromarray(((arr + 1) * 127.5).astype(np.uint8)).save(folder / f"i{i}.png")
    return folder


#: the test data: nst's embedded offline sample (nst.data.embedded: scikit-image photos, its
#: CC0 textures and seeded generated compositions), written once per session by the
#: `sample_data` fixture (conftest.py) with write_sample, so that the suite needs nothing
#: outside the repository
SAMPLE_SEED = 0
#: content/: real photos (astronaut, chelsea the cat, a coffee cup, a rocket launch, and the
#: grayscale cameraman)
SAMPLE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png", "camera.png")
#: style/: eight generated compositions and the three textures
SAMPLE_STYLES = (
    *(f"composition_{SAMPLE_SEED}_{k}.png" for k in (0, 2, 4, 6, 7, 8, 9, 10)),
    "texture_brick.png",
    "texture_grass.png",
    "texture_gravel.png",
)


def write_sample(out: Path) -> Path:
    """The embedded sample as `nst fetch` writes it offline (content/, style/, lock.json,
    ATTRIBUTION.md) under out, holding exactly SAMPLE_PHOTOS and SAMPLE_STYLES."""
    from nst.data.fetch import embedded_sample

    content, styles = embedded_sample(out, len(SAMPLE_PHOTOS), len(SAMPLE_STYLES), SAMPLE_SEED)
    names = ({p.name for p in content}, {p.name for p in styles})
    assert names == (set(SAMPLE_PHOTOS), set(SAMPLE_STYLES)), names  # the embedded sample changed
    return out


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime in ns) of every file under root, by relative path."""
    return {
        p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
