"""Load test: K worker processes x N short trials on one PostgreSQL Optuna study.

    python -m benchmarks.bench_load [--workers 4] [--trials-per-worker 50] [--size 32]
                                    [--steps 1] [--storage postgresql://...] [--no-baseline]

Each trial is the smallest meaningful one (a 32 px transfer of 1 Adam step with seeded random
VGG-19 weights, objective = the total loss, random sampler, no pruner), so the figures measure
the harness and the shared storage (ask, tell, heartbeats, user attributes, images written),
not the network. MLflow tracking is off: with every trial's run going to one tracking server
the server, not the study, is what would be measured.

Reported, for the K-worker study and, side by side, a 1-worker baseline of N trials on the same
storage run just before and just after it (the machine's speed drifts when it is shared): trials per minute (finished trials over the wall time from the first trial's start to
the last trial's end, and over the whole command including process start-up), lost trials
(budget minus trials counted done: goal 0), duplicated trials (a trial number twice, a result
image written for no finished trial, or trials beyond the budget: goal 0), and trials per worker.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
import warnings
from collections import Counter
from pathlib import Path

from nst.study.attrs import WORKER

os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", DO_NOT_TRACK="1")

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def spec(name: str, trials: int, size: int, steps: int):  # type: ignore[no-untyped-def]
    from nst.study.spec import parse_experiment

    return parse_experiment(
        {
            "name": name,
            "search": {"lr": {"type": "float", "low": 1.0e-3, "high": 1.0e-1, "log": True}},
            "objectives": [{"metric": "total"}],
            "sampler": "random",
            "pruner": "none",
            "fixed": {"size": size, "steps": steps, "weights": "random", "device": "cpu"},
            "pairs": {"count": 1, "seed": 0},
            "budget": {"trials": trials, "timeout_s": 0},
        }
    )


def run_load(workers: int, per_worker: int, size: int, steps: int, storage: str) -> dict:
    """One study of workers x per_worker trials; its figures. The study is deleted after."""
    import optuna

    from nst.study.objective import StudyOptions
    from nst.study.runner import n_done, run_study

    budget = workers * per_worker
    name = f"bench_load_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = run_study(
            spec(name, budget, size, steps),
            StudyOptions(out=Path(tmp), storage=storage, track=False, workers=workers),
        )
        wall = time.perf_counter() - t0
        images = sorted(p.name for p in (out / "images").glob("*.png"))
        try:
            study = optuna.load_study(study_name=name, storage=storage)
            trials = study.get_trials(deepcopy=False)
            done = n_done(study)
        finally:
            optuna.delete_study(study_name=name, storage=storage)
    finished = [
        t
        for t in trials
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    numbers = Counter(t.number for t in trials)
    stray = [i for i in images if int(i[5:8]) not in {t.number for t in finished}]
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    busy = (max(ends) - min(starts)).total_seconds() if starts and ends else float("nan")
    return {
        "workers": workers,
        "budget": budget,
        "finished": len(finished),
        "failed": sum(t.state.name == "FAIL" for t in trials),
        "lost": max(0, budget - done),
        "duplicated": sum(c - 1 for c in numbers.values()) + len(stray) + max(0, done - budget),
        "per_worker": sorted(Counter(t.user_attrs.get(WORKER, "?") for t in finished).values()),
        "trials_per_min": 60 * len(finished) / busy,
        "trials_per_min_with_startup": 60 * len(finished) / wall,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials-per-worker", type=int, default=50)
    p.add_argument("--size", type=int, default=32, help="image size in px (default 32)")
    p.add_argument("--steps", type=int, default=1, help="optimiser steps per trial (default 1)")
    p.add_argument("--storage", default=POSTGRES, help=f"Optuna RDB URL (default {POSTGRES})")
    p.add_argument("--no-baseline", action="store_true", help="skip the 1-worker baseline")
    args = p.parse_args(argv)
    warnings.simplefilter("ignore")
    os.environ["PYTHONWARNINGS"] = "ignore"  # the spawned workers too (random-weights warning)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"load test: {args.workers} workers x {args.trials_per_worker} trials, "
        f"{args.size} px, {args.steps} step(s), tracking off, storage {args.storage}, "
        f"{os.cpu_count()} CPU cores"
    )
    arms = [(args.workers, args.trials_per_worker)]
    if not args.no_baseline and args.workers > 1:
        arms = [(1, args.trials_per_worker), *arms, (1, args.trials_per_worker)]
    results = [run_load(w, n, args.size, args.steps, args.storage) for w, n in arms]
    cols = (
        "workers",
        "budget",
        "finished",
        "failed",
        "lost",
        "duplicated",
        "trials_per_min",
        "trials_per_min_with_startup",
        "wall_s",
        "per_worker",
    )
    print("  ".join(f"{c:>12}" if c != "per_worker" else c for c in cols))
    for r in results:
        print(
            "  ".join(
                f"{r[c]:>12.1f}"
                if isinstance(r[c], float)
                else (f"{r[c]!s:>12}" if c != "per_worker" else str(r[c]))
                for c in cols
            )
        )
    if len(results) == 3:
        base = (results[0]["trials_per_min"] + results[2]["trials_per_min"]) / 2
        ratio = results[1]["trials_per_min"] / base
        print(
            f"throughput {args.workers} workers / 1 worker (mean of the two baselines): "
            f"{ratio:.2f}x"
        )
    bad = sum(r["lost"] + r["duplicated"] for r in results)
    print("lost + duplicated:", bad, "(goal 0)")


if __name__ == "__main__":
    main()
