import pytest
import yaml

from nst import NstError
from nst.config import TransferConfig


def test_from_dict_coerces_plain_values():
    cfg = TransferConfig.from_dict(
        {"beta": "1e4", "steps": 10, "style_layers": "relu1_1, relu2_1", "optimizer": "LBFGS"}
    )
    assert cfg.beta == 1e4 and cfg.steps == 10
    assert cfg.style_layers == ("relu1_1", "relu2_1")
    assert cfg.optimizer == "lbfgs"


def test_round_trip_through_dict():
    cfg = TransferConfig(size=64, style_layer_weights=(1.0, 2.0, 3.0, 4.0, 5.0))
    assert TransferConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_names_the_valid_keys():
    with pytest.raises(NstError, match=r"unknown config key\(s\) stpes; valid keys: .*steps"):
        TransferConfig.from_dict({"stpes": 3})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": "many"}, "steps='many'"),
        ({"steps": 2.5}, "must be an integer"),
        ({"optimizer": "rmsprop"}, "must be one of adam, adamw, sgd, lbfgs"),
        ({"beta": True}, "must be a number"),
        ({"alpha": -1}, "alpha must be non-negative"),
        ({"style_layers": []}, "style_layers is empty"),
        ({"content_layer_weights": [1.0, 2.0]}, "1 content_layers"),
        ({"init_blend": 2}, r"init_blend must be in \[0, 1\]"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(values, message):
    with pytest.raises(NstError, match=message):
        TransferConfig.from_dict(values)


def test_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("beta: 1.0e+4\nsteps: 7\nstyle_layers: [relu1_1, relu2_1]\n")
    cfg = TransferConfig.from_yaml(path)
    assert (cfg.beta, cfg.steps, cfg.style_layers) == (1e4, 7, ("relu1_1", "relu2_1"))


def test_replace_validates_like_from_dict():
    """Stages of a pyramid and study trials are made with replace(): it must coerce and check
    exactly as a config file would, not bypass validation as dataclasses.replace would."""
    cfg = TransferConfig()
    assert cfg.replace(optimizer="LBFGS", style_layers="relu1_1, relu2_1").optimizer == "lbfgs"
    assert cfg.replace(style_layers="relu1_1, relu2_1").style_layers == ("relu1_1", "relu2_1")
    with pytest.raises(NstError, match="steps must be at least 1"):
        cfg.replace(steps=0)
    with pytest.raises(NstError, match=r"unknown config key\(s\) stpes"):
        cfg.replace(stpes=3)
    with pytest.raises(NstError, match="pyramid_steps has 1 values for 2 pyramid stages"):
        cfg.replace(pyramid=(16, 32), pyramid_steps=(3,))


def test_direct_construction_coerces_lists_so_configs_are_immutable_and_hashable():
    """A list given to the constructor becomes a tuple (a list would be shared and mutable, and
    make the config unhashable); equal configs are equal keys."""
    layers = ["relu1_1", "relu2_1"]
    cfg = TransferConfig(style_layers=layers)  # type: ignore[arg-type]
    assert cfg.style_layers == ("relu1_1", "relu2_1") and isinstance(cfg.style_layers, tuple)
    layers.append("relu3_1")  # the caller's list is not the config's
    assert cfg.style_layers == ("relu1_1", "relu2_1")
    same = TransferConfig.from_dict({"style_layers": ["relu1_1", "relu2_1"]})
    assert hash(cfg) == hash(same) and {cfg: "run"}[same] == "run"
    assert isinstance(TransferConfig().style_layers, tuple)  # the shared default cannot mutate
    with pytest.raises(NstError, match="steps must be at least 1"):
        TransferConfig(steps=0)
    with pytest.raises(NstError, match="must be one of adam, adamw, sgd, lbfgs"):
        TransferConfig(optimizer="rmsprop")  # type: ignore[arg-type]


def test_unnamed_layers_are_the_backbones_preset_and_are_recorded():
    from nst.backbones.registry import default_layers

    for backbone in ("vgg19", "deit_small", "efficientnet_lite0"):
        cfg = TransferConfig(backbone=backbone)
        assert (cfg.content_layers, cfg.style_layers) == default_layers(backbone)
        recorded = cfg.to_dict()  # what a run records names the layers it used
        assert recorded["content_layers"] and TransferConfig.from_dict(recorded) == cfg
    assert TransferConfig().content_layers == ("relu4_2",)
    assert TransferConfig.from_dict({"backbone": "deit_small"}).style_layers[0] == "block1"
    # one side named, the other from the preset
    cfg = TransferConfig.from_dict({"backbone": "deit_small", "content_layers": "block5"})
    assert cfg.content_layers == ("block5",) and cfg.style_layers == default_layers("deit_small")[1]


def test_replace_backbone_swaps_preset_layers_and_keeps_named_ones():
    cfg = TransferConfig()
    deit = cfg.replace(backbone="deit_small")
    assert deit.content_layers == ("block8",) and deit.style_layers[0] == "block1"
    assert deit.replace(backbone="vgg19") == cfg
    named = TransferConfig(style_layers=("relu1_1",))
    moved = named.replace(backbone="deit_small")
    assert moved.style_layers == ("relu1_1",)  # the user's, kept: the backbone will reject it
    assert moved.content_layers == ("block8",)  # the preset's, swapped
    both = cfg.replace(backbone="deit_tiny", content_layers="block3")
    assert both.content_layers == ("block3",) and both.style_layers[0] == "block1"


def test_yaml_and_cli_without_layers_get_the_preset(tmp_path):
    import argparse

    from nst.cli.options import add_config_options, config_from_args

    path = tmp_path / "c.yaml"
    path.write_text("backbone: vgg19\nsteps: 3\n")
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    cfg, rule = config_from_args(
        parser.parse_args(["--config", str(path), "--backbone", "deit_tiny"])
    )
    assert cfg.steps == 3 and cfg.content_layers == ("block8",)
    assert rule == "deit_tiny -> deit_tiny (given)"
    lite, _ = config_from_args(parser.parse_args(["--backbone", "efficientnet_lite1"]))
    assert lite.content_layers == ("stage3",)


def test_a_run_that_names_nothing_gets_its_family_recipe_under_file_and_options(
    tmp_path, monkeypatch
):
    """Lowest first: the family's recipe < the --config file < typed options; no backbone
    anywhere is auto (here, without VGG's ImageNet file: the pretrained Lite0)."""
    import argparse

    from nst.backbones.registry import default_recipe
    from nst.cli.options import add_config_options, config_from_args

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-torch-cache"))
    parser = argparse.ArgumentParser()
    add_config_options(parser)
    lite = default_recipe("efficientnet_lite0")
    cfg, rule = config_from_args(parser.parse_args([]))
    assert rule == "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"
    assert cfg == TransferConfig.recipe() == TransferConfig(backbone="efficientnet_lite0", **lite)
    assert cfg.optimizer == "lbfgs" and cfg.content_layers == ("stage3",)
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\nbeta: 3.0\n")
    cfg, _ = config_from_args(parser.parse_args(["--config", str(path), "--beta", "5"]))
    assert (cfg.steps, cfg.beta, cfg.optimizer) == (7, 5.0, lite["optimizer"])
    # a family without a recipe of its own runs TransferConfig's defaults
    vgg, rule = config_from_args(parser.parse_args(["--backbone", "vgg19"]))
    assert vgg == TransferConfig() and rule == "vgg19 -> vgg19 (given)"
    # a file written for one backbone, run on another: the new family's recipe, the file's fields
    path.write_text("backbone: vgg19\nsteps: 7\n")
    cfg, _ = config_from_args(parser.parse_args(["--config", str(path), "--backbone", "auto"]))
    assert (cfg.backbone, cfg.steps, cfg.optimizer) == ("efficientnet_lite0", 7, "lbfgs")
    assert TransferConfig(backbone="auto").backbone == "efficientnet_lite0"


def test_unknown_backbone_without_layers_names_the_registered_ones():
    with pytest.raises(
        NstError, match="unknown backbone 'resnet50'; registered: .*efficientnet_lite0"
    ):
        TransferConfig(backbone="resnet50")
    # a config naming its layers may name a backbone outside the registry (a caller's own)
    assert (
        TransferConfig(backbone="mine", content_layers=("a",), style_layers=("b",)).backbone
        == "mine"
    )


def test_feature_transform_fields_are_checked():
    assert TransferConfig().feature_transform == "none"
    assert TransferConfig.from_dict({"feature_transform": "SoftMax"}).feature_transform == "softmax"
    with pytest.raises(NstError, match="must be one of none, softmax"):
        TransferConfig.from_dict({"feature_transform": "relu"})
    with pytest.raises(NstError, match="feature_temperature must be positive"):
        TransferConfig(feature_temperature=0.0)


@pytest.mark.parametrize("command", ["transfer", "train"])
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--lr=nan", "lr must be a finite number >= 0, got nan"),
        ("--alpha=inf", "alpha must be a finite number >= 0, got inf"),
        ("--beta=-inf", "beta must be a finite number >= 0, got -inf"),
        ("--size=0", "size must be at least 1, got 0"),
        ("--steps=-1", "steps must be at least 1, got -1"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_one_line_before_any_work(
    tmp_path, capsys, command, option, message
):
    """Both configs (TransferConfig, TrainConfig) refuse them when built, naming the field and
    its valid range: no torch traceback from a NaN learning rate hours later."""
    from PIL import Image

    from nst.cli import main

    photo = tmp_path / "p.png"
    Image.new("RGB", (32, 32), (90, 120, 150)).save(photo)
    out = tmp_path / ("out.png" if command == "transfer" else "run")
    if command == "transfer":
        argv = ["transfer", "--content", str(photo), "--style", str(photo), "--out", str(out)]
    else:
        argv = [
            "train",
            "--out",
            str(out),
            "--no-track",
            "--data",
            str(tmp_path),
            "--style",
            str(photo),
        ]
    small = ["--size=32", "--steps=1", "--device=cpu"]  # quick, should a bad value get through
    assert main([*argv, *small, option]) == 2
    assert capsys.readouterr().err.splitlines() == [f"nst {command}: error: {message}"]
    assert not out.exists()


def test_every_float_field_must_be_finite_lists_and_yaml_nan_included():
    from nst.train.config import TrainConfig

    with pytest.raises(NstError, match=r"^momentum must be a finite number >= 0, got nan$"):
        TransferConfig.from_dict(yaml.safe_load("momentum: .nan"))
    with pytest.raises(NstError, match=r"^style_blend must be finite numbers, got \[1.0, inf\]$"):
        TransferConfig.from_dict({"style_blend": [1, "inf"]})
    # TrainConfig reads a negative beta as "the method's default": -inf must not become one
    with pytest.raises(NstError, match="beta must be a finite number >= 0, got -inf"):
        TrainConfig.from_dict({"method": "adain", "beta": float("-inf")})
