"""The one training loop of every feed-forward method: `train(config, out) -> TrainResult`.

Per step: this rank's share of the global batch (nst.train.data) -> the method's loss
(nst.train.losses: it runs the network, under bf16 or fp16 autocast and channels_last when
configured) -> backward (DistributedDataParallel averages the gradients; under fp16 of the
loss scaled by a GradScaler, which skips a step whose gradients overflowed) -> optimiser and
lr-schedule step. Methods that take the style as an input (their registry entry says so:
adain, stytr) also take the next style batch from a second stream (nst.train.arbitrary);
nothing here names a method. Only parameters that require grad (decoders, LoRA) are
optimised, and
the parameters of every network (trainable, frozen, LoRA) are printed when it is built and
recorded (the checkpoint's meta, the MLflow metrics parameters/*).

Determinism: the network is initialised under torch.manual_seed(seed) (python `random` and
numpy seeded alike); nothing else in the loop draws random numbers except the stream, whose
crops are a function of its position. A checkpoint saves every RNG state and the position, so
a resumed run computes the same float operations in the same order as an uninterrupted one
and ends bit-identical on CPU. On CUDA the same holds in deterministic mode
(config.deterministic: nst.runtime.deterministic), except in ops that have no deterministic
CUDA kernel, which the run names (TrainResult.nondeterministic, the MLflow tag
nst.nondeterministic_ops). DataLoader workers (config.workers) deliver the same batches
(nst.train.data), and torch.compile (config.compile) the same function, compiled: its kernels
may round differently from eager ones.

Non-finite losses. The losses stay on the device and are checked every `log_every` steps and
before every checkpoint (a per-step check would synchronise the device each step); the first
non-finite step raises an NstError (nst.runtime.NonFiniteLoss, as image optimisation raises)
naming it, before anything is saved, so the last good checkpoint stays intact.

Validation: `validate` is called after the steps in `validate_at`, on rank 0, in eval mode
under no_grad (nst.train.validate): how a study judges a trial on held-out photos while it
trains, and stops it early by raising.

Outputs (rank 0 only): <out>/checkpoint.pt (latest training state), <out>/model.pt (final
network), <out>/losses.jsonl (one line per step: step and every loss term of the global
batch), <out>/samples/step_NNNNNN.png (the validation photos, stylised), hooks for tracking
(TrainResult.validation: the final network's stylisation of the validation photos).
"""

from __future__ import annotations

import sys
import time
import typing
import warnings
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nst import NstError
from nst.backbones.base import Backbone, WeightsInfo
from nst.images import load_image
from nst.models import get_model
from nst.models.io import unwrap
from nst.optimizers import make_optimizer, make_schedule
from nst.provenance import bf16_support
from nst.runtime import (
    autocast,
    deterministic,
    noting_nondeterminism,
    peak_memory_mb,
    resolve_device,
    seed_everything,
)
from nst.train import arbitrary, distributed
from nst.train import checkpoint as ckpt
from nst.train.config import TrainConfig
from nst.train.data import ContentStream, batches
from nst.train.losses import LOSSES
from nst.train.losslog import LOSS_LOG, append, drain, trim
from nst.train.validate import Validate, run_validation, sample, stylize_row


class TrainHooks(Protocol):
    """What a tracker receives from rank 0 (nst.train.tracking implements it with MLflow)."""

    def on_start(self, info: dict[str, Any]) -> None: ...
    def on_log(self, rows: list[dict[str, float]]) -> None: ...
    def on_sample(self, step: int, images: torch.Tensor) -> None: ...
    def on_checkpoint(self, step: int, path: Path) -> None: ...
    def on_end(self, result: TrainResult) -> None: ...


@dataclass
class TrainResult:
    config: TrainConfig
    steps: int  # finished steps (the config's, at the end)
    start_step: int  # 0, or the checkpoint's step when resumed
    final_losses: dict[str, float]
    checkpoint: Path
    model: Path
    weights: WeightsInfo  # of the loss backbone
    skipped: list[Path]  # unreadable content photos
    seconds: float
    images_per_second: float  # global batch images per second of loop time
    peak_memory_mb: float
    bf16: str  # "native" | "emulated" | "" (float32)
    world_size: int = 1
    history: list[dict[str, float]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # trainable vs frozen counts
    #: the final network's stylisation of the validation photos, side by side (eval mode,
    #: rank 0; None elsewhere or without photos): what the samples show, at the end
    validation: torch.Tensor | None = None
    #: deterministic mode: the ops that ran without a deterministic kernel (empty on CPU)
    nondeterministic: list[str] = field(default_factory=list)


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    hooks: TrainHooks | None = None,
    progress: bool = True,
    validate: Validate | None = None,
    validate_at: Collection[int] = (),
) -> TrainResult:
    """Train config.method's network on config.data for config.style into the folder `out`.

    resume=False refuses a folder that already holds a checkpoint (it is never overwritten);
    resume=True continues from <out>/checkpoint.pt, whose method and options must match.
    validate(Validation) is called after each step in `validate_at` (every N steps:
    range(N, config.steps + 1, N)) on rank 0, in eval mode under no_grad (nst.train.validate);
    what it raises ends the training, leaving the folder consistent."""
    out = Path(out)
    path = out / ckpt.CHECKPOINT
    world = distributed.world_from_env()
    device = distributed.device_for(world, resolve_device(config.device))
    saved = ckpt.check_out(path, config, resume)
    styles = None
    if config.takes_style:
        styles = arbitrary.style_stream(config, world.rank, world.world_size, world.is_main)
        style = styles.validation(1)  # the fixed style of the validation samples
    elif config.entry.style_bank:  # its first style, the one the samples show
        style = load_image(Path(config.styles) / config.style_names[0], size=config.size)
    elif not config.style:
        raise NstError("no style image: pass --style PATH")
    else:
        style = load_image(config.style, size=config.style_size or config.size)
    stream = ContentStream(
        config.data,
        config.size,
        config.batch_size,
        config.seed,
        world.rank,
        world.world_size,
        warn=world.is_main,
        resize=config.resize,
    )
    bf16 = bf16_support(device) if config.dtype == "bfloat16" else ""
    if bf16 == "emulated" and world.is_main:
        warnings.warn(
            f"bfloat16 on {device.type} is emulated here (no native bf16 matrix units): "
            "expect it to be slower than float32",
            stacklevel=2,
        )
    with deterministic(config.deterministic):
        distributed.start(world, device)
        try:
            return _run(
                config,
                out,
                saved,
                world,
                device,
                style,
                (stream, styles),
                bf16,
                hooks,
                progress,
                (validate, frozenset(validate_at)),
            )
        finally:
            distributed.stop(world)


def _run(
    config: TrainConfig,
    out: Path,
    saved: dict[str, Any] | None,
    world: distributed.World,
    device: torch.device,
    style: torch.Tensor,
    streams: tuple[ContentStream, ContentStream | None],
    bf16: str,
    hooks: TrainHooks | None,
    progress: bool,
    validation: tuple[Validate | None, frozenset[int]] = (None, frozenset()),
) -> TrainResult:
    t0 = time.perf_counter()
    validate, validate_at = validation
    stream, styles = streams
    seed_everything(config.seed)
    net = get_model(config.method, **config.build_options)
    params = [p for p in net.parameters() if p.requires_grad]
    counts = arbitrary.parameter_counts(net)
    optimizer = make_optimizer(config, params)
    scheduler = make_schedule(config, optimizer)
    assert scheduler is not None  # training has no L-BFGS
    # fp16's narrow range: the loss is scaled up for backward and the gradients down before
    # the step, which is skipped when they overflowed (off: every call passes through)
    scaler = torch.amp.GradScaler(device.type, enabled=config.dtype == "float16")
    start = 0
    path = out / ckpt.CHECKPOINT
    if saved is not None:
        start, stream.position = ckpt.restore(
            saved, path, model=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler
        )
        if styles is not None:
            styles.position = ckpt.style_position(saved)
    memory = torch.channels_last if config.channels_last else torch.contiguous_format
    net.to(device)
    net.to(memory_format=memory)
    # built after the network is on the device: adain's loss may reuse its encoder
    objective = LOSSES.get(config.entry.loss).build(
        config, net, device, None if styles is not None else style
    )
    backbone, terms = objective.backbone, objective.terms
    _optimizer_to(optimizer, device)
    model = distributed.wrap(net, world, device)
    if config.compile:  # DDP first, so its gradient hooks run around the compiled graph
        model = typing.cast(nn.Module, torch.compile(model))
    val = stream.validation(config.val_images).to(device)
    val_style = style.to(device).expand(len(val), -1, -1, -1) if styles is not None else None
    extra: dict[str, Any] = {
        "weights": backbone.weights_info.identity,
        "style": str(config.styles if styles or config.entry.style_bank else config.style),
        "parameters": counts,
    }
    encoder: WeightsInfo | None = None  # adain, stytr: the frozen encoders' weights
    if styles is not None:
        encoders = [m for m in net.modules() if isinstance(m, Backbone)]
        encoder = encoders[0].weights_info if encoders else None
        extra["encoder_weights"] = encoder.identity if encoder else ""
    if world.is_main:
        print(f"{config.method}: {arbitrary.describe_counts(counts)}", file=sys.stderr)
        out.mkdir(parents=True, exist_ok=True)
        trim(out / LOSS_LOG, start)
        for stale in out.glob(f".{ckpt.CHECKPOINT}.*.tmp"):
            stale.unlink(missing_ok=True)  # left by a process killed mid-save
        if hooks:
            hooks.on_start(
                {
                    "weights": backbone.weights_info,
                    "style": style,
                    "val": val,
                    "world_size": world.world_size,
                    "start_step": start,
                    "parameters": counts,
                    "encoder_weights": encoder,
                }
            )
    bar = _bar(config, start, progress and world.is_main)
    pending: list[tuple[int, torch.Tensor]] = []
    history: list[dict[str, float]] = []
    images = config.batch_size * world.world_size
    loop_t0 = time.perf_counter()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = start
    pin = device.type == "cuda"
    contents = batches(stream, config.workers, pin)
    style_batches = batches(styles, config.workers, pin) if styles is not None else None
    nondeterministic: list[str] = []
    try:
        while step < config.steps:
            batch = next(contents).to(device, non_blocking=True)
            batch = batch.contiguous(memory_format=memory)
            sbatch = None
            if style_batches is not None:
                sbatch = next(style_batches).to(device, non_blocking=True)
                sbatch = sbatch.contiguous(memory_format=memory)
            # every step runs the same ops: the first one names those without a deterministic
            # kernel
            with noting_nondeterminism(nondeterministic, config.deterministic and step == start):
                with autocast(device, config.dtype):
                    _, losses = objective(model, batch, sbatch)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(losses["total"]).backward()
                scaler.step(optimizer)
                scaler.update()
            with warnings.catch_warnings():
                # a step the fp16 scaler skipped (its gradients overflowed) still counts in the
                # schedule: the schedule follows loop steps, as resuming expects
                warnings.filterwarnings(
                    "ignore", "Detected call of `lr_scheduler.step", UserWarning
                )
                scheduler.step()
            step += 1
            values = torch.stack([losses[t].detach().float() for t in terms])
            pending.append((step, distributed.mean_over_ranks(values, world)))
            at_checkpoint = step == config.steps or (
                config.checkpoint_every and step % config.checkpoint_every == 0
            )
            validating = validate is not None and step in validate_at and world.is_main
            if step % config.log_every == 0 or at_checkpoint or validating:
                rows = drain(pending, terms)  # a non-finite loss stops before validating
                history.extend(rows)
                if world.is_main:
                    append(out / LOSS_LOG, rows)
                    if hooks:
                        hooks.on_log(rows)
                    if bar is not None:
                        done = step - start
                        rate = done * images / max(time.perf_counter() - loop_t0, 1e-9)
                        bar.update(step - bar.n)
                        bar.set_postfix(loss=f"{rows[-1]['total']:.4g}", img_s=f"{rate:.1f}")
            if world.is_main and config.sample_every and step % config.sample_every == 0:
                sample(unwrap(model), (val, val_style), step, out, hooks, config.dtype, device)
            if at_checkpoint and world.is_main:
                ckpt.save_training(
                    path,
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    config=config,
                    step=step,
                    position=stream.position,
                    extra=extra,
                    style_position=styles.position if styles else None,
                    scaler=scaler,
                )
                if hooks:
                    hooks.on_checkpoint(step, path)
            if validating:
                assert validate is not None
                run_validation(validate, step, unwrap(model), device, objective)
    finally:
        contents.close()  # stops the DataLoader workers
        if style_batches is not None:
            style_batches.close()
        if bar is not None:
            bar.close()
    loop_s = time.perf_counter() - loop_t0
    model_path = out / ckpt.MODEL
    final_row = None
    if world.is_main:
        ckpt.save_model(model_path, model, config, step, extra)
        final_row = stylize_row(unwrap(model), (val, val_style), config.dtype, device)
    distributed.barrier(world)
    done = step - start
    result = TrainResult(
        config=config,
        steps=step,
        start_step=start,
        final_losses=history[-1] if history else {},
        checkpoint=path,
        model=model_path,
        weights=backbone.weights_info,
        skipped=list(stream.skipped),
        seconds=time.perf_counter() - t0,
        images_per_second=done * images / loop_s if loop_s > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(device),
        bf16=bf16,
        world_size=world.world_size,
        history=history,
        parameters=counts,
        validation=None if final_row is None else final_row.cpu(),
        nondeterministic=nondeterministic,
    )
    if world.is_main and hooks:
        hooks.on_end(result)
    return result


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """A restored optimiser's state onto the network's device (load_state_dict keeps it on CPU
    when the parameters were still there)."""
    for state in optimizer.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and k != "step":
                state[k] = v.to(device)


def _bar(config: TrainConfig, start: int, enabled: bool) -> Any:
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    # tqdm disables itself when stderr is not a terminal (disable=None); its ETA is the rest
    return tqdm(
        total=config.steps,
        initial=start,
        unit="step",
        disable=None,
        file=sys.stderr,
        dynamic_ncols=True,
        desc="train",
    )
