"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

#: the shared public-domain images, beside the checkout (read-only; never copied into the repo)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
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
