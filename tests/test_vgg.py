"""VGG specifics: named layers, truncation, and the real weight-loading paths."""

import pytest
import torch
import torchvision

from nst import NstError
from nst.backbones import get_backbone
from nst.backbones.base import IMAGENET_MEAN, IMAGENET_STD, InputTooSmall, RandomWeightsWarning
from nst.backbones.vgg import imagenet_cache_file


@pytest.fixture(scope="module")
def reference_vgg19():
    torch.manual_seed(123)
    return torchvision.models.vgg19(weights=None).eval()


def test_layer_names_follow_the_paper():
    with pytest.warns(RandomWeightsWarning):
        net = get_backbone("vgg19", weights="random")
    names = net.layer_names
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert names[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert len(names) == 37 and sum(n.startswith("conv") for n in names) == 16
    vgg16 = get_backbone("vgg16", weights="random")
    assert "conv5_3" in vgg16.layer_names and "conv5_4" not in vgg16.layer_names


def test_conv_and_relu_features_differ_and_relu_is_not_inplace(tiny_pair):
    net = get_backbone("vgg19", weights="random")
    feats = net.features(tiny_pair[0], ["conv1_1", "relu1_1"])
    assert (feats["conv1_1"] < 0).any(), "an in-place ReLU would have clipped the conv output"
    assert torch.equal(feats["relu1_1"], feats["conv1_1"].clamp(min=0))


def test_features_stop_at_the_deepest_requested_layer(tiny_pair):
    net = get_backbone("vgg19", weights="random")
    called = []
    hooks = [
        m.register_forward_hook(lambda m, i, o, k=k: called.append(k))
        for k, m in enumerate(net.layers)
    ]
    net.features(tiny_pair[0], ["relu2_1", "conv1_1"])
    for h in hooks:
        h.remove()
    assert called == list(range(net.layer_names.index("relu2_1") + 1))


def test_average_pooling_option(tiny_pair):
    net = get_backbone("vgg19", weights="random", pooling="avg")
    assert isinstance(net.layers[net.layer_names.index("pool1")], torch.nn.AvgPool2d)
    assert net.features(tiny_pair[0], ["pool1"])["pool1"].shape == (1, 64, 16, 16)


def test_weights_are_frozen_but_gradients_reach_the_input(tiny_pair):
    net = get_backbone("vgg19", weights="random")
    assert not any(p.requires_grad for p in net.parameters())
    x = tiny_pair[0].clone().requires_grad_(True)
    net.features(x, ["relu3_1"])["relu3_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_random_weights_are_seeded_and_identified():
    a = get_backbone("vgg19", weights="random", seed=1)
    b = get_backbone("vgg19", weights="random", seed=1)
    c = get_backbone("vgg19", weights="random", seed=2)
    assert a.weights_info == b.weights_info and a.weights_info.identity == "random:seed=1"
    assert c.weights_info.sha256 != a.weights_info.sha256 and not a.weights_info.pretrained


def _reference_features(model, x, index):
    mean, std = (
        torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1),
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1),
    )
    return model.features[: index + 1]((x - mean) / std)


def test_imagenet_cache_and_file_give_torchvision_features(
    reference_vgg19, isolated_torch_home, tmp_path, tiny_pair
):
    cache_file = imagenet_cache_file("vgg19")
    assert str(cache_file).startswith(str(isolated_torch_home))
    cache_file.parent.mkdir(parents=True)
    torch.save(reference_vgg19.state_dict(), cache_file)
    torch.save(reference_vgg19.state_dict(), tmp_path / "mine.pth")
    x = tiny_pair[0]
    with torch.no_grad():
        for spec in ("imagenet", "auto", str(tmp_path / "mine.pth")):
            net = get_backbone("vgg19", weights=spec)
            assert net.weights_info.pretrained
            ours = net.features(x, ["conv2_1", "relu4_2"])
            for layer in ("conv2_1", "relu4_2"):
                ref = _reference_features(reference_vgg19, x, net.layer_names.index(layer))
                assert torch.equal(ours[layer], ref), (spec, layer)
    assert (
        get_backbone("vgg19", weights="imagenet").weights_info.identity
        == "imagenet:vgg19-dcbb9e9d.pth"
    )


def test_imagenet_missing_names_the_expected_file(isolated_torch_home):
    with pytest.raises(NstError, match=r"expected .*hub/checkpoints/vgg19-dcbb9e9d\.pth"):
        get_backbone("vgg19", weights="imagenet")


def test_auto_without_cache_falls_back_to_random_loudly(isolated_torch_home):
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights"):
        net = get_backbone("vgg16", weights="auto")
    assert net.weights_info.kind == "random"


def test_bad_weight_files(tmp_path, isolated_torch_home):
    with pytest.raises(NstError, match="no such file"):
        get_backbone("vgg19", weights=str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(NstError, match="cannot load weights"):
        get_backbone("vgg19", weights=str(junk))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, wrong)
    with pytest.raises(NstError, match="not a torchvision vgg19 state dict"):
        get_backbone("vgg19", weights=str(wrong))


def test_unknown_backbone_and_layer():
    with pytest.raises(NstError, match="unknown backbone 'vgg99'; registered: .*vgg19"):
        get_backbone("vgg99")
    net = get_backbone("vgg16", weights="random")
    with pytest.raises(NstError, match="vgg16 has no layer.*relu5_4.*valid layers"):
        net.features(torch.zeros(1, 3, 32, 32), ["relu5_4"])


@pytest.mark.parametrize(
    ("layers", "side"),
    [
        (["relu1_1"], 1),
        (["pool1"], 2),
        (["relu3_1"], 4),
        (["relu4_2", "relu1_1"], 8),
        (["relu5_1"], 16),
        (["pool5"], 32),
    ],
)
def test_min_side_is_two_to_the_poolings_up_to_the_deepest_layer(layers, side):
    """Each 2x2 pooling floors a side to half and needs 2 px, so k poolings need 2^k px: at
    that side the features run, one pixel less and torch's max_pool2d refuses."""
    net = get_backbone("vgg19", weights="random")
    assert net.min_side(layers) == side
    net.features(torch.rand(1, 3, side, 40), layers)
    if side > 1:
        with pytest.raises(RuntimeError, match="Output size is too small"):
            net.features(torch.rand(1, 3, side - 1, 40), layers)
        with pytest.raises(InputTooSmall, match=f"is 40x{side - 1} px .* at least {side} px"):
            net.check_input(torch.rand(1, 3, side - 1, 40), layers, "the test image")
    net.check_input(torch.rand(1, 3, side, 40), layers, "the test image")
