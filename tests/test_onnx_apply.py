"""`nst apply --model model.onnx` (nst.models.onnx_apply): an exported network under onnxruntime,
in a process that never imports torch, giving the checkpoint's image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_train import make_photos, small

from nst.cli import main
from nst.models import get_model
from nst.train.checkpoint import save_model

pytestmark = pytest.mark.usefixtures("one_thread_module")

#: runs `nst ...` in a fresh interpreter and says whether torch was imported
NO_TORCH = (
    "import sys\n"
    "from nst.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('TORCH', 'torch' in sys.modules)\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model.pt, model.onnx) of a small johnson network with non-trivial norms."""
    tmp = tmp_path_factory.mktemp("onnx_apply")
    torch.manual_seed(0)
    net = get_model("johnson", width=8)
    for module in net.modules():
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    checkpoint = save_model(tmp / "model.pt", net, small(tmp, steps=1), 1, {})
    assert main(["export", "--model", str(checkpoint), "--onnx", str(tmp / "model.onnx")]) == 0
    return checkpoint, tmp / "model.onnx"


def test_the_onnx_file_gives_the_checkpoints_image_without_torch(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    checkpoint, onnx_file = exported
    photos = make_photos(tmp_path / "photos", n=2)
    contents = [str(p) for p in sorted(photos.glob("*.png"))]
    argv = ["apply", "--content", *contents, "--size", "48"]
    assert main([*argv, "--model", str(checkpoint), "--out", str(tmp_path / "eager")]) == 0
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            NO_TORCH,
            *argv,
            "--model",
            str(onnx_file),
            "--out",
            str(tmp_path / "onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH False" in done.stdout
    for name in ("p0.png", "p1.png"):
        eager, onnx = (
            np.asarray(Image.open(tmp_path / d / name), dtype=int) for d in ("eager", "onnx")
        )
        assert eager.shape == onnx.shape and max(eager.shape[:2]) == 48
        assert np.abs(eager - onnx).max() <= 1  # one 8-bit level: rounding of a 1e-5 difference


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--color", "luminance"], "--color: not available for an ONNX file"),
        (["--tile", "auto"], "--tile auto: not available for an ONNX file"),
        (["--style", "STYLE"], "has its style built in: drop --style"),
    ],
)
def test_what_the_graph_cannot_do_is_one_line(
    exported: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    photo = make_photos(tmp_path / "photos", n=1) / "p0.png"
    extra = [str(photo) if e == "STYLE" else e for e in extra]
    argv = ["apply", "--model", str(exported[1]), "--content", str(photo)]
    assert main([*argv, "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not (tmp_path / "out" / "p0.png").exists()


def test_a_file_that_is_not_a_graph_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a graph")
    photo = make_photos(tmp_path / "photos", n=1) / "p0.png"
    argv = ["apply", "--model", str(bad), "--content", str(photo), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "not an ONNX graph onnxruntime can load" in capsys.readouterr().err


def test_the_graph_in_tiles_without_torch_has_no_seam(
    exported: tuple[Path, Path], tmp_path: Path
) -> None:
    """`--tile` on the graph, split so every tile normalises with the whole image's statistics
    (nst.models.onnx_apply.split_normalisation): no seam where tiles meet, and the checkpoint's
    tiled result (measured mean 8-bit difference from the whole image 0.015 both; the graph
    tiled as a black box, each tile normalised by itself, was 17)."""
    from test_tiling import photo, seam_ratio

    from nst.images import save_image
    from nst.models.tiles import starts

    content = save_image(photo(160, 240), tmp_path / "photo.png")
    argv = ["apply", "--content", str(content), "--model", str(exported[1])]
    tiled = [*argv, "--out", str(tmp_path / "tiled"), "--tile", "64"]
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *tiled], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH False" in done.stdout
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    assert (
        main([*argv[:-1], str(exported[0]), "--out", str(tmp_path / "ckpt"), "--tile", "64"]) == 0
    )

    def read(folder: str) -> np.ndarray:
        return np.asarray(Image.open(tmp_path / folder / "photo.png"), dtype=np.float32)

    whole, graph, checkpoint = read("whole"), read("tiled"), read("ckpt")
    s = starts(240, 64, 16)
    borders = [x + 64 for x in s[:-1]] + s[1:]

    def seams(image: np.ndarray) -> float:
        return seam_ratio(torch.from_numpy(image).permute(2, 0, 1)[None] / 255, borders)

    assert seams(graph) < 1.5 * max(seams(whole), 1.0), (seams(graph), seams(whole))
    assert np.abs(graph - whole).mean() < 0.1 and np.abs(graph - whole).max() <= 2
    assert np.abs(graph - checkpoint).max() <= 2


def test_an_external_graph_runs_by_its_conventions_without_torch(tmp_path: Path) -> None:
    """Another's graph (Reinhard's colour transfer: NHWC, 0-255, inputs photo and painting,
    test_plugins) through `nst apply`: its conventions from --onnx-layout and
    --onnx-value-range, torch never imported, the function's own result to an 8-bit level;
    the wrong conventions are one line."""
    from test_plugins import export_reinhard, reinhard_nchw

    from nst.images import load_image

    graph = export_reinhard(tmp_path / "reinhard.onnx")
    photos = make_photos(tmp_path / "photos", n=2)
    content, style = photos / "p0.png", photos / "p1.png"
    argv = ["apply", "--model", str(graph), "--content", str(content), "--style", str(style)]
    conventions = ["--onnx-layout", "nhwc", "--onnx-value-range", "0-255"]
    done = subprocess.run(
        [sys.executable, "-c", NO_TORCH, *argv, *conventions, "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "TORCH False" in done.stdout
    expected = reinhard_nchw(load_image(content), load_image(style))[0].permute(1, 2, 0)
    got = np.asarray(Image.open(tmp_path / "o" / "p0.png"), dtype=np.float32) / 255
    assert np.abs(got - expected.numpy()).max() <= 1 / 255 + 1e-4
    assert main([*argv, "--out", str(tmp_path / "wrong")]) == 2  # nchw, 0-1: not this graph
    assert not (tmp_path / "wrong" / "p0.png").exists()
