"""`nst transfer --content A --style B --out C [options]`: stylise one image."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from nst import NstError
from nst.cli.options import (
    add_config_options,
    check_output,
    config_from_args,
    transfer_default,
)

if TYPE_CHECKING:  # torch and the loop are imported by run(), so `nst --help` stays instant
    from nst.config import OptimisationConfig
    from nst.optimize import Callback, Result, Step
    from nst.tracking.transfer import TransferTracker

HELP = "stylise a content image with a style image"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--content", required=True, help="content image file")
    p.add_argument(
        "--style",
        required=True,
        action="append",
        help="style image file; several as A,B or a repeated --style, mixed by --style-blend",
    )
    p.add_argument("--out", required=True, help="where to write the result (.png or .jpg)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    add_memory_options(p)
    p.add_argument(
        "--frames-out",
        metavar="PATH.gif",
        help="write the progress frames as an animated GIF (and an MP4 beside it when ffmpeg "
        "is installed); default with --frame-every: <out>.frames.gif beside --out",
    )
    add_tracking_options(p)
    add_config_options(p, shown=transfer_default)


def add_memory_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory the run may use, e.g. 4GB (default: what is available now); a run "
        "predicted to need more (nst.memory) is refused before any work",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print the predicted peak memory and stop"
    )


def check_memory(args: argparse.Namespace, config: Any, content: str) -> bool:
    """Predict the run's peak memory from the content's header (nst.memory.check_config),
    refuse it in one line if it would not fit; True when --dry-run asked only for the estimate
    (printed)."""
    from nst.imagefiles import image_size
    from nst.memory import check_config

    w, h = image_size(content)
    long_side = max(getattr(config, "pyramid", ()) or (config.size,))

    def show(line: str) -> None:
        print(f"{content}: {long_side} px long side, {line}")

    check_config(config, args.max_memory, min(w, h) / max(w, h), show if args.dry_run else None)
    return bool(args.dry_run)


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "MLflow tracking (on by default: sqlite mlflow.db at the project root)"
    )
    g.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite mlflow.db)",
    )
    g.add_argument("--experiment", default="nst", help="MLflow experiment name (default: nst)")
    g.add_argument("--run-name", help="MLflow run name")
    g.add_argument("--no-track", action="store_true", help="do not log this run to MLflow")
    g.add_argument(
        "--track",
        choices=("strict", "best-effort"),
        default="strict",
        help="strict (default): a tracking failure fails the command after the result is "
        "written; best-effort: warn and keep going",
    )


def tracked(
    args: argparse.Namespace, config: OptimisationConfig, inputs: dict[str, str], rule: str = ""
) -> contextlib.AbstractContextManager[TransferTracker | None]:
    """The MLflow run context of this command, or a no-op one with --no-track; `rule` (how the
    backbone was chosen) is the tag nst.backbone.rule, as on a study's parent run."""
    if getattr(args, "no_track", True):
        return contextlib.nullcontext(None)
    from nst.tracking.transfer import transfer_run

    return transfer_run(
        config,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        run_name=args.run_name,
        mode=args.track,
        tags={
            **{f"nst.input.{k}": v for k, v in inputs.items()},
            **({"nst.backbone.rule": rule} if rule else {}),
        },
    )


def progress_bar(total: int, desc: str | None = None) -> tuple[tqdm, Callback]:
    # tqdm disables itself when stderr is not a terminal (disable=None); `desc` names the
    # backbone, so that a user waiting on a run sees which network it is
    bar = tqdm(
        total=total, unit="step", desc=desc, disable=None, file=sys.stderr, dynamic_ncols=True
    )

    def update(step: Step) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{step.losses['total']:.4g}", refresh=False)

    return bar, update


def summary(result: Result, out: str) -> dict[str, object]:
    from nst.provenance import package_versions

    return {
        "output": out,
        "final_losses": result.final_losses,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "seconds_per_step": round(result.seconds_per_step, 5),
        "peak_memory_mb": round(result.peak_memory_mb, 1),
        "weights": {
            "identity": result.weights.identity,
            "sha256": result.weights.sha256,
            "pretrained": result.weights.pretrained,
        },
        "seed": result.config.seed,
        "config": result.config.to_dict(),
        "frames": len(result.frames),
        "versions": package_versions(),
    }


def run(args: argparse.Namespace) -> int:
    from nst.images import load_image, save_image
    from nst.optimize import stylize
    from nst.optimize.controls.frames import write_frames
    from nst.optimize.pyramid import total_steps

    config, rule = config_from_args(args)
    style_paths = [s for v in args.style for s in (x.strip() for x in v.split(",")) if s]
    if args.out in (args.content, *style_paths):
        raise NstError(f"--out {args.out} is an input image; choose another output path")
    check_output(args.out, "--out")
    if args.frames_out:
        check_output(args.frames_out, "--frames-out")
    if check_memory(args, config, args.content):
        return 0
    if args.frames_out and config.frame_every == 0:  # asked for frames: about 30 of them
        config = config.replace(frame_every=max(1, config.steps // 30))
    content = load_image(args.content)
    styles = [load_image(p) for p in style_paths]
    style = styles[0] if len(styles) == 1 else styles
    bar, update = progress_bar(total_steps(config), f"{config.backbone} ({rule.split(' -> ')[0]})")
    inputs = {"content": args.content, **{f"style{i or ''}": p for i, p in enumerate(style_paths)}}
    # a tracking failure (strict) is raised when this block exits: the result is on disk by then
    with tracked(args, config, inputs, rule) as tracker:
        callbacks: list[Any] = [update] if tracker is None else [update, tracker.callback()]
        with bar:
            result = stylize(config, content, style, callbacks=callbacks)
        save_image(result.image, args.out, protect=(args.content, *style_paths))
        frame_files: list[Path] = []
        if result.frames:
            frames_out = args.frames_out or str(Path(args.out).with_suffix(".frames.gif"))
            frame_files = write_frames(result.frames, frames_out)
            for path in frame_files:
                print(f"wrote {path} ({len(result.frames)} frames)", file=sys.stderr)
        if tracker is not None:
            from nst.tracking.tags import hash_files

            tracker.log_result(result, content, style, data_hashes=hash_files(inputs))
            for path in frame_files:
                tracker.log_artifact(path, "images")
        print_result(
            args, result, tracker, f"{result.steps} steps", f"backbone {rule}", backbone_rule=rule
        )
    return 0


def print_result(
    args: argparse.Namespace,
    result: Result,
    tracker: TransferTracker | None,
    steps: str,
    network: str,
    **extra: Any,
) -> None:
    """The command's last words: the JSON summary (--json) or one line, and the MLflow run."""
    if args.json:
        info = {**summary(result, args.out), **extra}
        if tracker is not None:
            info["mlflow"] = {"tracking_uri": tracker.uri, "run_id": tracker.run_id}
        print(json.dumps(info, indent=2))
    else:
        print(
            f"wrote {args.out} ({steps}, {result.seconds:.1f} s, "
            f"loss {result.final_losses['total']:.4g}, {network}, "
            f"weights {result.weights.identity})"
        )
    if tracker is not None and tracker.active:
        print(f"MLflow run {tracker.run_id} in {tracker.uri}", file=sys.stderr)
