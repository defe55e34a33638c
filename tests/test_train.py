"""Feed-forward training (nst.train): config, content stream, loss going down, a held-out style
gain, bit-identical resume after SIGKILL, 2-process DDP against 1 process, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nst import NstError
from nst.cli import main
from nst.train import TrainConfig, train
from nst.train.checkpoint import CHECKPOINT
from nst.train.data import ContentStream, Position

#: in the test sample (conftest.sample_data): the style, and a photo no test trains on
STYLE = "style/composition_0_0.png"
HELD_OUT = "content/camera.png"
TRAIN_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.png")
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
}


pytestmark = pytest.mark.usefixtures("one_thread")


def make_photos(folder: Path, n: int = 6, seed: int = 0) -> Path:
    """Small smooth colour photos of different sizes (and one that is not an image)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = int(rng.integers(36, 60)), int(rng.integers(36, 60))
        yy, xx = np.mgrid[0:h, 0:w] / 10.0
        arr = np.stack([np.sin(xx * (i + 1)), np.cos(yy * (i + 2)), np.sin(xx + yy)], -1)
        Image.fromarray(((arr + 1) * 127.5).astype(np.uint8)).save(folder / f"p{i}.png")
    return folder


def make_style(path: Path) -> Path:
    yy, xx = np.mgrid[0:40, 0:40]
    arr = np.stack([(xx // 4) % 2 * 255, (yy // 4) % 2 * 200, np.full_like(xx, 60)], -1)
    Image.fromarray(arr.astype(np.uint8)).save(path)
    return path


def small(tmp_path: Path, **changes: object) -> TrainConfig:
    values: dict[str, object] = dict(
        data=str(make_photos(tmp_path / "photos")),
        style=str(make_style(tmp_path / "s.png")),
        size=32,
        width=8,
        steps=4,
        batch_size=2,
        backbone="efficientnet_lite0",
        device="cpu",
        checkpoint_every=2,
        sample_every=0,
        log_every=1,
        beta=1e4,
        val_images=2,
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


def cli_args(config: TrainConfig, out: Path) -> list[str]:
    args = ["train", "--out", str(out), "--no-track"]
    for key in (
        "data",
        "style",
        "size",
        "width",
        "steps",
        "batch_size",
        "backbone",
        "device",
        "checkpoint_every",
        "log_every",
        "beta",
        "lr",
        "seed",
        "sample_every",
    ):
        args += [f"--{key.replace('_', '-')}", str(getattr(config, key))]
    return args


def weights(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, map_location="cpu", weights_only=True)["model"])


# --- config and data ----------------------------------------------------------------------


def test_config_rejects_unknown_keys_naming_valid_ones_and_fills_johnsons_layers() -> None:
    with pytest.raises(
        NstError, match="unknown train config key.*stpes; valid keys: method, width"
    ):
        TrainConfig.from_dict({"stpes": 3})
    with pytest.raises(NstError, match="batch_size"):
        TrainConfig.from_dict({"batch_size": "two"})
    c = TrainConfig()
    assert c.content_layers == ("relu2_2",)
    assert c.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    assert TrainConfig(backbone="efficientnet_lite0").content_layers == ("stage3",)
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_stream_is_seeded_restorable_and_split_across_ranks_like_one_big_batch(
    tmp_path: Path,
) -> None:
    folder = make_photos(tmp_path / "p", n=5)
    one = ContentStream(folder, 32, 4, seed=3)
    again = ContentStream(folder, 32, 4, seed=3)
    batches = [one.next_batch() for _ in range(3)]  # 12 items: crosses into epoch 2
    assert one.position == Position(2, 2)
    assert all(torch.equal(a, again.next_batch()) for a in batches)
    restored = ContentStream(folder, 32, 4, seed=3)
    restored.position = Position(0, 4)  # where `one` stood after its first batch
    assert torch.equal(restored.next_batch(), batches[1])
    ranks = [ContentStream(folder, 32, 2, seed=3, rank=r, world_size=2) for r in (0, 1)]
    for big in batches:
        parts = [s.next_batch() for s in ranks]
        assert torch.equal(big[0::2], parts[0]) and torch.equal(big[1::2], parts[1])
    assert ContentStream(folder, 32, 4, seed=4).next_batch().shape == (4, 3, 32, 32)


def test_unreadable_photos_are_skipped_counted_and_warned(tmp_path: Path) -> None:
    folder = make_photos(tmp_path / "p", n=3)
    (folder / "junk.jpg").write_bytes(b"not a jpeg")
    good = folder / "p0.png"
    (folder / "cut.png").write_bytes(good.read_bytes()[:60])  # header readable, data cut
    with pytest.warns(UserWarning, match="skipping content image"):
        stream = ContentStream(folder, 32, 5, seed=0)
        batch = stream.next_batch()
    assert batch.shape == (5, 3, 32, 32)
    assert {p.name for p in stream.skipped} >= {"junk.jpg"}


# --- training -----------------------------------------------------------------------------


def test_64px_training_of_20_steps_lowers_the_training_loss(
    tmp_path: Path, sample_data: Path
) -> None:
    config = small(
        tmp_path,
        data=str(sample_data / "content"),
        style=str(sample_data / STYLE),
        size=64,
        steps=20,
        lr=1e-2,
        checkpoint_every=0,
    )
    result = train(config, tmp_path / "run", progress=False)
    totals = [row["total"] for row in result.history]
    assert len(totals) == 20 and np.mean(totals[-5:]) < 0.7 * np.mean(totals[:5])
    assert (tmp_path / "run" / "model.pt").is_file()


def test_trained_network_moves_a_held_out_photo_towards_the_style(
    tmp_path: Path, sample_data: Path
) -> None:
    """Held-out in two ways: a photo outside the training folder, judged by the Gram distance
    in EfficientNet-Lite2 (nst.metrics.features), not the Lite0 the loss used. The budget has
    a margin on every CPU met so far: 100 steps at beta 1e5 passed on an Intel Xeon but moved
    the distance only to 0.92 of the photo's on an AMD EPYC (another trajectory from other
    float rounding); 200 steps at 3e5 reach 0.66 there."""
    from nst.images import load_image
    from nst.metrics.features import HeldOutNetwork
    from nst.models import load_model

    data = tmp_path / "train"
    data.mkdir()
    for name in TRAIN_PHOTOS:
        (data / name).symlink_to(sample_data / "content" / name)
    config = small(
        tmp_path,
        data=str(data),
        style=str(sample_data / STYLE),
        size=64,
        steps=200,
        lr=5e-3,
        beta=3e5,
        checkpoint_every=0,
        log_every=10,
    )
    result = train(config, tmp_path / "run", progress=False)
    net, meta = load_model(result.model)
    judge = HeldOutNetwork(exclude="efficientnet_lite0")
    photo = load_image(sample_data / HELD_OUT, size=64)
    style = load_image(sample_data / STYLE, size=64)
    with torch.no_grad():
        styled = net(photo)
    before = judge.style_distances(photo, style)["style_gram_dist"]
    after = judge.style_distances(styled, style)["style_gram_dist"]
    assert meta["method"] == "johnson" and meta["options"] == {"width": 8, "output": "sigmoid"}
    assert after < 0.8 * before, (before, after)


def test_non_finite_loss_stops_with_an_error_and_keeps_the_last_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nst.train.perceptual import NetworkPerceptualLoss as PerceptualLoss

    config = small(tmp_path, steps=6, checkpoint_every=2, log_every=2)
    real = PerceptualLoss.terms_of
    calls = {"n": 0}

    def poisoned(self, output, content):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        losses = real(self, output, content)
        if calls["n"] == 3:
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(PerceptualLoss, "terms_of", poisoned)
    with pytest.raises(NstError, match="non-finite loss at step 3.*last checkpoint is intact"):
        train(config, tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert saved["train"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in saved["model"].values())


@pytest.mark.slow  # three interpreter start-ups: 25-45 s on the shared 2-core machine
def test_resume_after_sigkill_ends_bit_identical_to_an_uninterrupted_run(tmp_path: Path) -> None:
    config = small(tmp_path, steps=15, checkpoint_every=5, batch_size=1)
    args = cli_args(config, tmp_path / "killed")
    cmd = [sys.executable, "-m", "nst", *args]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = tmp_path / "killed" / CHECKPOINT
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    step = torch.load(ckpt, weights_only=True)["train"]["step"]
    assert step in (5, 10), "killed between checkpoints, before the end"
    subprocess.run([*cmd, "--resume"], env=ENV, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "nst", *cli_args(config, tmp_path / "whole")],
        env=ENV,
        check=True,
        capture_output=True,
    )
    a, b = weights(tmp_path / "killed" / "model.pt"), weights(tmp_path / "whole" / "model.pt")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(x) for x in (tmp_path / "killed" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 16))  # re-run steps not logged twice


@pytest.mark.slow
def test_two_process_gloo_ddp_matches_one_process_with_the_same_global_batch(
    tmp_path: Path, sample_data: Path
) -> None:
    """The two ranks' share of the global batch equals one process's batch of 2: step 1's
    losses (the data split, before any update) agree to float rounding, step 2's (one Adam
    update from gradients summed in another order) to 1e-3, and the trajectory stays the same
    run. Adam's first steps are sign-like, so rounding on near-zero gradients grows: measured
    on a 2-core Xeon (AVX-512), step 1 2e-7, step 2 6e-5, steps 3-6 up to 5e-2 (content)."""
    config = small(
        tmp_path,
        steps=6,
        checkpoint_every=3,
        batch_size=1,
        data=str(sample_data / "content"),
        style=str(sample_data / STYLE),
    )
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "nst",
    ]
    subprocess.run(
        [*torchrun, *cli_args(config, tmp_path / "ddp")],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )
    one = config.replace(batch_size=2)
    subprocess.run(
        [sys.executable, "-m", "nst", *cli_args(one, tmp_path / "one")],
        env=ENV,
        check=True,
        capture_output=True,
        timeout=300,
    )
    ddp = [json.loads(x) for x in (tmp_path / "ddp" / "losses.jsonl").read_text().splitlines()]
    ref = [json.loads(x) for x in (tmp_path / "one" / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in ddp] == list(range(1, 7))  # one writer: no duplicated rows
    for a, b in zip(ddp, ref, strict=True):
        rel = {1: 1e-5, 2: 1e-3}.get(a["step"], 0.2)
        for term in ("content", "style", "tv", "total"):
            assert a[term] == pytest.approx(b[term], rel=rel), (a["step"], term)
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == [
        "checkpoint.pt",
        "losses.jsonl",
        "model.pt",
    ]


# --- bad input ----------------------------------------------------------------------------


def test_bad_training_inputs_exit_2_with_one_line_and_never_overwrite_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = small(tmp_path, steps=2)
    out = tmp_path / "run"
    assert main(cli_args(config, out)) == 0
    ckpt = out / CHECKPOINT
    before = ckpt.read_bytes()
    capsys.readouterr()
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really")
    pickled = tmp_path / "pickled" / CHECKPOINT
    pickled.parent.mkdir()
    torch.save({"format": "nst.feedforward/1", "obj": Path("x")}, pickled)
    corrupt = tmp_path / "corrupt" / CHECKPOINT
    corrupt.parent.mkdir()
    corrupt.write_bytes(before[: len(before) // 2])
    cases = [
        (cli_args(config, out), "exists: pass --resume"),
        ([*cli_args(config, out), "--resume", "--width", "16"], "width=8 \\(asked '16'\\)"),
        ([*cli_args(config, tmp_path / "e"), "--data", str(empty)], "no readable images"),
        ([*cli_args(config, tmp_path / "b"), "--style", str(broken)], "broken.jpg"),
        ([*cli_args(config, tmp_path / "nothing"), "--resume"], "no checkpoint at"),
        ([*cli_args(config, pickled.parent), "--resume"], "refusing to load pickled"),
        ([*cli_args(config, corrupt.parent), "--resume"], "corrupt or truncated"),
        (
            ["apply", "--model", str(corrupt), "--content", str(broken), "--out", str(tmp_path)],
            "corrupt or truncated",
        ),
    ]
    import re

    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err, err
        assert re.search(message, err), err
    assert ckpt.read_bytes() == before
    assert corrupt.read_bytes() == before[: len(before) // 2]


def test_resume_refuses_a_checkpoint_of_another_width(tmp_path: Path) -> None:
    config = small(tmp_path, steps=2)
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(
        NstError,
        match="holds a johnson \\(output=sigmoid, width=8\\) network, but this run is "
        "johnson \\(output=sigmoid, width=16\\)",
    ):
        train(config.replace(width=16), tmp_path / "run", resume=True, progress=False)
