"""The methods as their papers and released code define them (issue "The methods as their papers
define them"): AdaIN's decoder capacity on any encoder, StyTr2's decoder layer, the references'
crops and lr schedules, Gatys normalisation across style sizes, the output layer, parameter
counts. Each test failed on the code before the change."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_images
from PIL import Image

from nst import NstError
from nst.backbones import get_backbone
from nst.config import TransferConfig
from nst.losses import gatys_target
from nst.models import get_model
from nst.models.decoder import MirrorDecoder, OutputLayer
from nst.optimize.loss import TransferLoss
from nst.optimizers import lr_factor
from nst.train import TrainConfig, train
from nst.train.data import ContentStream

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore")]


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- AdaIN's decoder ----------------------------------------------------------------------


def test_the_vgg19_relu4_1_decoder_is_the_papers_3_5_million_parameters() -> None:
    assert count(MirrorDecoder(512, 8)) == 3_505_219  # naoto0804/pytorch-AdaIN's net.decoder


@pytest.mark.parametrize("layer", ["stage1", "stage2", "stage3"])
def test_adain_on_a_lite_encoder_has_the_papers_order_of_decoder_parameters(layer: str) -> None:
    """The decoder mirrored the encoder's own widths: 18 k parameters on Lite0 stage2, against
    the paper's 3.5 M. Now it is VGG19's mirror at the layer's stride (stage1: stride 4,
    stage2: 8, stage3: 16), so the same order as the paper's decoder at that stride."""
    net = get_model("adain", encoder="efficientnet_lite0", layer=layer, weights="random")
    vgg_equivalent = {"stage1": 256, "stage2": 512, "stage3": 512}[layer]  # relu3_1/4_1/5_1
    stride = {"stage1": 4, "stage2": 8, "stage3": 16}[layer]
    paper = count(MirrorDecoder(vgg_equivalent, stride))
    assert count(net.decoder) >= paper / 2
    if layer == "stage2":
        assert count(net.decoder) > 2_000_000  # the encoder's own mirror had 18 k


def test_decoder_width_scales_the_decoder_and_a_stride_vgg_lacks_is_one_line() -> None:
    assert count(MirrorDecoder(40, 8, width=0.5)) < count(MirrorDecoder(40, 8)) / 3
    with pytest.raises(NstError, match="stride 32: the decoder mirrors VGG19"):
        MirrorDecoder(192, 32)


# --- StyTr2's decoder layer ---------------------------------------------------------------


def stytr() -> torch.nn.Module:
    return get_model("stytr", encoder="deit_tiny", weights="random", decoder_width=0.125).eval()


def test_stytr_decoder_layers_read_the_style_memory_in_both_attentions() -> None:
    """The released layer's first attention takes keys and values from the style memory
    (diyiiyiii/StyTR-2 models/transformer.py, forward_post): nst's was self-attention."""
    net = stytr()
    memory: list[torch.Tensor] = []
    seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    enc = net.style_encoder
    enc.register_forward_hook(lambda m, a, out: memory.append(out))
    for i, layer in enumerate(net.transformer):
        for name in ("attn1", "attn2"):
            getattr(layer, name).register_forward_hook(
                lambda m, args, out, tag=f"{i}.{name}": seen.append((tag, args[1], args[2]))
            )
    content, style = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 48, 80)
    with torch.no_grad():
        net(content, style)
        fs = net.style_encoder.features(net.pad(style), [net.last])[net.last]
    tokens = fs.flatten(2).transpose(1, 2)
    assert len(seen) == 2 * len(net.transformer)
    for tag, key, value in seen:
        assert key.shape == tokens.shape and torch.equal(key, tokens), tag
        assert torch.equal(value, tokens), tag


def test_stytr_has_the_final_layer_norm_dropout_and_a_cape_grid_within_the_tokens() -> None:
    net = stytr()
    normed: list[torch.Tensor] = []
    net.norm.register_forward_hook(lambda m, a, out: normed.append(out))
    with torch.no_grad():
        net(torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64))
    assert isinstance(net.norm, torch.nn.LayerNorm) and len(normed) == 1
    layer = net.transformer[0]
    assert layer.attn1.dropout == layer.attn2.dropout == 0.1
    assert {m.p for m in layer.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    # the paper pools its 32 x 32 patch-8 grid to 18 x 18; patch 16 -> 9 x 9, the same area
    assert net.cape.pool.output_size == 9 and net.patch == 16
    # dropout is on in training only: eval is deterministic, training is not
    x, s = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x, s), net(x, s))
        net.train()
        assert not torch.equal(net(x, s), net(x, s))


# --- crops ---------------------------------------------------------------------------------


def stripe_period(crop: torch.Tensor) -> float:
    """The period, in pixels, of the vertical stripes in a 3 x H x W crop (strongest FFT bin)."""
    row = crop.mean(dim=(0, 1)).numpy()
    spectrum = np.abs(np.fft.rfft(row - row.mean()))
    return len(row) / int(np.argmax(spectrum))


def test_a_crop_covers_the_references_image_scale(tmp_path: Path) -> None:
    """AdaIN's and StyTr2's references resize to 512 and crop 256: a crop shows half the
    image's side, strokes at half their size. resize=512 gives that; the default (resize to
    the crop size) is Johnson's scale."""
    folder = tmp_path / "photos"
    folder.mkdir()
    x = np.arange(1024)
    stripes = ((x // 16) % 2 * 255).astype(np.uint8)  # period 32 px
    Image.fromarray(np.tile(stripes, (1024, 1))).convert("RGB").save(folder / "s.png")
    reference = ContentStream(folder, 256, 1, resize=512).next_batch()[0]
    johnson = ContentStream(folder, 256, 1).next_batch()[0]
    assert stripe_period(reference) == pytest.approx(16, rel=0.05)  # 1024 -> 512: halved
    assert stripe_period(johnson) == pytest.approx(8, rel=0.05)  # 1024 -> 256: a quarter
    assert TrainConfig(resize=512, size=256).resize == 512
    with pytest.raises(NstError, match="resize 128 is smaller than the crop size 256"):
        TrainConfig(resize=128, size=256)


# --- lr schedules --------------------------------------------------------------------------


def test_the_inverse_and_warm_up_schedules_are_the_references_formulas() -> None:
    adain = TrainConfig(method="adain", lr=1e-4, lr_schedule="inverse", lr_decay=5e-5)
    for i in (0, 1, 1000, 159_999):  # naoto0804/pytorch-AdaIN train.py adjust_learning_rate
        assert adain.lr * lr_factor(adain, i) == pytest.approx(1e-4 / (1 + 5e-5 * i), rel=1e-9)
    cfg = TrainConfig(
        method="stytr", lr=2e-4, lr_schedule="inverse", lr_decay=1e-5, warmup=10_000, steps=160_000
    )
    for i in (0, 1, 5000, 9999, 10_000, 10_001, 100_000):  # diyiiyiii/StyTR-2 train.py
        ref = 5e-4 * 0.1 * (1 + 3e-4 * i) if i < 1e4 else 2e-4 / (1 + 1e-5 * (i - 1e4))
        assert cfg.lr * lr_factor(cfg, i) == pytest.approx(ref, rel=1e-9), i


def small(tmp_path: Path, **changes: object) -> TrainConfig:
    photos = make_images(tmp_path / "photos", 3, seed=0)
    style = make_images(tmp_path / "style", 1, seed=1, stripes=True) / "i0.png"
    values: dict[str, object] = dict(
        data=str(photos),
        style=str(style),
        size=32,
        width=4,
        steps=4,
        batch_size=1,
        backbone="efficientnet_lite0",
        device="cpu",
        checkpoint_every=2,
        sample_every=0,
        log_every=1,
        val_images=1,
        lr_schedule="cosine",
    )
    values.update(changes)
    return TrainConfig.from_dict(values)


def test_resuming_with_other_steps_keeps_the_lr_continuous_or_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cosine's lr depends on `steps`: resuming step 2 of 4 with steps 8 would jump from
    lr/2 to 0.85 lr, so it is refused in one line; the inverse schedule does not depend on
    steps, so its resume continues the same curve."""
    cfg = small(tmp_path, steps=2)
    train(cfg, tmp_path / "cos", progress=False)
    with pytest.raises(NstError, match="lr_schedule cosine would make the lr jump at step 2"):
        train(cfg.replace(steps=8), tmp_path / "cos", resume=True, progress=False)
    inverse = cfg.replace(lr_schedule="inverse", lr_decay=0.5)
    train(inverse, tmp_path / "inv", progress=False)
    more = inverse.replace(steps=4)
    result = train(more, tmp_path / "inv", resume=True, progress=False)
    assert result.steps == 4
    state = torch.load(tmp_path / "inv" / "checkpoint.pt", weights_only=True)
    lr = state["train"]["optimizer"]["param_groups"][0]["lr"]
    assert lr == pytest.approx(more.lr / (1 + 0.5 * 4))
    assert "johnson: trainable parameters: " in capsys.readouterr().err
    assert state["meta"]["parameters"]["trainable"] == count(get_model("johnson", width=4))


# --- Gatys normalisation -------------------------------------------------------------------


def test_the_gatys_normalised_target_is_invariant_to_the_style_images_size() -> None:
    """Raw Gram matrices grow with H x W: a target taken at the style's size was M_style /
    M_content times too large. The target is now the style's statistics at the content's size."""
    gen = torch.Generator().manual_seed(0)
    tile = torch.rand(1, 3, 16, 16, generator=gen)
    small_style = tile.repeat(1, 1, 4, 4)  # 64 x 64 of a periodic texture
    large_style = tile.repeat(1, 1, 8, 8)  # 128 x 128 of the same texture
    content = torch.rand(1, 3, 64, 64, generator=gen)
    net = get_backbone("vgg19", weights="random")
    cfg = TransferConfig(
        weights="random",
        content_layers=("relu2_1",),
        style_layers=("relu1_1", "relu2_1", "relu3_1"),
        style_normalization="gatys",
    )
    with torch.no_grad():
        at_content = net.features(content, list(cfg.style_layers))
    # the target the loss compares a content-sized result with (nst.perceptual)
    a, b = (
        {
            k: gatys_target(t, at_content[k])
            for k, t in TransferLoss(net, cfg, content, s, torch.float32).style_targets.items()
        }
        for s in (small_style, large_style)
    )
    for layer in cfg.style_layers:
        ratio = float(b[layer].norm() / a[layer].norm())
        # borders (zero padding) differ between the sizes; before the rescale the ratio was ~4
        assert ratio == pytest.approx(1.0, abs=0.15), layer
    # at equal sizes it is the raw Gram of the style, as in the paper
    with torch.no_grad():
        f = net.features(small_style, ["relu1_1"])["relu1_1"]
    raw = torch.einsum("nchw,ndhw->ncd", f, f)
    assert torch.allclose(a["relu1_1"], raw, rtol=1e-4)
    assert math.isfinite(float(a["relu1_1"].sum()))


# --- output layer --------------------------------------------------------------------------


def test_the_linear_output_is_linear_in_training_and_clamped_at_inference() -> None:
    x = torch.tensor([-0.5, 0.25, 1.5])
    linear = OutputLayer("linear")
    assert torch.equal(linear.train()(x), x)
    assert torch.equal(linear.eval()(x), torch.tensor([0.0, 0.25, 1.0]))
    assert torch.allclose(OutputLayer("sigmoid")(x), torch.sigmoid(x))
    net = get_model("johnson", width=4, output="linear").eval()
    with torch.no_grad():
        y = net(torch.rand(1, 3, 20, 28))
    assert y.shape == (1, 3, 20, 28) and 0.0 <= float(y.min()) <= float(y.max()) <= 1.0
    with pytest.raises(NstError, match="output 'tanh': use one of linear, sigmoid"):
        OutputLayer("tanh")
