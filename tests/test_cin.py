"""A network for a bank of styles (nst.models.cin, Dumoulin et al. 2017): conditional instance
norm is Johnson's network for one style, each style its own output, mixtures interpolate the
style parameters; trained on a folder of styles (one drawn per step, resumed exactly); applied
by the style's name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_tiling import photo
from test_train import make_photos, small, weights

from nst import NstError
from nst.cli import main
from nst.models import get_model
from nst.models.apply import apply_network
from nst.models.cin import ConditionalInstanceNorm2d
from nst.train import train

pytestmark = pytest.mark.usefixtures("one_thread_module")


def bank(names: list[str], seed: int = 0) -> torch.nn.Module:
    """A cin network whose style parameters differ by style (random, not the init's ones)."""
    torch.manual_seed(seed)
    net = get_model("cin", width=8, styles=names).eval()
    for m in net.modules():
        if isinstance(m, ConditionalInstanceNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.3, 0.3)
    return net


def test_one_style_is_johnsons_network() -> None:
    """Conditional instance norm over one style is affine instance norm: a cin network with
    johnson's weights (each norm's scale and shift as the bank's one row) computes johnson."""
    torch.manual_seed(0)
    johnson = get_model("johnson", width=8).eval()
    for m in johnson.modules():
        if isinstance(m, torch.nn.InstanceNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.3, 0.3)
    one = get_model("cin", width=8, styles=["only.png"]).eval()
    banked = {n for n, p in one.named_parameters() if p.ndim == 2}  # S x C: the norms'
    one.load_state_dict(
        {k: v.unsqueeze(0) if k in banked else v for k, v in johnson.state_dict().items()}
    )
    x = photo(48, 64)
    with torch.no_grad():
        assert torch.allclose(one(x), johnson(x), atol=1e-6)


def test_each_style_its_own_output_and_mixtures_interpolate_its_parameters() -> None:
    net = bank(["a.png", "b.png", "c.png"])
    x = photo(48, 64)
    with torch.no_grad():
        a, b = net(x, style=0), net(x, style="b")
        assert (a - b).abs().mean() > 0.01  # each style its own image
        assert torch.equal(net(x, style="b.png"), b) and torch.equal(net(x, style=1), b)
        half = net(x, style=torch.tensor([[0.5, 0.5, 0.0]]))
        # the paper's interpolation: the mixture of the parameters, not of the images
        mixed = bank(["m"])
        for p, q in zip(mixed.parameters(), net.parameters(), strict=True):
            p.copy_(q[:2].mean(0, keepdim=True) if p.shape != q.shape else q)
        assert torch.allclose(mixed(x), half, atol=1e-5)
        assert not torch.allclose(half, (a + b) / 2, atol=1e-3)
        # the selected style is what apply runs, whole or in tiles (the whole image's statistics)
        net.select("c")
        whole = apply_network(net, [x])[0]
        assert torch.allclose(whole, net(x, style=2), atol=1e-6)
        tiled = apply_network(net, [x], tile=32, overlap=8)[0]
        assert float((tiled - whole).abs().mean()) < 1e-3
    with pytest.raises(NstError, match=r"style 'd' is not in this network's bank: a.png, b.png"):
        net.select("d")


def test_a_bank_trains_in_one_run_resumes_exactly_and_applies_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    styles = make_photos(tmp_path / "styles", n=3, seed=5)
    config = small(
        tmp_path, method="cin", style="", styles=str(styles), steps=6, checkpoint_every=3
    )
    whole = train(config, tmp_path / "whole", progress=False)
    # stopped at step 3 and resumed: the style drawn each step is restored with the RNG
    train(config.replace(steps=3), tmp_path / "cut", progress=False)
    train(config, tmp_path / "cut", resume=True, progress=False)
    a, b = weights(whole.model), weights(tmp_path / "cut" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # every style's parameters moved off their initial ones: each was drawn and trained
    scales = [v for k, v in a.items() if k.endswith(".weight") and v.ndim == 2]
    assert all(bool((s != 1).any(dim=1).all()) for s in scales)
    meta = torch.load(whole.model, map_location="cpu", weights_only=True)["meta"]
    assert meta["options"]["styles"] == ["p0.png", "p1.png", "p2.png"]
    content = Path(config.data) / "p0.png"
    argv = ["apply", "--model", str(whole.model), "--content", str(content)]
    assert main([*argv, "--style", "p2", "--out", str(tmp_path / "o")]) == 0
    net = get_model("cin", **meta["options"]).eval()
    net.load_state_dict(a)
    from nst.images import load_image

    expected = (net(load_image(content), style=2)[0].permute(1, 2, 0) * 255).round()
    got = np.asarray(Image.open(tmp_path / "o" / "p0.png"), dtype=np.float32)
    assert np.abs(got - expected.detach().numpy()).max() <= 1
    capsys.readouterr()
    assert main([*argv, "--style", "monet", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "'monet' is not in this network's bank" in err
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
