"""Studies: what pruning saves, and how throughput scales with workers.

1. Pruning: the loss_weights study as one objective (style_gram_dist, TPE), 20 trials, with
   no pruner and with each pruner given, for several sampler seeds. Prints each arm's wall
   time and best value, the speed-up per seed, and the spread of the unpruned best values
   across seeds: the noise a pruned study's best value is judged by. Defaults: the quick
   profile's image size and steps (128 px, 60 steps) on 4 pairs with 3 reports per pair (a
   pruner first judges at report 1, a third of pair 0), successive halving with its scouts
   (nst.study.pruners) and without (Optuna's own); about an hour on 2 cores. `--pairs 2 --reports 6`
   is the quick profile itself, the hardest case for a pruner: a poor trial then costs at
   least a sixth of a full one.
2. Throughput: trials per minute with 1 and 2 worker processes on one sqlite study.

    python -m benchmarks.bench_study [--trials 20] [--size 128] [--steps 60] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import optuna

from nst.study.objective import StudyOptions
from nst.study.runner import run_study
from nst.study.spec import Objective, load_experiment

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "loss_weights.yaml"


def one_objective(args: argparse.Namespace, arm: str, trials: int):  # type: ignore[no-untyped-def]
    """The study of one arm: a pruner name with its options, e.g. `successive_halving:scouts=0`."""
    spec = load_experiment(EXPERIMENT).with_profile("smoke", trials=trials)
    pruner, *given = arm.split(":")
    halving = pruner in ("successive_halving", "hyperband")
    options = {"reduction_factor": args.reduction_factor} if halving else {}
    options |= {k: int(v) for k, v in (o.split("=") for o in given)}
    return replace(
        spec,
        objectives=(Objective("style_gram_dist", "minimize"),),
        sampler="tpe",
        pruner={"type": pruner, **options},
        fixed={**spec.fixed, "size": args.size, "steps": args.steps},
        pairs={**spec.pairs, "count": args.pairs},
        budget={"trials": trials, "timeout_s": 0},
        reports=args.reports,
    )


def run(spec, root: Path, tag: str, workers: int = 1, seed: int = 0) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    opts = StudyOptions(
        out=root / tag,
        storage=f"sqlite:///{root / tag}.db",
        track=False,
        workers=workers,
        seed=seed,
    )
    t = time.perf_counter()
    out = run_study(spec, opts)
    return time.perf_counter() - t, json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--reports", type=int, default=3)
    p.add_argument(
        "--pruner",
        default="successive_halving,successive_halving:scouts=0",
        help="pruners to compare with none, comma-separated: median, "
        "successive_halving, hyperband, each with integer options after colons "
        "(successive_halving:scouts=0 is Optuna's own asynchronous halving)",
    )
    p.add_argument(
        "--reduction-factor",
        type=int,
        default=3,
        help="of successive_halving and hyperband (Optuna: 3)",
    )
    p.add_argument(
        "--seeds",
        default="0,1,2",
        help="sampler seeds, comma-separated; the spread of "
        "the unpruned best values across seeds is the noise the pruned best is judged by",
    )
    p.add_argument("--throughput-trials", type=int, default=8, help="0 skips the worker comparison")
    args = p.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per arm, not per trial
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        seeds = [int(x) for x in args.seeds.split(",")]
        print(
            f"loss_weights as one objective (style_gram_dist), {args.trials} trials, "
            f"{args.size} px, {args.steps} steps, {args.pairs} pairs, {args.reports} reports "
            f"per pair, TPE seeds {seeds}"
        )
        pruners = args.pruner.split(",")
        walls: dict[str, list[float]] = {p: [] for p in ["none", *pruners]}
        bests: dict[str, list[float]] = {p: [] for p in walls}
        for seed in seeds:
            for pruner in walls:
                spec = one_objective(args, pruner, args.trials)
                tag = pruner.replace(":", "-").replace("=", "")
                seconds, summary = run(spec, root, f"{tag}-s{seed}", seed=seed)
                best = summary["best_trials"][0]["values"]["style_gram_dist"]
                walls[pruner].append(seconds)
                bests[pruner].append(best)
                print(
                    f"  seed {seed} pruner {pruner:<28} {seconds:7.1f} s  best style_gram_dist "
                    f"{best:.4f}  states {summary['states']}"
                )
        none = bests["none"]
        print(
            f"  unpruned best: mean {statistics.mean(none):.4f}, range {min(none):.4f}.."
            f"{max(none):.4f} across seeds (the noise a pruned best is judged by)"
        )
        for pruner in pruners:
            ratios = [a / b for a, b in zip(walls["none"], walls[pruner], strict=True)]
            found = bests[pruner]
            print(
                f"  {pruner}: speed-up median {statistics.median(ratios):.2f}x (per seed "
                f"{', '.join(f'{r:.2f}' for r in ratios)}); best mean {statistics.mean(found):.4f}"
                f", range {min(found):.4f}..{max(found):.4f}"
            )
        if args.throughput_trials:
            n = args.throughput_trials
            print(f"throughput, {n} trials, pruner none, sqlite storage:")
            for workers in (1, 2):
                spec = replace(one_objective(args, "none", n), name=f"loss_weights_w{workers}")
                seconds, _ = run(spec, root, f"w{workers}", workers=workers)
                print(
                    f"  {workers} worker(s): {seconds:6.1f} s  {60 * n / seconds:5.1f} trials/min "
                    "(includes process start-up)"
                )


if __name__ == "__main__":
    main()
