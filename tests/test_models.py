"""Feed-forward networks (nst.models): sizes, the registry, checkpoints on disk, `nst apply`."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from PIL import Image

from nst import NstError
from nst.cli import main
from nst.models import get_model, list_models
from nst.models.apply import apply_network, stylize_files
from nst.models.io import FORMAT, CheckpointError, check_compatible, load_model
from nst.models.registry import model_options
from nst.optimize.controls.color import rgb_to_yiq

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return get_model("johnson", width=8).eval()


def save_net(path: Path, net: torch.nn.Module, **meta: object) -> Path:
    data = {
        "format": FORMAT,
        "meta": {"method": "johnson", "options": {"width": 8}, **meta},
        "model": net.state_dict(),
    }
    torch.save(data, path)
    return path


@pytest.mark.parametrize("hw", [(1, 1), (3, 5), (7, 8), (31, 33), (32, 32), (65, 47), (20, 90)])
def test_network_keeps_any_input_size_and_stays_in_unit_range(
    net: torch.nn.Module, hw: tuple[int, int]
) -> None:
    with torch.no_grad():
        y = net(torch.rand(2, 3, *hw))
    assert y.shape == (2, 3, *hw)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_network_uses_nearest_upsampling_and_instance_norm(net: torch.nn.Module) -> None:
    kinds = {type(m).__name__ for m in net.modules()}
    assert "ConvTranspose2d" not in kinds and "BatchNorm2d" not in kinds
    assert {"Upsample", "InstanceNorm2d", "ReflectionPad2d"} <= kinds
    assert all(m.affine for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d))
    first = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.kernel_size == (9, 9) and first.out_channels == 8


def test_registry_lists_builds_and_rejects_unknown_names_and_options() -> None:
    assert list_models() == ["adain", "cin", "johnson", "stytr"]  # the trained methods
    assert model_options("johnson") == {"width": 32, "output": "sigmoid"}
    with pytest.raises(
        NstError, match="unknown model 'nope'; registered: adain, cin, johnson, stytr"
    ):
        get_model("nope")
    with pytest.raises(NstError, match="no option.*depth; valid: width"):
        get_model("johnson", depth=3)


def test_load_model_rebuilds_the_network_from_its_meta(
    tmp_path: Path, net: torch.nn.Module
) -> None:
    path = save_net(tmp_path / "m.pt", net, step=3)
    loaded, meta = load_model(path)
    x = torch.rand(1, 3, 24, 20)
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert meta["step"] == 3 and not loaded.training


def test_bad_checkpoints_are_one_line_errors(tmp_path: Path, net: torch.nn.Module) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    good = save_net(tmp_path / "good.pt", net)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:2000])
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "meta": {}, "model": {}, "x": Path("a")}, pickled)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Path("a")))
    state_only = tmp_path / "state.pt"
    torch.save(net.state_dict(), state_only)
    cases = {
        tmp_path / "missing.pt": "no such file",
        tmp_path: "is a directory",
        corrupt: "corrupt or truncated",
        truncated: "corrupt or truncated",
        pickled: "refusing to load pickled Python objects",
        raw: "refusing to load pickled|corrupt",
        state_only: "not an nst feed-forward checkpoint",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as err:
            load_model(path)
        assert "\n" not in str(err.value)
    wide = save_net(tmp_path / "wide.pt", get_model("johnson", width=16))
    torch.save(
        {
            **torch.load(wide, weights_only=True),
            "meta": {"method": "johnson", "options": {"width": 8}},
        },
        wide,
    )
    with pytest.raises(CheckpointError, match="weights do not fit a johnson \\(width=8\\)"):
        load_model(wide)
    with pytest.raises(
        CheckpointError,
        match="holds a johnson \\(width=8\\) network, but this run is johnson \\(width=32\\)",
    ):
        check_compatible(
            {"method": "johnson", "options": {"width": 8}}, "johnson", {"width": 32}, "x"
        )


def test_stylize_batches_mixed_sizes_and_matches_one_by_one(net: torch.nn.Module) -> None:
    images = [torch.rand(1, 3, 20, 24), torch.rand(1, 3, 17, 9), torch.rand(1, 3, 20, 24)]
    together = apply_network(net, images, batch_size=3)
    alone = [apply_network(net, [im])[0] for im in images]
    assert [t.shape for t in together] == [im.shape for im in images]
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_luminance_colour_keeps_the_photos_chroma(net: torch.nn.Module) -> None:
    photo = torch.rand(1, 3, 16, 16) * 0.5 + 0.25
    out = apply_network(net, [photo], color="luminance")[0]
    iq_out, iq_photo = rgb_to_yiq(out)[:, 1:], rgb_to_yiq(photo)[:, 1:]
    torch.testing.assert_close(iq_out, iq_photo, atol=2e-3, rtol=0)
    hist = apply_network(net, [photo], color="histogram")[0]
    assert hist.shape == photo.shape and not torch.equal(hist, apply_network(net, [photo])[0])


def write_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


def test_nst_apply_writes_one_image_per_input(tmp_path: Path, net: torch.nn.Module) -> None:
    model = save_net(tmp_path / "m.pt", net)
    a = write_png(tmp_path / "a.png", (30, 20), (200, 30, 30))
    b = write_png(tmp_path / "b.png", (13, 17), (30, 200, 30))
    out = tmp_path / "out"
    argv = [
        "apply",
        "--model",
        str(model),
        "--content",
        str(a),
        str(b),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--color",
        "luminance",
    ]
    assert main(argv) == 0
    assert Image.open(out / "a.png").size == (30, 20) and Image.open(out / "b.png").size == (13, 17)
    assert main([*argv, "--size", "40"]) == 0
    assert Image.open(out / "a.png").size == (40, 27)
    written = stylize_files(model, [a, a], tmp_path / "twice", device="cpu")
    assert [p.name for p in written] == ["a.png", "a_2.png"]


def test_nst_apply_bad_inputs_exit_2_with_one_line(
    tmp_path: Path, net: torch.nn.Module, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_net(tmp_path / "m.pt", net)
    photo = write_png(tmp_path / "a.png", (20, 20), (10, 20, 30))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": FORMAT, "obj": Path("x")}, pickled)
    for model_arg, content in ((tmp_path / "none.pt", photo), (pickled, photo), (model, broken)):
        argv = [
            "apply",
            "--model",
            str(model_arg),
            "--content",
            str(content),
            "--out",
            str(tmp_path / "o"),
            "--device",
            "cpu",
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("nst apply: error:") and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
