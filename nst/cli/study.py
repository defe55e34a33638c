"""`nst study experiments/X.yaml [--profile smoke|quick|full] [--trials N] [--workers K]
[--backbone auto|NAME] [--storage URL] [--data DIR] [--out DIR] [--tracking-uri URI]
[--no-track]`: run (or resume) an Optuna study declared in an experiment file; results go to
<out>/<name>/. `--backbone auto`: vgg19 when its ImageNet file is present, else
efficientnet_lite0 (nst.study.backbone states the rule and which specs it leaves alone; a
training study, `method: johnson | adain | stytr`, keeps its own loss network under auto)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nst.study.profiles import DEFAULT_PROFILE, PROFILES

HELP = "run or resume an Optuna study declared in experiments/*.yaml"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment file, e.g. experiments/loss_weights.yaml")
    p.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=DEFAULT_PROFILE,
        help=f"compute budget (default {DEFAULT_PROFILE}; smoke for tests/CI)",
    )
    p.add_argument(
        "--trials",
        type=int,
        help="total trial budget (resuming runs only the rest; 0: the profile's)",
    )
    p.add_argument("--workers", type=int, default=1, help="worker processes on the same storage")
    p.add_argument(
        "--backbone",
        metavar="auto|NAME",
        help="the network of a study that does not search backbone, with its preset "
        "layers; auto: vgg19 when its ImageNet file is present, else "
        "efficientnet_lite0 (default: the spec's own); a training study's loss "
        "network: auto keeps the experiment's own",
    )
    p.add_argument(
        "--storage",
        help="sqlite:///abs.db (default <project>/optuna.db), "
        "journal:PATH, or postgresql://user@host/db; {name} is the study's name",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="start over: delete an earlier study of this name from the storage and "
        "its trial images and curves (the DVC stage does, so a re-run adds nothing)",
    )
    p.add_argument("--data", type=Path, help="data dir from `nst fetch` (default: embedded sample)")
    p.add_argument(
        "--out", type=Path, default=Path("results"), help="results root (default results/)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default <project>/mlflow.db)")
    p.add_argument("--no-track", action="store_true", help="do not log trials to MLflow")
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory each trial may use, e.g. 4GB (default: what is available when it starts); "
        "a trial whose drawn config is predicted to need more (nst.memory) fails alone, "
        "before any work, and the study goes on",
    )


def run(args: argparse.Namespace) -> int:
    from nst.study.backbone import choose_backbone
    from nst.study.objective import StudyOptions
    from nst.study.runner import run_study
    from nst.study.spec import load_experiment

    if args.max_memory:
        from nst.memory import parse_size

        parse_size(args.max_memory)  # a bad size is one line now, not a failure in every trial
    spec = load_experiment(args.experiment).with_profile(args.profile, trials=args.trials or None)
    spec, choice = choose_backbone(spec, args.backbone)
    print(f"study {spec.name}: backbone {choice.text}")
    storage = args.storage.replace("{name}", spec.name) if args.storage else None
    if args.fresh:
        start_over(spec.name, storage, args.out / spec.name)
    opts = StudyOptions(
        out=args.out,
        storage=storage,
        data=args.data,
        tracking_uri=args.tracking_uri or None,
        track=not args.no_track,
        workers=args.workers,
        seed=args.seed,
        progress=True,
        backbone=choice,
        max_memory=args.max_memory,
    )
    out = run_study(spec, opts)
    summary = json.loads((out / "summary.json").read_text())
    states = ", ".join(f"{v} {k.lower()}" for k, v in summary["states"].items())
    print(f"study {spec.name} ({spec.profile}): {summary['n_trials']} trials ({states}) -> {out}")
    for best in summary["best_trials"][:5]:
        values = ", ".join(f"{k}={v:.4g}" for k, v in best["values"].items())
        print(f"  trial {best['number']}: {values}  {best['params']}")
    return 0


def start_over(name: str, storage: str | None, out: Path) -> None:
    """Delete study `name` from the storage and its per-trial files under `out`: a study that
    resumed instead would add trials to the earlier run's and mix its images with them."""
    import contextlib
    import shutil

    import optuna

    from nst.study.storage import make_storage, storage_url
    from nst.tracking.store import project_root

    url = storage_url(storage, project_root())
    with contextlib.suppress(KeyError):  # KeyError: no such study yet
        optuna.delete_study(study_name=name, storage=make_storage(url))
    for part in ("images", "curves", "trials", "split"):  # trials/, split/: training studies
        shutil.rmtree(out / part, ignore_errors=True)
