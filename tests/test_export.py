"""A trained network outside nst.train: the MLflow model of a tracked run (pyfunc in a plain
subprocess, runs:/ and models:/ URIs for `nst apply`, what the run logged), and the ONNX export
(onnxruntime against torch at two sizes, bad --model inputs)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import ENV, make_photos, make_style, small

from nst.cli import main
from nst.models import get_model
from nst.train.checkpoint import save_model

pytestmark = pytest.mark.usefixtures("one_thread")


#: the tracked training behind these three tests: mlflow import, a sqlite store, Lite0 and a
#: pyfunc load in a subprocess take 40-110 s on the shared 2-core machine
tracked = pytest.mark.slow


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """`nst train` of a tiny network (size 32, width 8, 3 steps, pretrained Lite0 loss) tracked
    into a temporary sqlite store and registered as model `tiny`."""
    tmp = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{tmp / 'm.db'}"
    argv = [
        "train",
        "--out",
        str(tmp / "run"),
        "--data",
        str(make_photos(tmp / "photos")),
        "--style",
        str(make_style(tmp / "s.png")),
        "--size",
        "32",
        "--width",
        "8",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--backbone",
        "efficientnet_lite0",
        "--device",
        "cpu",
        "--sample-every",
        "1",
        "--log-every",
        "1",
        "--val-images",
        "2",
        "--checkpoint-every",
        "0",
        "--tracking-uri",
        uri,
        "--experiment",
        "ff",
        "--register-model",
        "tiny",
    ]
    assert main(argv) == 0
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("ff").experiment_id])
    return {"tmp": tmp, "uri": uri, "run_id": run.info.run_id, "client": client}


@tracked
def test_the_mlflow_model_predicts_in_a_plain_subprocess_like_torch(
    tracked_run: dict[str, object],
) -> None:
    from nst.models import load_model

    tmp, uri, run_id = Path(str(tracked_run["tmp"])), tracked_run["uri"], tracked_run["run_id"]
    x = np.random.default_rng(0).random((2, 40, 36, 3), dtype=np.float32)  # NHWC
    np.save(tmp / "x.npy", x)
    script = (
        "import sys, mlflow, numpy as np\n"
        f"mlflow.set_tracking_uri({uri!r})\n"
        f"model = mlflow.pyfunc.load_model('runs:/{run_id}/model')\n"
        f"x = np.load({str(tmp / 'x.npy')!r})\n"
        f"np.save({str(tmp / 'y.npy')!r}, model.predict(x))\n"
        f"np.save({str(tmp / 'z.npy')!r}, model.predict(x.transpose(0, 3, 1, 2).copy()))\n"
        "print(model.metadata.signature.to_dict()['inputs'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"float32"' in done.stdout and "[-1, -1, -1, -1]" in done.stdout
    net, _ = load_model(tmp / "run" / "model.pt")
    with torch.no_grad():
        expected = net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    y, z = np.load(tmp / "y.npy"), np.load(tmp / "z.npy")
    assert y.shape == x.shape and z.shape == (2, 3, 40, 36)
    assert np.abs(y.transpose(0, 3, 1, 2) - expected).max() <= 1e-5
    assert np.abs(z - expected).max() <= 1e-5


@tracked
def test_nst_apply_takes_runs_and_models_uris(
    tracked_run: dict[str, object], capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    tmp, uri, run_id = Path(str(tracked_run["tmp"])), str(tracked_run["uri"]), tracked_run["run_id"]
    photo = tmp / "photos" / "p0.png"
    outputs = {}
    for name, spec in (
        ("run", f"runs:/{run_id}/model"),
        ("file", f"runs:/{run_id}/checkpoint/model.pt"),
        ("registry", "models:/tiny/1"),
        ("path", str(tmp / "run" / "model.pt")),
    ):
        out = tmp / f"applied_{name}"
        argv = [
            "apply",
            "--model",
            spec,
            "--content",
            str(photo),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--tracking-uri",
            uri,
        ]
        assert main(argv) == 0, capsys.readouterr().err
        outputs[name] = np.asarray(Image.open(out / "p0.png"))
    assert outputs["run"].shape == np.asarray(Image.open(photo).convert("RGB")).shape
    assert all(np.array_equal(outputs["path"], v) for v in outputs.values())
    capsys.readouterr()
    assert (
        main(
            [
                "apply",
                "--model",
                f"runs:/{run_id}/nothing",
                "--content",
                str(photo),
                "--out",
                str(tmp / "x"),
                "--tracking-uri",
                uri,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "runs:/" in err, err


@tracked
def test_the_run_logged_params_curves_samples_checkpoint_and_model(
    tracked_run: dict[str, object],
) -> None:
    client, run_id = tracked_run["client"], str(tracked_run["run_id"])
    run = client.get_run(run_id)  # type: ignore[attr-defined]
    params = run.data.params
    assert params["method"] == "johnson" and params["width"] == "8" and params["steps"] == "3"
    assert params["backbone"] == "efficientnet_lite0"
    assert run.data.tags["nst.kind"] == "train" and run.info.status == "FINISHED"
    for term in ("content", "style", "tv", "total"):
        history = client.get_metric_history(run_id, f"loss/{term}")  # type: ignore[attr-defined]
        assert sorted(m.step for m in history) == [1, 2, 3], term
        assert all(np.isfinite(m.value) for m in history)
    images = [f.path for f in client.list_artifacts(run_id, "images")]  # type: ignore[attr-defined]
    sample_steps = {int(p.split("+step+")[1].split("+")[0]) for p in images if "samples+step+" in p}
    assert sample_steps == {1, 2, 3}
    assert {"images/style.png", "images/validation.png"} <= set(images)
    files = {f.path for f in client.list_artifacts(run_id, "checkpoint")}  # type: ignore[attr-defined]
    assert files == {"checkpoint/checkpoint.pt", "checkpoint/model.pt"}
    (logged,) = client.search_logged_models([run.info.experiment_id])  # type: ignore[attr-defined]
    assert logged.name == "model" and logged.source_run_id == run_id
    model = {f.path for f in client.list_logged_model_artifacts(logged.model_id)}  # type: ignore[attr-defined]
    assert {"MLmodel", "artifacts", "mlflow_model.py"} <= model
    assert "python_model.pkl" not in model  # a model from code: nothing pickled
    (version,) = client.search_model_versions("name = 'tiny'")  # type: ignore[attr-defined]
    assert version.run_id == run_id and str(version.version) == "1"


# --- ONNX ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    net = get_model("johnson", width=8)
    for module in net.modules():  # non-trivial instance-norm affine parameters
        if isinstance(module, torch.nn.InstanceNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    path = tmp / "model.pt"
    config = small(tmp, steps=1)
    save_model(path, net, config, 1, {})
    return path


def test_onnx_export_matches_torch_at_two_sizes_and_batches(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx

    from nst.models import load_model
    from nst.models.export import run_onnx, session

    out = tmp_path / "sub" / "net.onnx"
    assert main(["export", "--model", str(checkpoint), "--onnx", str(out)]) == 0
    assert "max |diff|" in capsys.readouterr().err
    proto = onnx.load(str(out))
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "", "height", "width"]
    assert {p.key: p.value for p in proto.metadata_props}["nst.method"] == "johnson"
    net, _ = load_model(checkpoint)
    sess = session(out, threads=1)
    for shape in ((1, 3, 64, 64), (2, 3, 96, 80), (1, 3, 37, 50)):
        x = torch.rand(*shape)
        with torch.no_grad():
            expected = net(x).numpy()
        got = run_onnx(sess, x)
        assert got.shape == shape
        assert np.abs(got - expected).max() <= 1e-3, shape
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary left


def test_export_of_a_bad_model_is_one_line_exit_2_and_writes_nothing(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(checkpoint.read_bytes()[:1000])
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "nst.feedforward/1", "obj": Path("x")}, pickled)
    out = tmp_path / "net.onnx"
    out.write_bytes(b"keep me")
    cases = [
        (tmp_path / "missing.pt", "no such file"),
        (corrupt, "corrupt or truncated"),
        (pickled, "refusing to load pickled"),
    ]
    for model, message in cases:
        capsys.readouterr()
        assert main(["export", "--model", str(model), "--onnx", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "Traceback" not in err and message in err, err
    assert out.read_bytes() == b"keep me"


def test_nst_apply_writes_images_others_can_read(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under umask 022 a stylised image is 0644, as any file a program writes, not 0600."""
    photo = make_photos(tmp_path / "photos", n=1) / "p0.png"
    old = os.umask(0o022)
    try:
        argv = [
            "apply",
            "--model",
            str(checkpoint),
            "--content",
            str(photo),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
        assert main(argv) == 0, capsys.readouterr().err
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out" / "p0.png").stat().st_mode) == 0o644


def test_an_output_that_cannot_be_written_is_one_line_before_any_work(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """export --onnx, apply --out and train --out under a regular file (no folder can be made
    there), or naming a folder where a file goes: exit 2, one line naming the option."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    photo = make_photos(tmp_path / "photos", n=1) / "p0.png"
    cases = [
        (
            ["export", "--model", str(checkpoint), "--onnx", str(blocker / "sub" / "net.onnx")],
            f"--onnx {blocker / 'sub' / 'net.onnx'}: {blocker} is a file, so no folder can be made",
        ),
        (
            ["export", "--model", str(checkpoint), "--onnx", str(tmp_path)],
            f"--onnx {tmp_path} is a folder: name a file",
        ),
        (
            [
                "apply",
                "--model",
                str(checkpoint),
                "--content",
                str(photo),
                "--out",
                str(blocker / "out"),
                "--device",
                "cpu",
            ],
            f"--out {blocker / 'out'}: {blocker} is a file, so no folder can be made",
        ),
        (
            [
                "train",
                "--out",
                str(blocker / "run"),
                "--no-track",
                "--data",
                str(photo.parent),
                "--style",
                str(photo),
                "--steps",
                "1",
                "--size",
                "32",
            ],
            f"--out {blocker / 'run'}: {blocker} is a file, so no folder can be made",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and message in err, err
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "photos"]
