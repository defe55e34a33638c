import pytest

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


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        TransferConfig().steps = 3  # type: ignore[misc]
