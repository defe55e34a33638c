"""`nst apply --model model.onnx`: a network `nst export` wrote, or an external one, run under
onnxruntime without importing torch.

Started as a whole process, `nst apply` of a small johnson network spends most of its time and
memory importing torch and building the eager network; the exported graph needs neither. The
graph's inputs say what it is: "image" (johnson: the style is built in) or "content" and
"style" (adain, stytr), each N x 3 x H x W float32 in [0, 1], output "stylized" the same
(nst.models.export). An external graph is read by its inputs' count, one image input (the
style built in) or two (content, then style), with the conventions nst.models.external names:
`layout` nchw | nhwc and `value_range` 0-1 | 0-255 (--onnx-layout, --onnx-value-range; nst's
own: nchw, 0-1); a graph whose first input has a fixed square side S gets its images resized
to S x S and its output resized back to the photo's size.
Images are read and written by nst.imagefiles (numpy, Pillow); one style
per run, no colour control, strength or mask: those need the checkpoint (model.pt), and
asking for them here is one line naming what to drop. Sides must be at least 8 px (the
graph's padding rule). onnxruntime's CPU provider runs it.

Tiles (`tile`): the graph runs on tiles with a halo, blended by nst.models.tiles, with the
whole image's normalisation as nst.models.tiling gives the checkpoint's: the graph is split
in two (`split_normalisation`, onnx graph surgery): a statistics graph, the graph itself with
every InstanceNormalization's input mean and variance as extra outputs (GlobalAveragePool of
x and of (x - mean)^2), run once on the reference view of the whole image; and a tile graph
where each InstanceNormalization(x, scale, B) becomes (x - mean) / sqrt(var + eps) * scale + B
with mean and var as inputs. johnson's layers and adain's content normalisation are such
nodes. What else a graph computes over its input (stytr's attention) it computes per tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nst import NstError
from nst.imagefiles import image_size as read_size
from nst.imagefiles import open_rgb, resize_long_side, save_picture
from nst.models.external import fixed_size, from_graph, to_graph
from nst.models.tiles import HALO, OVERLAP, blend, crop, reference_size

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


def split_normalisation(path: Path) -> tuple[Any, Any, list[str]] | None:
    """(statistics session, tile session, the statistics' names) of the graph at `path`
    (module docstring), None when it has no InstanceNormalization."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = onnx.load(str(path))
    norms = [n for n in graph.graph.node if n.op_type == "InstanceNormalization"]
    if not norms:
        return None
    stats, tiles = onnx.ModelProto(), onnx.ModelProto()
    stats.CopyFrom(graph)
    tiles.CopyFrom(graph)
    names: list[str] = []
    stat_nodes, tile_nodes = [], []
    shape = helper.make_tensor("nst_channels", TensorProto.INT64, [4], [1, -1, 1, 1])
    for node in graph.graph.node:
        tile_nodes.append(node)
        stat_nodes.append(node)
        if node.op_type != "InstanceNormalization":
            continue
        k = len(names) // 2
        x, scale, bias = node.input
        mean, var = f"nst_mean_{k}", f"nst_var_{k}"
        names += [mean, var]
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        stat_nodes += [
            helper.make_node("GlobalAveragePool", [x], [mean]),
            helper.make_node("Sub", [x, mean], [f"{mean}_d"]),
            helper.make_node("Mul", [f"{mean}_d", f"{mean}_d"], [f"{mean}_d2"]),
            helper.make_node("GlobalAveragePool", [f"{mean}_d2"], [var]),
        ]
        tile_nodes[-1:] = [
            helper.make_node("Constant", [], [f"{var}_eps"], value_float=eps),
            helper.make_node("Sub", [x, mean], [f"{mean}_d"]),
            helper.make_node("Add", [var, f"{var}_eps"], [f"{var}_e"]),
            helper.make_node("Sqrt", [f"{var}_e"], [f"{var}_s"]),
            helper.make_node("Div", [f"{mean}_d", f"{var}_s"], [f"{mean}_n"]),
            helper.make_node("Reshape", [scale, "nst_channels"], [f"{mean}_scale"]),
            helper.make_node("Reshape", [bias, "nst_channels"], [f"{mean}_bias"]),
            helper.make_node("Mul", [f"{mean}_n", f"{mean}_scale"], [f"{mean}_m"]),
            helper.make_node("Add", [f"{mean}_m", f"{mean}_bias"], list(node.output)),
        ]
    for model, nodes in ((stats, stat_nodes), (tiles, tile_nodes)):
        del model.graph.node[:]
        model.graph.node.extend(nodes)
    tiles.graph.initializer.append(shape)
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    stats.graph.output.extend(info)
    tiles.graph.input.extend(info)
    providers = ["CPUExecutionProvider"]
    return (
        ort.InferenceSession(stats.SerializeToString(), providers=providers),
        ort.InferenceSession(tiles.SerializeToString(), providers=providers),
        names,
    )


def reference_view(img: Image.Image, tile: int) -> Image.Image:
    """nst.models.tiling.reference_view's view of a picture (nst.models.tiles.reference_size),
    resized by Pillow's bilinear, antialiased."""
    h, w = reference_size((img.height, img.width), tile)
    return img if (w, h) == img.size else img.resize((w, h), Image.Resampling.BILINEAR)


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
    tile: int = 0,
    overlap: int = OVERLAP,
    layout: str = "nchw",
    value_range: str = "0-1",
) -> list[Path]:
    """Stylise each content file into its output path (every input read first, so a bad one
    writes nothing), in tiles of `tile` px when given (module docstring); returns the written
    paths. `layout` and `value_range` are an external graph's conventions
    (nst.models.external; nst's own graphs: nchw, 0-1)."""
    sess = session(Path(model))
    inputs = sess.get_inputs()
    names = tuple(i.name for i in inputs)
    if len(names) not in (1, 2):
        raise NstError(
            f"--model {model}: inputs {', '.join(names)}; nst apply runs graphs of one image "
            "input (the style built in) or two (content, then style)"
        )
    arbitrary = len(names) == 2
    styles = styles or []
    if arbitrary and len(styles) != 1:
        raise NstError(f"--model {model} takes the style as an input: pass one --style IMAGE")
    if not arbitrary and styles:
        raise NstError(f"--model {model} has its style built in: drop --style")
    side = fixed_size(list(inputs[0].shape), layout)
    if side and tile:
        raise NstError(f"--model {model} takes {side} x {side} images only: drop --tile")

    def read(path: Path) -> Image.Image:
        img = open_rgb(path)
        img = resize_long_side(img, size) if size else img
        return img.resize((side, side), Image.Resampling.BILINEAR) if side else img

    pictures = [read(c) for c in contents]
    images = [as_array(p, str(c)) for p, c in zip(pictures, contents, strict=True)]
    style = as_array(read(styles[0]), str(styles[0])) if arbitrary else None
    split = split_normalisation(Path(model)) if tile else None
    written = []

    def run(session: Any, image: np.ndarray, **extra: np.ndarray) -> list[np.ndarray]:
        """The graph's output as nst's image (nst.models.external's conventions), and any
        further outputs as they are."""
        given = (image,) if style is None else (image, style)
        feed = {n: to_graph(x, layout, value_range) for n, x in zip(names, given, strict=True)}
        try:
            out = session.run(None, {**feed, **extra})
        except Exception as err:  # onnxruntime's own exception types
            shapes = ", ".join(f"{n} {tuple(v.shape)}" for n, v in feed.items())
            text = f"--model {model} failed on {shapes}: {err}".splitlines()[0][:300]
            raise NstError(f"{text}; check --onnx-layout and --onnx-value-range") from None
        return [from_graph(out[0], layout, value_range, f"--model {model}"), *out[1:]]

    def stylise(picture: Image.Image, image: np.ndarray) -> np.ndarray:
        if not tile:
            return run(sess, image)[0]
        if split is None:
            return blend(
                lambda *box: run(sess, crop(image, *box))[0], image.shape[-2:], tile, overlap, HALO
            )
        stats_session, tile_session, stat_names = split
        view = as_array(reference_view(picture, tile), "the reference view")
        stats = dict(zip(stat_names, run(stats_session, view)[1:], strict=True))
        return blend(
            lambda *box: run(tile_session, crop(image, *box), **stats)[0],
            image.shape[-2:],
            tile,
            overlap,
            HALO,
        )

    for content, picture, image, target in zip(contents, pictures, images, outputs, strict=True):
        y = stylise(picture, image)
        pixels = (y[0].transpose(1, 2, 0) * 255.0).round().astype(np.uint8)
        result = Image.fromarray(pixels, mode="RGB")
        if side:  # back to the photo's own size
            result = result.resize(read_size(content, size), Image.Resampling.BILINEAR)
        written.append(save_picture(result, target, tuple(contents)))
    return written
