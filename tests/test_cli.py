"""`nst transfer` end to end, as a user runs it."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from nst.cli import main


def nst(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nst", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def pair(tmp_path, shared_data):
    return shared_data / "content" / "chelsea.png", shared_data / "style" / "starry_night.jpg"


def test_transfer_end_to_end_at_64px_with_json_summary(tmp_path, pair):
    out = tmp_path / "out.png"
    proc = nst(
        "transfer",
        "--content",
        str(pair[0]),
        "--style",
        str(pair[1]),
        "--out",
        str(out),
        "--size",
        "64",
        "--steps",
        "5",
        "--weights",
        "random",
        "--json",
        "--no-track",
    )
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
        args = (
            "--size",
            "32",
            "--steps",
            "3",
            "--weights",
            "random",
            "--init",
            "noise",
            "--seed",
            "3",
        )
        proc = nst(
            "transfer",
            "--content",
            str(pair[0]),
            "--style",
            str(pair[1]),
            "--out",
            str(out),
            *args,
            "--no-track",
        )
        assert proc.returncode == 0, proc.stderr
    assert outs[0].read_bytes() == outs[1].read_bytes()


def test_config_file_and_overrides(tmp_path, pair):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("steps: 2\nsize: 32\nweights: random\nbeta: 1.0e+4\n")
    proc = nst(
        "transfer",
        "--content",
        str(pair[0]),
        "--style",
        str(pair[1]),
        "--out",
        str(tmp_path / "o.png"),
        "--config",
        str(cfg),
        "--steps",
        "3",
        "--json",
        "--no-track",
    )
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
    code = main(
        [
            "transfer",
            "--content",
            str(pair[0]),
            "--style",
            str(pair[1]),
            "--out",
            str(tmp_path / "o.png"),
            "--size",
            "32",
            "--steps",
            "1",
            "--no-track",
            *args,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert err.count("error:") == 1 and not (tmp_path / "o.png").exists()


def test_out_must_not_be_an_input(tmp_path, pair):
    content = tmp_path / "c.png"
    content.write_bytes(pair[0].read_bytes())
    before = content.read_bytes()
    proc = nst(
        "transfer",
        "--content",
        str(content),
        "--style",
        str(pair[1]),
        "--out",
        str(content),
        "--size",
        "32",
        "--steps",
        "1",
        "--no-track",
    )
    assert proc.returncode == 2 and "is an input image" in proc.stderr
    assert content.read_bytes() == before


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
