"""Studies: what pruning saves, and how throughput scales with workers.

1. Pruning: the loss_weights study as one objective (style_gram_dist, TPE, same seed), 20
   trials with the pruner on vs off. Reports the wall-time ratio and the best value of each.
   Sizes are reduced (default 48 px, 30 steps, 2 pairs) so that the benchmark runs in a few
   minutes on 2 CPU cores; a pruned trial saves the same share of work at any size.
2. Throughput: trials per minute with 1 and 2 worker processes on one sqlite study.

    python -m benchmarks.bench_study [--trials 20] [--size 48] [--steps 40] [--pruner hyperband]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from nst.experiment import Objective, load_experiment
from nst.study import StudyOptions, run_study

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "loss_weights.yaml"


def one_objective(args: argparse.Namespace, pruner: str, trials: int):  # type: ignore[no-untyped-def]
    spec = load_experiment(EXPERIMENT).with_profile("smoke", trials=trials)
    return replace(
        spec,
        objectives=(Objective("style_gram_dist", "minimize"),),
        sampler="tpe",
        pruner={"type": pruner},
        fixed={**spec.fixed, "size": args.size, "steps": args.steps},
        pairs={**spec.pairs, "count": args.pairs},
        budget={"trials": trials, "timeout_s": 0},
        reports=args.reports,
    )


def run(spec, root: Path, tag: str, workers: int = 1) -> tuple[float, dict]:  # type: ignore[no-untyped-def]
    opts = StudyOptions(out=root / tag, storage=f"sqlite:///{root / tag}.db", track=False,
                        workers=workers, seed=0)  # fmt: skip
    t = time.perf_counter()
    out = run_study(spec, opts)
    return time.perf_counter() - t, json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--reports", type=int, default=5)
    p.add_argument("--pruner", default="hyperband", choices=["median", "hyperband"])
    p.add_argument("--throughput-trials", type=int, default=8, help="0 skips the worker comparison")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        print(f"loss_weights as one objective (style_gram_dist), {args.trials} trials, "
              f"{args.size} px, {args.steps} steps, {args.pairs} pairs, TPE seed 0")  # fmt: skip
        results = {}
        for pruner in ("none", args.pruner):
            seconds, summary = run(one_objective(args, pruner, args.trials), root, pruner)
            best = summary["best_trials"][0]["values"]["style_gram_dist"]
            results[pruner] = seconds
            print(f"  pruner {pruner:<9} {seconds:7.1f} s  best style_gram_dist {best:.4f}  "
                  f"states {summary['states']}")  # fmt: skip
        print(f"  speed-up with {args.pruner}: {results['none'] / results[args.pruner]:.2f}x")
        if args.throughput_trials:
            n = args.throughput_trials
            print(f"throughput, {n} trials, pruner none, sqlite storage:")
            for workers in (1, 2):
                spec = replace(one_objective(args, "none", n), name=f"loss_weights_w{workers}")
                seconds, _ = run(spec, root, f"w{workers}", workers=workers)
                print(f"  {workers} worker(s): {seconds:6.1f} s  {60 * n / seconds:5.1f} trials/min "
                      "(includes process start-up)")  # fmt: skip


if __name__ == "__main__":
    main()
