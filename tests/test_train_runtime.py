"""How a training run computes, on the CPU: fp16 autocast with its gradient scaler, DataLoader
workers, the deterministic mode and its record, torch.compile (slow). Their CUDA halves (the
same bytes twice, resume equal to an uninterrupted run on a GPU) are in test_gpu.py."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_train import make_photos, small, weights

from nst.cli import main
from nst.losses import gram
from nst.models.padding import ReflectionPad2d, reflect
from nst.runtime import deterministic, noting_nondeterminism
from nst.train import train
from nst.train.data import ContentStream, batches

pytestmark = pytest.mark.usefixtures("one_thread")


def same_bytes(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# --- fp16 ---------------------------------------------------------------------------------


def test_fp16_gram_matrix_of_a_256px_layer_does_not_overflow() -> None:
    """sum_k F_ik F_jk over 65,536 positions passes fp16's 65504; the scaled product does not."""
    f = torch.rand(1, 4, 256, 256) * 2
    exact = gram(f)
    half = gram(f.half())
    assert torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), exact, rtol=2e-3, atol=0)
    torch.testing.assert_close(
        gram(f.half(), normalize=False), gram(f, normalize=False), rtol=2e-3, atol=0
    )
    # what the product gives without the scaling: the reason for it
    assert torch.isinf(f.half()[0].reshape(4, -1) @ f.half()[0].reshape(4, -1).T).any()


def test_fp16_training_saves_its_scaler_and_resumes_bit_identical(tmp_path: Path) -> None:
    config = small(tmp_path, dtype="float16")
    whole = train(config, tmp_path / "whole", progress=False)
    assert all(torch.isfinite(torch.tensor(v)) for v in whole.final_losses.values())
    saved = torch.load(whole.checkpoint, weights_only=True)["train"]["scaler"]
    assert saved["scale"] > 0 and "_growth_tracker" in saved
    half = small(tmp_path, dtype="float16", steps=2)
    train(half, tmp_path / "split", progress=False)
    train(config, tmp_path / "split", resume=True, progress=False)
    assert same_bytes(whole.model, tmp_path / "split" / "model.pt")
    # fp32 keeps no scaler state: its checkpoints are what they were
    plain = train(small(tmp_path, steps=2), tmp_path / "fp32", progress=False)
    assert "scaler" not in torch.load(plain.checkpoint, weights_only=True)["train"]


# --- DataLoader workers -------------------------------------------------------------------


def test_workers_deliver_the_loops_batches_and_positions_and_merge_skipped_files(
    tmp_path: Path,
) -> None:
    folder = make_photos(tmp_path / "p", n=5)
    (folder / "cut.png").write_bytes((folder / "p0.png").read_bytes()[:60])  # decodes badly
    here = ContentStream(folder, 24, 3, seed=4, warn=False)
    ahead = ContentStream(folder, 24, 3, seed=4, warn=False)
    inline, loaded = batches(here, 0, pin=False), batches(ahead, 2, pin=False)
    try:
        for _ in range(5):  # crosses three epochs of 6 files
            assert torch.equal(next(inline), next(loaded))
            assert ahead.position == here.position
    finally:
        loaded.close()
    assert [p.name for p in ahead.skipped] == [p.name for p in here.skipped] == ["cut.png"]


def test_training_with_workers_ends_with_the_same_bytes(tmp_path: Path) -> None:
    inline = train(small(tmp_path), tmp_path / "inline", progress=False)
    loaded = train(small(tmp_path, workers=2), tmp_path / "loaded", progress=False)
    assert same_bytes(inline.model, loaded.model)


# --- deterministic mode -------------------------------------------------------------------


def test_deterministic_mode_is_scoped_and_names_ops_without_a_deterministic_kernel() -> None:
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    ops: list[str] = []
    with deterministic(True):
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        with noting_nondeterminism(ops), pytest.warns(UserWarning, match="other warning"):
            torch.zeros(3).put_(torch.tensor([0]), torch.tensor([1.0]))  # no deterministic put_
            warnings.warn("other warning", UserWarning, stacklevel=1)  # passes through
    assert ops == ["put_"]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


def test_deterministic_reflection_padding_equals_the_fused_kernel() -> None:
    x = torch.rand(2, 3, 9, 7, requires_grad=True)
    y = reflect(reflect(x, 2, -2), 2, -1)
    fused = F.pad(x, (2, 2, 2, 2), "reflect")
    assert torch.equal(y, fused)
    (gy,) = torch.autograd.grad((y * fused.detach()).sum(), x)
    (gf,) = torch.autograd.grad((fused * fused.detach()).sum(), x)
    torch.testing.assert_close(gy, gf)
    assert torch.equal(ReflectionPad2d(2)(x), fused)


def test_deterministic_training_is_recorded_with_the_run(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = small(tmp_path, deterministic=True)
    args = ["train", "--out", str(tmp_path / "run"), "--no-track", "--json", "--deterministic"]
    for key in ("data", "style", "size", "width", "steps", "batch_size", "backbone", "device"):
        args += [f"--{key.replace('_', '-')}", str(getattr(config, key))]
    assert main(args) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["nondeterministic_ops"] == []  # every CPU kernel here is deterministic
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["meta"]["config"]
    assert saved["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled()  # the mode ends with the run


# --- torch.compile ------------------------------------------------------------------------


@pytest.mark.slow
def test_compiled_training_saves_plain_weights_close_to_eager(tmp_path: Path) -> None:
    """About 70 s on 2 cores, most of it compiling; compiled kernels round differently."""
    eager = train(small(tmp_path, steps=3), tmp_path / "eager", progress=False)
    compiled = train(small(tmp_path, steps=3, compile=True), tmp_path / "compiled", progress=False)
    assert weights(eager.model).keys() == weights(compiled.model).keys()  # no compile prefix
    # Adam moves a weight whose gradient is near zero by about lr either way, so the weights
    # are compared through what they compute: the losses of every step
    for e, c in zip(eager.history, compiled.history, strict=True):
        assert c["total"] == pytest.approx(e["total"], rel=1e-2)
