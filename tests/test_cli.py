"""`nst transfer` end to end, as a user runs it."""

import json
import subprocess
import sys

import pytest
from helpers import transfer_argv
from PIL import Image

from nst.cli import main


def nst(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nst", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def pair(tmp_path, sample_data):
    return sample_data / "content" / "chelsea.png", sample_data / "style" / "composition_0_0.png"


def test_transfer_end_to_end_at_64px_with_json_summary(tmp_path, pair):
    out = tmp_path / "out.png"
    proc = nst(*transfer_argv(content=pair[0], style=pair[1], out=out, size=64, steps=5, json=True))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["steps"] == 5 and summary["output"] == str(out)
    assert set(summary["final_losses"]) == {"content", "style", "tv", "total"}
    assert (
        summary["weights"]["identity"] == "random:seed=0"
        and len(summary["weights"]["sha256"]) == 64
    )
    assert summary["seconds_per_step"] > 0 and summary["peak_memory_mb"] > 0
    assert summary["versions"]["torch"].startswith("2.14.1") and summary["seed"] == 0
    assert "RandomWeightsWarning" in proc.stderr  # loud, on stderr, not in the JSON
    with Image.open(out) as img:
        assert max(img.size) == 64 and img.mode == "RGB"


def test_cli_is_deterministic_byte_for_byte(tmp_path, pair):
    outs = [tmp_path / "a.png", tmp_path / "b.png"]
    for out in outs:
        argv = transfer_argv(content=pair[0], style=pair[1], out=out, steps=3, init="noise", seed=3)
        proc = nst(*argv)
        assert proc.returncode == 0, proc.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_config_file_and_overrides(tmp_path, pair):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("steps: 2\nsize: 32\nweights: random\nbeta: 1.0e+4\n")
    # size and weights come from the file alone
    argv = transfer_argv(
        content=pair[0],
        style=pair[1],
        out=tmp_path / "o.png",
        size=None,
        weights=None,
        config=cfg,
        steps=3,
        json=True,
    )
    proc = nst(*argv)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (
        summary["steps"] == 3
        and summary["config"]["beta"] == 1e4
        and summary["config"]["size"] == 32
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "steps must be at least 1"),
        (["--beta", "lots"], "beta='lots'"),
        (["--backbone", "alexnet"], "unknown backbone 'alexnet'"),
        (["--style-layers", "relu9_9"], "no layer(s) relu9_9"),
        (["--weights", "/nonexistent/w.pth"], "no such file"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, pair, args, message, capsys):
    # in-process (fast); the subprocess tests in test_images.py check there is no traceback
    code = main(transfer_argv(*args, content=pair[0], style=pair[1], out=tmp_path / "o.png"))
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("error:") == 1 and not (tmp_path / "o.png").exists()


def test_out_must_not_be_an_input(tmp_path, pair):
    content = tmp_path / "c.png"
    content.write_bytes(pair[0].read_bytes())
    before = content.read_bytes()
    proc = nst(*transfer_argv(content=content, style=pair[1], out=content))
    assert proc.returncode == 2 and "is an input image" in proc.stderr
    assert content.read_bytes() == before


@pytest.mark.parametrize("panorama", ["content", "style"])
def test_an_image_too_small_for_the_network_is_a_one_line_error(tmp_path, panorama, capsys):
    """A 4000x12 panorama at --size 48 is 48x1 px: VGG's pooling needs 16 px on each side to
    reach relu5_1 (four 2x2 poolings), so the user gets one line, not max_pool2d's traceback."""
    files = {"content": tmp_path / "square.png", "style": tmp_path / "square.png"}
    Image.new("RGB", (64, 64), (10, 20, 200)).save(files["content"])
    files[panorama] = tmp_path / "panorama.png"
    Image.new("RGB", (4000, 12), (200, 120, 40)).save(files[panorama])
    out = tmp_path / "o.png"
    code = main(transfer_argv(content=files["content"], style=files["style"], out=out, size=48))
    err = capsys.readouterr().err
    assert code == 2, err
    assert (
        err.count("\n") == 1 and err.startswith("nst transfer: error: ") and "Traceback" not in err
    )
    assert "48x1 px" in err and "at least 16 px" in err and "relu5_1" in err, err
    assert "long side 48" in err and not out.exists()


def test_help_and_version():
    assert nst("--version").stdout.startswith("nst ")
    helptext = nst("transfer", "--help").stdout
    for option in (
        "--content-layers",
        "--style-layers",
        "--optimizer",
        "--lbfgs-history",
        "--dtype",
        "--json",
    ):
        assert option in helptext
