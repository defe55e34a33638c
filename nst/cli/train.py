"""`nst train --method johnson --style S.jpg --data DIR --out runs/NAME [options]`: train a
feed-forward stylisation network (nst.train). Also under `torchrun --nproc-per-node N -m nst
train ...` for data-parallel training."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nst import NstError
from nst.cli.options import add_config_options, check_output, typed_values
from nst.cli.transfer import add_memory_options, add_tracking_options
from nst.models.registry import get_method, list_models
from nst.parts import read_yaml
from nst.train.config import TrainConfig

HELP = "train a feed-forward style network (johnson; arbitrary-style adain, stytr)"
#: options whose values are paths, made absolute so a resumed run names the same files
PATH_KEYS = ("data", "style", "styles")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run folder: checkpoint.pt, model.pt, samples/")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_memory_options(p)
    add_tracking_options(p)
    p.add_argument(
        "--register-model",
        metavar="NAME",
        help="register the trained network in the MLflow model registry as a new version of "
        "NAME (then `nst apply --model models:/NAME/VERSION`)",
    )
    add_config_options(
        p,
        TrainConfig,
        "training configuration (defaults from nst.train.TrainConfig)",
        train_default,
    )


def train_default(name: str, value: Any) -> Any:
    """The default `nst train --help` names: the method's where the method decides it."""
    if name in ("content_layers", "style_layers"):
        return "the method's layers on VGG (Johnson's for johnson), else the backbone's preset"
    if name == "method":
        return f"{value}; one of {', '.join(list_models())}"
    if name in ("alpha", "beta", "backbone", "encoder"):
        entries = [get_method(m) for m in list_models()]
        named = [m for m in entries if name in m.defaults or name == "backbone"]
        return "per method: " + ", ".join(
            f"{m.name} {m.defaults.get(name, 'the encoder')}" for m in named
        )
    return value


def requested_values(args: argparse.Namespace) -> dict[str, Any]:
    """The config values the user gave: the --config file, overridden by typed options."""
    values: dict[str, Any] = {}
    if args.config:
        values.update(TrainConfig.from_yaml(args.config).to_dict())
    values.update(typed_values(args, TrainConfig))
    for key in PATH_KEYS:
        if isinstance(values.get(key), str) and values[key]:
            values[key] = str(Path(values[key]).expanduser().resolve())
    return values


def styles_named(args: argparse.Namespace) -> bool:
    """Whether the user named the style folder: --styles, or `styles` in the --config file."""
    return args.cfg_styles is not None or bool(args.config and "styles" in read_yaml(args.config))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    from nst.train import checkpoint

    requested = requested_values(args)
    if not args.resume:
        config = TrainConfig.from_dict(requested)
        if (config.takes_style or config.entry.style_bank) and not styles_named(args):
            # TrainConfig's default folder is for programs that name theirs; a user who named
            # none would train, for hours, on whatever data/style holds
            raise NstError(
                f"--method {config.method} trains on a folder of style images: pass --styles "
                "DIR (e.g. data/style, written by nst fetch)"
            )
        return config
    path = Path(args.out) / checkpoint.CHECKPOINT
    if not path.exists():
        raise NstError(f"--resume: no checkpoint at {path}; start without --resume")
    data = checkpoint.read_training(path)
    saved = checkpoint.saved_config(data, path)
    from nst.train.config import resumed_config

    return resumed_config(saved, requested)


def check_train_memory(args: argparse.Namespace, config: TrainConfig) -> bool:
    """Refuse, in one line, a training predicted not to fit (nst.memory.check_config), naming
    the crop size that would; True when --dry-run asked only for the estimate (printed)."""
    from nst.memory import check_config

    def show(line: str) -> None:
        print(f"batch {config.batch_size} x {config.size} px crops: {line}")

    check_config(config, args.max_memory, show=show if args.dry_run else None)
    return bool(args.dry_run)


def run(args: argparse.Namespace) -> int:
    import contextlib

    from nst.train import train
    from nst.train.distributed import world_from_env

    config = config_from_args(args)
    check_output(args.out, "--out", folder=True)
    if check_train_memory(args, config):
        return 0
    world = world_from_env()
    track = not args.no_track and world.is_main
    if track:
        from nst.train.tracking import training_run

        context: Any = training_run(
            config,
            tracking_uri=args.tracking_uri,
            experiment=args.experiment,
            run_name=args.run_name,
            mode=args.track,
            register_model=args.register_model,
        )
    else:
        context = contextlib.nullcontext(None)
    with context as hooks:
        result = train(config, args.out, resume=args.resume, hooks=hooks)
    if not world.is_main:
        return 0
    info = {
        "checkpoint": str(result.checkpoint),
        "model": str(result.model),
        "steps": result.steps,
        "start_step": result.start_step,
        "final_losses": result.final_losses,
        "images_per_second": round(result.images_per_second, 2),
        "seconds": round(result.seconds, 2),
        "skipped_images": [str(p) for p in result.skipped],
        "world_size": result.world_size,
        "weights": result.weights.identity,
        "bf16": result.bf16 or None,
        "nondeterministic_ops": result.nondeterministic if result.config.deterministic else None,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        skipped = f", {len(result.skipped)} unreadable images skipped" if result.skipped else ""
        loss = result.final_losses.get("total", float("nan"))
        print(
            f"wrote {result.model} ({result.steps} steps, loss {loss:.4g}, "
            f"{result.images_per_second:.1f} img/s, weights {result.weights.identity}{skipped})"
        )
    if hooks is not None and hooks.tracker.active:
        run_id = hooks.tracker.run_id
        print(
            f"MLflow run {run_id} in {hooks.tracker.uri}; model runs:/{run_id}/model",
            file=sys.stderr,
        )
        if hooks.model_version:
            print(
                f"registered models:/{args.register_model}/{hooks.model_version}", file=sys.stderr
            )
    return 0
