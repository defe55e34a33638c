"""Every registered backbone honours the features() contract (parametrised from the registry)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import torch
from helpers import transfer_argv
from safetensors.torch import save_file

from nst import NstError
from nst.backbones import Backbone, get_backbone, list_backbones
from nst.backbones.base import InputTooSmall, RandomWeightsWarning
from nst.backbones.efficientnet import PACKAGES, EfficientNet
from nst.backbones.vgg import VGG, imagenet_cache_file
from nst.backbones.vit import TIMM_MODELS, PatchPaddingWarning, ViT, load_weights_file

SLOW = {"deit_base"}  # 86M parameters: building and running it takes seconds
NAMES = [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in list_backbones()]
#: the backbones whose ImageNet weights live in a cache (EfficientNet's come with a package:
#: tests/test_efficientnet.py)
CACHED = [n for n in NAMES if (n.values[0] if hasattr(n, "values") else n) not in PACKAGES]


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Empty torch and Hugging Face caches, so imagenet/auto never see a real download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    return tmp_path


def build(name: str, seed: int = 0, keep_cls: bool = False) -> Backbone:
    """A random-weight backbone, built once per (name, seed, keep_cls): frozen, so shareable."""
    key = (name, seed, keep_cls)
    if key not in _BUILT:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RandomWeightsWarning)
            options = {"keep_cls": True} if keep_cls else {}
            _BUILT[key] = get_backbone(name, weights="random", seed=seed, **options)
    return _BUILT[key]


_BUILT: dict[tuple[str, int, bool], Backbone] = {}


def image(h: int = 32, w: int = 32, n: int = 1, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def native_state_dict(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The backbone's weights in the format `weights=PATH` reads (torchvision / timm keys)."""
    state = backbone.state_dict()
    if isinstance(backbone, VGG):
        return {
            "features." + k.removeprefix("layers."): v
            for k, v in state.items()
            if k.startswith("layers.")
        }
    assert isinstance(backbone, ViT | EfficientNet)
    return {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}


def install_imagenet(name: str, state: dict[str, torch.Tensor], cache: Path) -> Path:
    """Put `state` where the backbone looks for ImageNet weights under the empty caches."""
    if name in TIMM_MODELS:
        hub_id = {"vit_small": "vit_small_patch16_224.augreg_in21k_ft_in1k"}.get(
            name, TIMM_MODELS[name] + ".fb_in1k"
        )
        repo = cache / "hf_home" / "hub" / f"models--timm--{hub_id}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text("abc123\n")
        path = repo / "snapshots" / "abc123" / "model.safetensors"
        path.parent.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        return path
    path = imagenet_cache_file(name)
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


def called_modules(backbone: Backbone, layer: str) -> set[torch.nn.Module]:
    """The parameterised modules that run while computing `layer`."""
    called: set[torch.nn.Module] = set()
    hooks = [
        m.register_forward_hook(lambda mod, *_: called.add(mod))
        for m in backbone.modules()
        if any(True for _ in m.parameters(recurse=False))
    ]
    try:
        backbone.features(image(), [layer])
    finally:
        for h in hooks:
            h.remove()
    return called


@pytest.mark.parametrize("name", NAMES)
def test_layers_are_named_as_documented(name: str) -> None:
    b = build(name)
    assert b.layer_names and len(set(b.layer_names)) == len(b.layer_names)
    if isinstance(b, ViT):
        assert b.layer_names == tuple(f"block{i}" for i in range(len(b.model.blocks)))
        assert b.size_multiple == 16
    elif isinstance(b, EfficientNet):
        assert b.layer_names == ("stem", *(f"stage{i}" for i in range(len(b.model.blocks))))
    else:
        assert all(re.fullmatch(r"(conv|relu)\d_\d|pool\d", n) for n in b.layer_names)
        assert {"relu1_1", "relu4_2", "relu5_1"} <= set(b.layer_names)


@pytest.mark.parametrize("name", NAMES)
def test_feature_shapes_are_nchw_in_request_order(name: str) -> None:
    b = build(name)
    first, last = b.layer_names[0], b.layer_names[-1]
    out = b.features(image(32, 48, n=2), [last, first])
    assert list(out) == [last, first]
    for f in out.values():
        assert f.dim() == 4 and f.shape[0] == 2 and torch.isfinite(f).all()
    if isinstance(b, ViT):  # one position per 16 px patch, embed_dim channels
        assert out[first].shape[1:] == (b.model.embed_dim, 2, 3)
    elif isinstance(b, EfficientNet):  # stride 2 at the stem, 32 at the last stage
        assert out[first].shape[-2:] == (16, 24) and out[last].shape[-2:] == (1, 2)
    else:
        assert out[first].shape[-2:] == (32, 48) and out[last].shape[-2:] == (1, 1)


@pytest.mark.parametrize("name", NAMES)
def test_a_shallow_layer_does_not_run_deeper_modules(name: str) -> None:
    b = build(name)
    shallow = called_modules(b, b.layer_names[0])
    deep = called_modules(b, b.layer_names[-1])
    assert shallow < deep
    later = (
        list(b.model.blocks)[1:]  # type: ignore[union-attr]
        if isinstance(b, ViT)
        else list(b.model.blocks)  # type: ignore[union-attr]
        if isinstance(b, EfficientNet)
        else list(b.layers)[1:]  # type: ignore[union-attr]
    )
    assert not any(m in shallow for block in later for m in block.modules())


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_the_input(name: str) -> None:
    b = build(name)
    x = image().requires_grad_(True)
    b.features(x, [b.layer_names[-1]])[b.layer_names[-1]].pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in b.parameters())  # the backbone itself stays frozen


@pytest.mark.parametrize("name", NAMES)
def test_saved_state_dict_loads_to_identical_features(name: str, tmp_path: Path) -> None:
    b = build(name)
    path = tmp_path / "weights.pth"
    torch.save(native_state_dict(b), path)
    loaded = get_backbone(name, weights=str(path))
    layer = b.layer_names[-1]
    x = image()
    assert torch.equal(loaded.features(x, [layer])[layer], b.features(x, [layer])[layer])
    assert loaded.weights_info.identity == f"file:{path}" and loaded.weights_info.pretrained
    # the comparison can fail: another seed gives other features
    other = build(name, seed=1)
    assert not torch.allclose(other.features(x, [layer])[layer], b.features(x, [layer])[layer])


@pytest.mark.parametrize("name", CACHED)
def test_imagenet_weights_load_from_the_cache(name: str, empty_caches: Path) -> None:
    b = build(name, seed=1)
    path = install_imagenet(name, native_state_dict(b), empty_caches)
    for spec in ("imagenet", "auto"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RandomWeightsWarning)  # no random fallback here
            loaded = get_backbone(name, weights=spec)
        assert loaded.weights_info.identity == f"imagenet:{path.name}"
        layer = b.layer_names[0]
        assert torch.equal(
            loaded.features(image(), [layer])[layer], b.features(image(), [layer])[layer]
        )


@pytest.mark.parametrize("name", CACHED)
def test_missing_imagenet_weights_name_the_expected_file(name: str, empty_caches: Path) -> None:
    with pytest.raises(NstError) as err:
        get_backbone(name, weights="imagenet")
    expected = "model.safetensors" if name in TIMM_MODELS else imagenet_cache_file(name).name
    assert expected in str(err.value) and str(empty_caches) in str(err.value)
    with pytest.warns(RandomWeightsWarning, match="RANDOM"):
        assert get_backbone(name, weights="auto").weights_info.identity == "random:seed=0"


def test_unknown_layers_are_a_clear_error() -> None:
    b = build("deit_tiny")
    with pytest.raises(NstError, match=r"no layer\(s\) relu4_2; valid layers: block0, block1"):
        b.features(image(), ["relu4_2"])
    with pytest.raises(NstError, match="no layer"):
        b.features(image(), ["block0_cls"])  # only with keep_cls=True


@pytest.mark.parametrize("name", ["deit_tiny", "deit_small_distilled"])
def test_class_and_distillation_tokens_are_removed(name: str) -> None:
    b = build(name)
    assert isinstance(b, ViT) and b.num_prefix_tokens == (2 if "distilled" in name else 1)
    x = image(32, 48)
    f = b.features(x, ["block2"])["block2"]
    with torch.no_grad():  # the raw token sequence: prefix tokens first, then the 2x3 grid
        tokens = b.model.forward_intermediates(
            (x - b.mean) / b.std,
            indices=[2],
            output_fmt="NLC",
            intermediates_only=True,
            return_prefix_tokens=True,
        )[0]
    spatial, prefix = tokens
    assert f.shape[-2:] == (2, 3) and spatial.shape[1] == 6
    assert torch.allclose(f.flatten(2).transpose(1, 2), spatial)
    assert not any(torch.allclose(f.flatten(2)[..., i], prefix[:, 0]) for i in range(6))


def test_keep_cls_offers_the_class_token_as_a_feature() -> None:
    b = build("deit_tiny", keep_cls=True)
    assert "block3_cls" in b.layer_names and "block3" in b.layer_names
    out = b.features(image(n=2), ["block3", "block3_cls"])
    assert out["block3"].shape == (2, 192, 2, 2) and out["block3_cls"].shape == (2, 192, 1, 1)
    x = (image(n=2) - b.mean) / b.std
    with torch.no_grad():
        full = b.model.forward_features(x)  # all 12 blocks, then the final norm
        raw = b.model.forward_intermediates(
            x, indices=[3], output_fmt="NLC", intermediates_only=True, return_prefix_tokens=True
        )[0][1]
    assert torch.allclose(out["block3_cls"][..., 0, 0], raw[:, 0]) and full.shape[1] == 1 + 4


def test_other_sizes_are_padded_with_a_warning() -> None:
    b = build("deit_tiny")
    with pytest.warns(PatchPaddingWarning, match="30x40 is not a multiple of the patch size 16"):
        f = b.features(image(30, 40), ["block0"])["block0"]
    assert f.shape[-2:] == (2, 3)


def test_position_embeddings_interpolate_for_larger_inputs() -> None:
    b = build("deit_tiny")
    assert b.features(image(64, 96), ["block0"])["block0"].shape[-2:] == (4, 6)


@pytest.mark.parametrize("name", NAMES)
def test_random_weights_are_seeded_loud_and_leave_the_global_rng_alone(name: str) -> None:
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    with pytest.warns(RandomWeightsWarning, match=f"{name} runs with RANDOM weights"):
        a = get_backbone(name, weights="random", seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert a.weights_info == build(name, seed=3).weights_info
    assert a.weights_info.identity == "random:seed=3" and not a.weights_info.pretrained
    assert a.weights_info.sha256 != build(name, seed=0).weights_info.sha256


@pytest.mark.parametrize("name", NAMES)
def test_an_input_below_min_side_is_a_one_line_error(name: str) -> None:
    b = build(name)
    deepest = b.layer_names[-1]
    need = b.min_side([deepest])
    # five 2x2 poolings; EfficientNet's stride 32; one 16 px patch
    assert need == (32 if isinstance(b, VGG | EfficientNet) else 16)
    b.features(image(need, 2 * need), [deepest])
    b.check_input(image(need, 2 * need), [deepest], "the test image")
    with pytest.raises(InputTooSmall) as err:
        b.check_input(image(need - 1, 2 * need), [deepest], "the test image")
    message = str(err.value)
    assert "\n" not in message and f"{2 * need}x{need - 1} px" in message
    assert f"at least {need} px" in message and deepest in message


class CountingLoad:
    """torch.load, counting its calls."""

    def __init__(self) -> None:
        self.calls, self.load = 0, torch.load

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.load(*args, **kwargs)


@pytest.mark.parametrize("wrapper", [None, "model", "state_dict"])
def test_vit_weight_files_are_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wrapper: str | None
) -> None:
    state = {"blocks.0.norm1.weight": torch.ones(3)}
    path = tmp_path / "w.pth"
    torch.save(state if wrapper is None else {wrapper: state}, path)
    counting = CountingLoad()
    monkeypatch.setattr(torch, "load", counting)
    loaded = load_weights_file(path)
    assert counting.calls == 1 and loaded.keys() == state.keys()
    assert torch.equal(loaded["blocks.0.norm1.weight"], state["blocks.0.norm1.weight"])


def test_a_bad_vit_weight_file_is_one_clear_error_and_a_bug_is_not_disguised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    counting = CountingLoad()
    monkeypatch.setattr(torch, "load", counting)
    with pytest.raises(NstError, match=f"^cannot load weights {re.escape(str(junk))}: ") as err:
        load_weights_file(junk)
    assert counting.calls == 1 and "\n" not in str(err.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 4)
    with pytest.raises(NstError, match="cannot load weights .*broken.safetensors"):
        load_weights_file(broken)

    def buggy(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise TypeError("a bug in the loading code")

    monkeypatch.setattr(torch, "load", buggy)
    with pytest.raises(TypeError, match="a bug in the loading code"):
        load_weights_file(junk)


@pytest.mark.slow
def test_cli_transfer_with_deit_small_at_224(tmp_path: Path) -> None:
    from nst.cli import main
    from nst.images import load_image, save_image

    content = save_image(image(224, 224, seed=1), tmp_path / "c.png")
    style = save_image(image(224, 224, seed=2), tmp_path / "s.png")
    out = tmp_path / "out.png"
    argv = transfer_argv(
        content=content,
        style=style,
        out=out,
        backbone="deit_small",
        size=224,
        steps=3,
        content_layers="block8",
        style_layers="block1,block3,block5,block7",
        jitter=8,
    )
    assert main(argv) == 0
    assert load_image(out).shape == (1, 3, 224, 224)
