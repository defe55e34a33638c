"""`nst methods experiments/methods.yaml --profile smoke --data data --out results`: compare
the stylisation methods on the same held-out pairs (nst.methods).

--step all (default) trains what needs training and evaluates; the DVC pipeline runs the
steps apart: plan (one resolved plan file per method), train (one method, from its plan
file: the stage train@<method>), evaluate (trains nothing: the stage methods).

`nst methods --list` prints the method registry: every method a methods file may name, the
built-in ones and those plug-in packages add (nst.registry's entry points).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "compare methods (gatys, johnson, adain, stytr, onnx, plug-ins) on the same held-out pairs"
STEPS = ("all", "plan", "train", "evaluate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "spec",
        type=Path,
        nargs="?",
        help="methods file (experiments/methods.yaml) or a plan file of --step plan",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="list the registered methods (built-in and plug-in) and exit",
    )
    p.add_argument(
        "--profile",
        default="quick",
        choices=("smoke", "quick", "full"),
        help="smoke (CI seconds) | quick (make repro, 2 cores) | full (GPU protocol)",
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path("data"),
        help="folder with content/ and style/ (nst fetch's output)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="results folder: writes <out>/<name>/ (the file's name: key, default methods)",
    )
    p.add_argument(
        "--step",
        choices=STEPS,
        default="all",
        help="all: train and evaluate; plan: write <out>/methods/plan/<name>.json; "
        "train: train the networks (of --method); evaluate: stylise and judge with "
        "the trained networks, training none",
    )
    p.add_argument(
        "--method",
        action="append",
        metavar="NAME",
        help="--step train: only this method (repeatable; default: every trained one)",
    )
    p.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite mlflow.db)",
    )
    p.add_argument(
        "--experiment", help="MLflow experiment (default: the file's name: key, e.g. methods)"
    )
    p.add_argument("--no-track", action="store_true", help="do not log to MLflow")
    p.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory each stylisation may use, e.g. 4GB (nst.memory): an optimisation "
        "predicted to need more is refused, a trained network runs in the largest tile "
        "that fits (default: unchecked)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the final table")


def run(args: argparse.Namespace) -> int:
    from nst import NstError
    from nst.methods.tracking import log_comparison, training_hooks
    from nst.methods.training import train_methods, write_plans

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    if args.list:
        from nst.models.registry import describe_methods

        print(describe_methods())
        return 0
    if args.spec is None:
        raise NstError("name a methods file (experiments/methods.yaml), or pass --list")
    if args.method and args.step != "train":
        raise NstError("--method selects what --step train trains; add --step train")
    from nst.methods.spec import load_plan

    experiment = args.experiment or load_plan(args.spec, args.profile).name
    if args.step == "plan":
        paths = write_plans(args.spec, args.profile, args.out)
        print(f"methods plan ({args.profile}): {', '.join(str(p) for p in paths)}")
        return 0
    hooks = None if args.no_track else training_hooks(args.tracking_uri, args.profile, experiment)
    if args.step == "train":
        records = train_methods(
            args.spec, args.profile, args.data, args.out, args.method, log=log, hooks=hooks
        )
        for r in records:
            state = f"trained in {r['seconds']:.1f} s" if r["trained"] else "reused"
            print(f"  {r['run']}: {state}")
        return 0
    from nst.methods.run import HEADLINE, run_methods

    if args.max_memory:
        from nst.memory import parse_size

        parse_size(args.max_memory)  # a bad size is one line before any work
    root = run_methods(
        args.spec,
        args.profile,
        args.data,
        args.out,
        log=log,
        train=args.step == "all",
        hooks=hooks,
        max_memory=args.max_memory,
    )
    summary = json.loads((root / "summary.json").read_text())
    means = json.loads((root / "metrics.json").read_text())  # run_methods' per-method means
    pairs = sum(int(m["pairs"]) for m in means.values())
    print(f"methods ({summary['profile']}): {pairs} results -> {root}")
    for name, mean in means.items():
        if not mean["pairs"]:
            continue
        shown = [k for k in (*HEADLINE, "seconds", "peak_memory_mb") if k in mean]
        print(f"  {name}: " + ", ".join(f"{k} {mean[k]:.4g}" for k in shown))
    if not args.no_track:
        run_id = log_comparison(root, args.tracking_uri, experiment)
        if run_id:
            print(f"MLflow: run {run_id} (experiment {experiment}), one nested run per method")
    return 0
