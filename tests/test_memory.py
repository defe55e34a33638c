"""The memory estimate (nst.memory): sizes parsed, the calibrated line applied, a run that would
not fit refused in one line before any work, --dry-run, --tile auto; and (slow) the estimate
against the measured peak at three sizes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from nst import NstError
from nst.cli import main
from nst.memory import INPUT, Cost, calibration, estimate, lbfgs_mib_per_mp, parse_size

ROOT = Path(__file__).resolve().parents[1]


def test_sizes_parse_and_bad_ones_are_one_line() -> None:
    assert parse_size("4GB") == 4096 and parse_size("512M") == 512 and parse_size("3000") == 3000
    assert parse_size("2.5g") == 2560
    for bad in ("lots", "-1GB", "4TB", "0"):
        with pytest.raises(NstError, match="give a size such as 4GB"):
            parse_size(bad)


def test_the_line_is_the_calibrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {
        "kinds": {
            "apply:johnson": {"base": 500.0, "per_mp": 900.0},
            "apply:buffers": {"base": 0.0, "per_mp": 60.0},
        }
    }
    (tmp_path / "memory.json").write_text(json.dumps(data))
    monkeypatch.setattr("nst.memory.CALIBRATION", tmp_path / "memory.json")
    assert calibration()["apply:johnson"] == Cost(500.0, 900.0)
    whole = estimate("apply:johnson", 2.0, scale=0.5)
    assert whole is not None and whole.mib == pytest.approx(500 + 450 * 2)
    assert whole.largest_mp(whole.mib) == pytest.approx(2.0)
    # in tiles: the passes with the input held, or the buffers at the end, whichever is more
    tiled = estimate("apply:johnson", 1.0, 10.0)
    assert tiled is not None and tiled.mib == pytest.approx(500 + max(900 + INPUT * 10, 600))
    huge = estimate("apply:johnson", 1.0, 100.0)
    assert huge is not None and huge.mib == pytest.approx(500 + 6000)
    assert huge.largest_mp(3000) == 0.0  # the image alone would not fit: no tile does
    assert estimate("apply:stytr", 1.0) is None  # not calibrated: no estimate
    assert lbfgs_mib_per_mp(100) == pytest.approx(2 * 100 * 3 * 4 * 1e6 / 2**20)


def photo(path: Path, w: int = 400, h: int = 300) -> Path:
    Image.new("RGB", (w, h), (120, 80, 40)).save(path)
    return path


def test_a_transfer_that_would_not_fit_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, style = photo(tmp_path / "c.png"), photo(tmp_path / "s.png")
    argv = [
        "transfer",
        "--content",
        str(content),
        "--style",
        str(style),
        "--out",
        str(tmp_path / "out.png"),
        "--backbone",
        "vgg19",
        "--weights",
        "random",
        "--size",
        "4000",
        "--no-track",
        "--device",
        "cpu",
    ]
    t0 = time.perf_counter()
    assert main([*argv, "--max-memory", "3GB"]) == 2
    assert time.perf_counter() - t0 < 5  # no network built, no image decoded
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "more than the 3,072 MiB of --max-memory 3GB" in err, err
    fits = int(err.rsplit("--size ", 1)[1].split()[0])
    assert 100 < fits < 4000 and not (tmp_path / "out.png").exists()
    assert main([*argv, "--dry-run", "--size", "256"]) == 0  # fits: printed, nothing run
    out = capsys.readouterr().out
    assert "c.png: 256 px long side, about" in out and "transfer:vgg19" in out, out
    assert not (tmp_path / "out.png").exists()


def test_apply_dry_run_and_auto_tiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_tiling import runner
    from test_train import small

    from nst.train.checkpoint import save_model

    model, _ = runner("johnson")
    ckpt = save_model(tmp_path / "model.pt", model, small(tmp_path, steps=1), 1, {})
    big = photo(tmp_path / "big.png", 4000, 3000)
    argv = ["apply", "--model", str(ckpt), "--content", str(big), "--out", str(tmp_path / "o")]
    assert main([*argv, "--dry-run"]) == 0
    assert "big.png: 4000x3000 px, whole, about" in capsys.readouterr().out
    assert main([*argv, "--dry-run", "--tile", "auto", "--max-memory", "1500MB"]) == 0
    out = capsys.readouterr().out
    assert "tiles of" in out and "of --max-memory 1500MB" in out, out
    assert main([*argv, "--max-memory", "1500MB"]) == 2  # whole, it would not fit
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--tile " in err and "would fit" in err, err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("kind", "sizes"),
    [
        ("transfer:efficientnet_lite0", (0.5, 1.5, 2.0)),
        ("transfer:vgg19", (0.5, 1.5, 2.0)),
        ("apply:johnson", (0.5, 1.5, 2.0)),
        ("apply:adain:efficientnet_lite0:stage1", (0.5, 1.5, 2.0)),
        ("apply:stytr:deit_small", (0.5, 1.5, 2.0)),
        ("strotss:efficientnet_lite0", (0.5, 1.5, 2.0)),
        ("train:johnson:efficientnet_lite0", (0.2, 0.4, 0.7)),  # batch 2 x 316..592 px crops
    ],
)
def test_the_estimate_is_within_25_percent_of_the_measured_peak(
    kind: str, sizes: tuple[float, ...]
) -> None:
    """Each size a fresh process (benchmarks.calibrate_memory's runs: the command itself), its
    own peak (VmHWM) against the estimate, between and beyond the two calibrated sizes.
    Calibrated on one machine: another CPU's allocator may differ."""
    for mp in sizes:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.calibrate_memory", "--child", f"{kind},{mp},0"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        measured = float(done.stdout.strip().splitlines()[-1])
        found = estimate(kind, mp)
        assert found is not None, kind
        assert abs(found.mib - measured) <= 0.25 * measured, (kind, mp, found.mib, measured)


def test_a_training_that_would_not_fit_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_train import make_photos, make_style

    argv = [
        "train",
        "--method",
        "johnson",
        "--data",
        str(make_photos(tmp_path / "photos")),
        "--style",
        str(make_style(tmp_path / "s.png")),
        "--backbone",
        "vgg16",
        "--weights",
        "random",
        "--out",
        str(tmp_path / "run"),
        "--no-track",
        "--device",
        "cpu",
        "--batch-size",
        "8",
    ]
    assert main([*argv, "--size", "1024", "--max-memory", "4GB"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "train:johnson:vgg16" in err and "--size " in err, err
    fits = int(err.rsplit("--size ", 1)[1].split()[0])
    assert 64 < fits < 1024 and not (tmp_path / "run" / "model.pt").exists()
    assert main([*argv, "--size", str(fits), "--max-memory", "4GB", "--dry-run"]) == 0
    assert f"batch 8 x {fits} px crops: about" in capsys.readouterr().out


def test_a_study_trial_that_would_not_fit_fails_alone_before_any_work() -> None:
    """TrialFunction checks each drawn config (nst.memory.check_config): the trial fails with
    the reason recorded and the study goes on."""
    from nst.config import TransferConfig
    from nst.memory import check_config

    small = TransferConfig(backbone="vgg19", weights="random", size=64, device="cpu")
    check_config(small)  # fits: nothing raised
    huge = small.replace(size=20000, optimizer="lbfgs")
    with pytest.raises(NstError, match=r"transfer:vgg19.*size \d+ would fit"):
        check_config(huge)


def test_nst_study_max_memory_fails_the_trial_that_would_not_fit_and_goes_on(
    tmp_path: Path,
) -> None:
    """`nst study --max-memory`: each trial's drawn config is checked first (TrialFunction,
    nst.memory.check_config); a 4096 px trial under 2 GB fails alone with the refusal as its
    reason, before any work, and the 32 px trials around it complete."""
    import optuna
    import yaml
    from test_faults import spec_dict

    spec = spec_dict("memory_budget", trials=3)
    spec["search"] = {"size": {"type": "categorical", "choices": [32, 4096]}}
    spec["fixed"] = spec["profiles"]["smoke"]["fixed"] = {"steps": 2, "weights": "random"}
    spec["fixed"].update(device="cpu", backbone="vgg19")
    path = tmp_path / "budget.yaml"
    path.write_text(yaml.safe_dump(spec))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    from nst.study.runner import open_study
    from nst.study.spec import load_experiment

    study = open_study(load_experiment(path).with_profile("smoke"), url, 0)
    for size in (32, 4096, 32):
        study.enqueue_trial({"size": size})
    argv = ["study", str(path), "--profile", "smoke", "--storage", url, "--no-track"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--max-memory", "2GB"]) == 0
    trials = optuna.load_study(study_name="memory_budget", storage=url).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    reason = trials[1].user_attrs["fail_reason"]
    assert "transfer:vgg19" in reason and "of --max-memory 2GB" in reason, reason
    assert "--size " in reason and "would fit" in reason
    images = sorted(p.name for p in (tmp_path / "r" / "memory_budget" / "images").iterdir())
    assert images == ["trial000_pair0.png", "trial002_pair0.png"]  # nothing of the refused one
    assert main([*argv, "--out", str(tmp_path / "r"), "--max-memory", "lots"]) == 2


def test_the_stylizer_tiles_a_network_to_fit_and_refuses_what_cannot(tmp_path: Path) -> None:
    """Stylizer(max_memory=...): a trained network's image runs whole when it fits, in the
    largest tile that does when not (the same image as untiled, to rounding: the whole image's
    statistics), and an optimisation predicted not to fit is refused in one line."""
    from test_tiling import photo as structured
    from test_tiling import runner
    from test_train import small

    from nst.config import TransferConfig
    from nst.methods.stylizer import Stylizer
    from nst.train.checkpoint import save_model

    model, _ = runner("johnson")
    ckpt = save_model(tmp_path / "model.pt", model, small(tmp_path, steps=1), 1, {})
    content, style = structured(1000, 1500), structured(64, 64, seed=3)
    whole = Stylizer.from_checkpoint(ckpt).stylize(content, style)
    assert whole.tile == 0
    # between the whole 1.5 MP pass and a tiled run's largest (the 1 MP reference view), for
    # the width-8 network (a quarter of the calibrated width-32 cost)
    need = calibration()["apply:johnson"]
    tiled, untiled = (
        need.base + need.per_mp / 4 * mp + INPUT * 1.5 * (mp < 1.5) for mp in (1, 1.5)
    )
    fitted = Stylizer.from_checkpoint(
        ckpt, tile="auto", max_memory=f"{(tiled + untiled) / 2:.0f}MB"
    )
    done = fitted.stylize(content, style)
    assert 0 < done.tile < 1500, done.tile
    # the statistics of the 1 MP reference view, not of the whole image: near, not equal
    assert float((done.image - whole.image).abs().mean()) < 0.01
    config = TransferConfig(backbone="vgg19", weights="random", size=4096, device="cpu")
    with pytest.raises(NstError, match=r"transfer:vgg19.*of --max-memory 2GB.*--size \d+ would"):
        Stylizer.from_config(config, max_memory="2GB").stylize(content, style)
