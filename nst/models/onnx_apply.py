"""`nst apply --model model.onnx`: a network `nst export` wrote, run under onnxruntime without
importing torch.

Started as a whole process, `nst apply` of a small johnson network spends most of its time and
memory importing torch and building the eager network; the exported graph needs neither. The
graph's inputs say what it is: "image" (johnson: the style is built in) or "content" and
"style" (adain, stytr), each N x 3 x H x W float32 in [0, 1], output "stylized" the same
(nst.models.export). Images are read and written by nst.imagefiles (numpy, Pillow); one style
per run, no colour control, strength, mask or tiles: those need the checkpoint (model.pt), and
asking for them here is one line naming what to drop. Sides must be at least 8 px (the
graph's padding rule). onnxruntime's CPU provider runs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nst import NstError
from nst.imagefiles import open_rgb, resize_long_side, save_picture

#: the exported graph's input names -> what they are (nst.models.export: INPUT, model_inputs)
LAYOUTS = {("image",): "content only", ("content", "style"): "content and style"}
MIN_SIDE = 8


def session(path: Path) -> Any:
    """An onnxruntime session of `path`, or one line on a file that is not an ONNX graph."""
    import onnxruntime as ort

    if not path.is_file():
        raise NstError(f"--model {path}: no such file")
    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise NstError(
            f"--model {path}: not an ONNX graph onnxruntime can load ({err})"[:300]
        ) from None


def as_array(img: Image.Image, what: str) -> np.ndarray:
    if min(img.size) < MIN_SIDE:
        raise NstError(f"{what} is {img.width}x{img.height} px: sides of at least {MIN_SIDE} px")
    return (np.asarray(img, dtype=np.float32) / 255.0).transpose(2, 0, 1)[None].copy()


def apply_onnx(
    model: str | Path,
    contents: list[Path],
    outputs: list[Path],
    *,
    size: int | None = None,
    styles: list[Path] | None = None,
) -> list[Path]:
    """Stylise each content file into its output path (every input read first, so a bad one
    writes nothing); returns the written paths."""
    sess = session(Path(model))
    names = tuple(i.name for i in sess.get_inputs())
    if names not in LAYOUTS:
        raise NstError(
            f"--model {model}: inputs {', '.join(names)}; nst apply runs graphs `nst export` "
            "wrote (image, or content and style); an external ONNX model goes in a methods file"
        )
    arbitrary = names == ("content", "style")
    styles = styles or []
    if arbitrary and len(styles) != 1:
        raise NstError(f"--model {model} takes the style as an input: pass one --style IMAGE")
    if not arbitrary and styles:
        raise NstError(f"--model {model} has its style built in: drop --style")

    def read(path: Path) -> np.ndarray:
        img = open_rgb(path)
        return as_array(resize_long_side(img, size) if size else img, str(path))

    images = [read(c) for c in contents]
    style = read(styles[0]) if arbitrary else None
    written = []
    for image, target in zip(images, outputs, strict=True):
        feed = {"content": image, "style": style} if arbitrary else {"image": image}
        (y,) = sess.run(None, feed)
        pixels = (np.clip(y[0].transpose(1, 2, 0), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        written.append(save_picture(Image.fromarray(pixels, mode="RGB"), target, tuple(contents)))
    return written
