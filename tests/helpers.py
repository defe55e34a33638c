"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

#: the shared public-domain images, beside the checkout (read-only; never copied into the repo)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

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
