"""The optimisation loop: it lowers the loss with every optimiser and init, is deterministic,
and lets callbacks watch and stop it."""

import io
import math
from typing import get_args

import pytest
import torch

from nst import NstError
from nst.backbones import get_backbone
from nst.config import TransferConfig, field_type
from nst.images import fit_size, to_image
from nst.optimize.loop import _converged
from nst.optimize.loss import TransferLoss
from nst.optimize.transfer import stylize
from nst.optimizers import make_optimizer, make_schedule
from nst.runtime import NonFiniteLoss

SMALL = {
    "size": 32,
    "steps": 8,
    "weights": "random",
    "style_layers": ["relu1_1", "relu2_1", "relu3_1"],
    "content_layers": ["relu3_1"],
    "beta": 1.0e6,
}


@pytest.fixture(scope="module")
def vgg():
    return get_backbone("vgg19", weights="random")


def _png(t: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_image(t).save(buf, format="PNG")
    return buf.getvalue()


#: every declared choice is tested; a new one fails here until it is given settings
OPTIMIZERS = get_args(field_type("optimizer"))
INITS = get_args(field_type("init"))
#: optimizer -> (lr, the loss ratio it must reach in 8 steps)
OPTIMIZER_SETTINGS = {
    "adam": (0.05, 0.8),
    "adamw": (0.05, 0.8),
    "sgd": (100.0, 0.8),
    "lbfgs": (1.0, 0.6),
}


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_reduces_the_loss(tiny_pair, vgg, optimizer):
    assert optimizer in OPTIMIZER_SETTINGS, (
        f"give the new optimizer {optimizer!r} an lr and a factor"
    )
    lr, factor = OPTIMIZER_SETTINGS[optimizer]
    cfg = TransferConfig.from_dict({**SMALL, "optimizer": optimizer, "lr": lr, "gamma": 1.0})
    result = stylize(cfg, *tiny_pair, backbone=vgg)
    total = result.history["total"]
    assert len(total) == result.steps == 8
    assert all(b < a for a, b in zip(total, total[1:], strict=False)), total
    assert total[-1] < factor * total[0], total


def test_lbfgs_matches_torch_lbfgs_with_one_evaluation_fewer_per_step(tiny_pair, vgg):
    """Our L-BFGS step is torch's, but the evaluation torch repeats at the start of each step
    (at the point the line search just accepted) is served from a cache."""
    cfg = TransferConfig.from_dict({**SMALL, "optimizer": "lbfgs", "lr": 1.0, "gamma": 1.0})
    calls = []

    class Counting(torch.nn.Module):
        size_multiple = vgg.size_multiple
        weights_info = vgg.weights_info

        def features(self, x, layers):
            calls.append(1)
            return vgg.features(x, layers)

        def check_layers(self, layers):
            vgg.check_layers(layers)

        def check_input(self, image, layers, what):
            vgg.check_input(image, layers, what)

        def parameters(self, recurse=True):
            return vgg.parameters(recurse)

    ours = stylize(cfg, *tiny_pair, backbone=Counting())
    ours_evaluations = len(calls) - 2  # minus the content and style targets
    content, style = (fit_size(t, cfg.size) for t in tiny_pair)
    objective = TransferLoss(vgg, cfg, content, style, torch.float32)
    x = content.clone().requires_grad_(True)
    optimizer = make_optimizer(cfg, [x])
    evaluations, first = [], []

    def closure():  # minimises L / L(x_0), as stylize does for L-BFGS
        optimizer.zero_grad()
        evaluations.append(1)
        loss = objective(x)["total"]
        first.append(float(loss.detach())) if not first else None
        loss.backward()
        x.grad.mul_(1.0 / first[0])
        return loss.detach() * (1.0 / first[0])

    for _ in range(cfg.steps):
        optimizer.step(closure)
    assert torch.equal(ours.image, x.detach().clamp(0, 1))
    assert ours_evaluations == len(evaluations) - cfg.steps + 1, (ours_evaluations, evaluations)


def test_lbfgs_is_invariant_to_the_loss_scale(tiny_pair, vgg):
    """The same alpha:beta ratio at 1/1000 of the scale (a total loss ~1e-3, typical of
    normalised Grams) makes the same progress: L-BFGS sees L / L(x_0). torch's L-BFGS alone
    skips every curvature pair (y's <= 1e-10) at that scale and barely moves."""
    cfg = TransferConfig.from_dict({**SMALL, "optimizer": "lbfgs", "lr": 1.0, "steps": 6})
    small = cfg.replace(alpha=cfg.alpha / 1000, beta=cfg.beta / 1000)
    progress = []
    for c in (cfg, small):
        total = stylize(c, *tiny_pair, backbone=vgg).history["total"]
        progress.append(total[-1] / total[0])
    assert progress[0] < 0.5
    assert progress[1] == pytest.approx(progress[0], rel=0.1)


def test_cosine_schedule_decays_the_lr_to_zero_over_the_steps(tiny_pair, vgg):
    """lr_t = lr * (1 + cos(pi t / N)) / 2 at step t = 0..N-1, so the last steps barely move the
    image, where a constant lr keeps moving it by ~lr per pixel."""
    cfg = TransferConfig.from_dict({**SMALL, "lr": 0.05, "steps": 10})
    optimizer = make_optimizer(cfg, [torch.zeros(1, requires_grad=True)])
    schedule = make_schedule(cfg.replace(lr_schedule="cosine"), optimizer)
    assert schedule is not None
    lrs = []
    for _ in range(cfg.steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    expected = [0.05 * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert lrs == pytest.approx(expected)
    last_move = {}
    for schedule_name in ("constant", "cosine"):
        images: list[torch.Tensor] = []
        stylize(
            cfg.replace(lr_schedule=schedule_name),
            *tiny_pair,
            callbacks=[lambda s, images=images: images.append(s.image.clone())],
            backbone=vgg,
        )
        last_move[schedule_name] = float((images[-1] - images[-2]).abs().max())
    assert last_move["cosine"] < 0.2 * last_move["constant"], last_move


@pytest.mark.parametrize("init", INITS)
def test_each_init_reduces_the_loss(tiny_pair, vgg, init):
    cfg = TransferConfig.from_dict({**SMALL, "init": init, "lr": 0.05, "steps": 12})
    total = stylize(cfg, *tiny_pair, backbone=vgg).history["total"]
    assert total[-1] < 0.95 * total[0], total


@pytest.mark.parametrize("init", INITS)
def test_inits_start_where_they_say(tiny_pair, vgg, init):
    """With lr 0 the one step keeps the start: the content, the style, seeded uniform noise
    (its own generator, seed config.seed), or init_blend * content + (1 - init_blend) * noise."""
    content, style = tiny_pair
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(5))
    expected = {
        "content": content,
        "style": style,
        "noise": noise,
        "blend": 0.25 * content + 0.75 * noise,
    }
    assert init in expected, f"say where the new init {init!r} starts"
    cfg = TransferConfig.from_dict(
        {**SMALL, "init": init, "init_blend": 0.25, "seed": 5, "steps": 1, "lr": 0.0}
    )
    start = stylize(cfg, content, style, backbone=vgg).image
    torch.testing.assert_close(start, expected[init], atol=1e-6, rtol=0)


def test_stylize_leaves_the_global_rng_alone_and_needs_no_global_seed(tiny_pair, vgg):
    """Every draw (noise init, jitter shifts, random weights) has its own seeded generator:
    a run neither reads nor moves torch's global RNG, whatever state the caller left it in."""
    cfg = TransferConfig.from_dict({**SMALL, "init": "blend", "jitter": 3, "steps": 3, "seed": 4})
    images = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        torch.rand(7)  # the caller's own use of the global RNG
        before = torch.get_rng_state()
        images.append(_png(stylize(cfg, *tiny_pair).image))  # builds its backbone too
        assert torch.equal(torch.get_rng_state(), before)
    assert images[0] == images[1]
    torch.manual_seed(9)
    before = torch.get_rng_state()
    stylize(cfg, *tiny_pair, backbone=vgg)
    assert torch.equal(torch.get_rng_state(), before)


def test_same_seed_gives_byte_identical_image(tiny_pair):
    cfg = TransferConfig.from_dict({**SMALL, "init": "noise", "seed": 7})
    a = stylize(cfg, *tiny_pair)
    b = stylize(cfg, *tiny_pair)
    c = stylize(cfg.replace(seed=8), *tiny_pair)
    assert _png(a.image) == _png(b.image)
    assert a.history == b.history
    assert _png(a.image) != _png(c.image)


def test_callbacks_see_every_step_and_can_stop(tiny_pair, vgg):
    seen = []

    def watch(step):
        seen.append((step.step, step.losses["total"]))
        return step.step == 3

    result = stylize(TransferConfig.from_dict(SMALL), *tiny_pair, callbacks=[watch], backbone=vgg)
    assert [s for s, _ in seen] == [1, 2, 3]
    assert result.steps == 3 and result.stopped_early
    assert [v for _, v in seen] == result.history["total"]


def first_converged_step(totals, rtol):
    """The first step n at which the loop's rule stops a run whose losses are `totals`."""
    return next((n for n in range(1, len(totals) + 1) if _converged(totals[:n], rtol)), None)


def test_convergence_rule_triggers_at_the_pinned_step():
    """Stop at step n when the total improved by at most rtol (relative) over the last 10 steps:
    L[n-11] - L[n-1] <= rtol * |L[n-11]|. Losses halving for 15 steps, then flat: over 10 steps
    the loss falls by 1 - 2^-d with d = min(n-1, 15) - min(n-11, 15) halvings, so rtol 0.5
    (d <= 1) stops at step 25, rtol 0.75 (d <= 2) at 24, rtol 0.999 (d <= 9) at 17 and rtol
    0.9995 (d <= 10) at 11, the first step with 10 steps behind it."""
    totals = [2.0 ** -min(k, 15) for k in range(40)]
    assert first_converged_step(totals, 0.5) == 25
    assert first_converged_step(totals, 0.75) == 24
    assert first_converged_step(totals, 0.999) == 17
    assert first_converged_step(totals, 0.9995) == 11
    assert first_converged_step(totals, 0.0) is None  # rtol 0: never stop early
    assert not _converged(totals[:10], 1.0)  # fewer than 11 losses: no window yet
    rising = [1.0 + k for k in range(12)]
    assert first_converged_step(rising, 1e-9) == 11  # a loss that got worse has converged


def test_convergence_based_stopping_stops_at_the_first_trigger(tiny_pair, vgg):
    cfg = TransferConfig.from_dict({**SMALL, "steps": 200, "stop_rtol": 0.5})
    result = stylize(cfg, *tiny_pair, backbone=vgg)
    total = result.history["total"]
    assert result.stopped_early and len(total) == result.steps < 200
    assert first_converged_step(total, cfg.stop_rtol) == result.steps


def test_diverging_run_raises_a_clear_error(tiny_pair, vgg):
    # unconstrained L-BFGS with a huge fixed step and no line search blows up
    cfg = TransferConfig.from_dict(
        {**SMALL, "optimizer": "lbfgs", "lr": 1.0e12, "lbfgs_line_search": "none", "steps": 50}
    )
    with pytest.raises(NonFiniteLoss, match="lower the lr or the weights"):
        stylize(cfg, *tiny_pair, backbone=vgg)


def test_result_records_weights_timings_and_memory(tiny_pair, vgg):
    result = stylize(TransferConfig.from_dict({**SMALL, "steps": 2}), *tiny_pair, backbone=vgg)
    assert result.weights.identity == "random:seed=0"
    assert result.seconds_per_step > 0 and result.peak_memory_mb > 0
    assert result.image.shape == (1, 3, 32, 32) and result.image.dtype == torch.float32


def test_bfloat16_mode_tracks_float32(tiny_pair, vgg):
    cfg = TransferConfig.from_dict({**SMALL, "steps": 3})
    fp32 = stylize(cfg, *tiny_pair, backbone=vgg)
    bf16 = stylize(cfg.replace(dtype="bfloat16"), *tiny_pair, backbone=vgg)
    assert next(vgg.parameters()).dtype == torch.float32  # the caller's backbone is untouched
    assert bf16.history["total"][-1] == pytest.approx(fp32.history["total"][-1], rel=0.2)


def test_bad_layer_and_device(tiny_pair, vgg):
    with pytest.raises(NstError, match="no layer"):
        stylize(
            TransferConfig.from_dict({**SMALL, "style_layers": ["block3"]}),
            *tiny_pair,
            backbone=vgg,
        )
    if not torch.cuda.is_available():
        with pytest.raises(NstError, match="CUDA is not available"):
            stylize(TransferConfig.from_dict({**SMALL, "device": "cuda"}), *tiny_pair, backbone=vgg)


def test_softmax_feature_transform_changes_the_loss_and_stays_differentiable(tiny_pair, vgg):
    """SWAG's softmax transform (nst.losses.transform_features): another loss,
    still finite with a nonzero gradient on the image; `none` is the untransformed objective."""
    from nst.losses import transform_features

    content, style = tiny_pair
    cfg = TransferConfig.from_dict(SMALL)
    x = (content + 0.1 * torch.rand_like(content)).clamp(0, 1)
    losses = {}
    for kind in ("none", "softmax"):
        objective = TransferLoss(
            vgg, cfg.replace(feature_transform=kind), content, style, torch.float32
        )
        image = x.clone().requires_grad_(True)
        total = objective(image)["total"]
        total.backward()
        assert torch.isfinite(total) and image.grad is not None
        assert torch.isfinite(image.grad).all() and image.grad.abs().sum() > 0
        losses[kind] = float(total.detach())
    assert losses["softmax"] != pytest.approx(losses["none"], rel=1e-3)
    # a lower temperature sharpens the distributions: yet another loss
    hot = TransferLoss(
        vgg,
        cfg.replace(feature_transform="softmax", feature_temperature=0.1),
        content,
        style,
        torch.float32,
    )
    assert float(hot(x)["total"]) != pytest.approx(losses["softmax"], rel=1e-3)
    # each channel becomes M x a distribution over its M positions: mean 1, positive
    f = vgg.features(x, ["relu2_1"])
    s = transform_features(f, "softmax", 1.0)["relu2_1"]
    assert s.shape == f["relu2_1"].shape and (s > 0).all()
    assert torch.allclose(s.mean(dim=(2, 3)), torch.ones(s.shape[:2]), atol=1e-5)
    assert transform_features(f, "none") is f


def test_feature_transform_none_is_bit_identical_to_no_transform(tiny_pair, vgg):
    """`none` leaves the objective exactly as it was: the same bytes as the loss computed
    directly from the backbone's features."""
    from nst.losses import content_loss

    content, style = tiny_pair
    cfg = TransferConfig.from_dict(SMALL)
    objective = TransferLoss(vgg, cfg, content, style, torch.float32)
    x = torch.rand_like(content)
    direct = sum(
        content_loss(vgg.features(x, cfg.content_layers)[k], objective.content_targets[k])
        for k in cfg.content_layers
    )
    assert torch.equal(objective(x)["content"], direct)
