"""Optuna studies: experiment spec -> search space -> objective -> storage -> workers.

A trial draws a TransferConfig from the spec's search space, stylises each of the study's
content/style pairs with it and returns the mean of each objective metric over the pairs,

    f_m(theta) = 1/P sum_p  m(content_p, style_p, stylize(theta, content_p, style_p)).

While a pair runs, the running estimate of f (the finished pairs' values and the current
image's value) is reported `reports` times per pair, so a pruner (median, successive_halving,
hyperband) can stop a trial that is already worse than its peers. Every trial is a nested MLflow run under one
parent run per study (see nst.tracking); results land in results/<study>/ (nst.study.outputs).

Faults stay inside their trial. Any exception in a trial (a NaN/inf loss, out of memory, a full
disk, a bug) marks that trial FAIL with `fail_reason` in its user attributes and an
nst.fail_reason tag on its FAILED MLflow run, and the study goes on. Two faults are not the
trial's own and are retried instead of counted: a worker that dies mid-trial (found by the
storage heartbeat, see nst.study.storage) and an MLflow store that stops answering mid-trial
(the trial fails with "tracking unavailable", is queued again, and the worker stops with a
clear error, since every further trial would fail the same way; re-run to resume). Unreadable
images in the data are skipped with a warning and listed in summary.json ("skipped_images").
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import warnings
from pathlib import Path

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

from nst import NstError
from nst.study.faults import (
    TRACKING_DOWN,
    fail_orphan_runs,
    worker_id,
)
from nst.study.objective import Pair, Resources, StudyObjective, StudyOptions, choose_pairs
from nst.study.pruners import make_pruner
from nst.study.space import make_sampler
from nst.study.spec import ExperimentSpec
from nst.study.storage import make_storage, redact, requeue, storage_url

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def n_done(study: optuna.Study) -> int:
    """Trials that count against the budget: complete, pruned, and failed ones not retried."""
    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {Retry.retried_trial_number(t) for t in trials}
    fail = optuna.trial.TrialState.FAIL
    return sum(t.state in DONE or (t.state == fail and t.number not in retried) for t in trials)


def open_study(spec: ExperimentSpec, url: str, seed: int) -> optuna.Study:
    return optuna.create_study(
        storage=make_storage(url), study_name=spec.name, load_if_exists=True,
        sampler=make_sampler(spec, seed), pruner=make_pruner(spec),
        directions=[o.direction for o in spec.objectives],
    )  # fmt: skip


def run_worker(
    spec: ExperimentSpec,
    opts: StudyOptions,
    url: str,
    n_trials: int,
    seed: int,
    pairs: list[Pair] | None = None,
) -> None:
    """One process: join the study and run up to n_trials (fewer if others fill the budget).
    Raises TrackingError when the MLflow store stopped answering (the trial it broke is
    queued again for the next run)."""
    from nst.tracking.store import TrackingError

    study = open_study(spec, url, seed)
    out = Path(opts.out) / spec.name
    if pairs is None:
        pairs = choose_pairs(spec, opts.data, Path(opts.out) / ".cache" / "embedded")
    tracking = study.user_attrs.get("mlflow") if opts.track else None
    objective = StudyObjective(spec, pairs, out, Resources(), tracking)
    budget = int(spec.budget["trials"])
    tracking_down: list[str] = []

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        reason = str(trial.user_attrs.get("fail_reason", ""))
        if trial.state == optuna.trial.TrialState.FAIL and reason.startswith(TRACKING_DOWN):
            # not the trial's fault: run it again later, and stop (the next would fail alike)
            requeue(study, trial, reason, max_retry=None)
            tracking_down.append(f"trial {trial.number}: {reason}")
            study.stop()
        elif n_done(study) >= budget:
            study.stop()

    timeout = float(spec.budget.get("timeout_s") or 0) or None
    study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(Exception,),
                   callbacks=[after_trial], gc_after_trial=False)  # fmt: skip
    if tracking_down:
        raise TrackingError(f"{tracking_down[0]}; the trial is queued again, nothing is lost: "
                            "restart the tracking server and re-run to resume")  # fmt: skip


def _worker_entry(spec: ExperimentSpec, opts: StudyOptions, url: str, n: int, seed: int,
                  threads: int, pairs: list[Pair]) -> None:  # fmt: skip
    torch.set_num_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        run_worker(spec, opts, url, n, seed, pairs)
    except NstError as err:  # one line, as the CLI would print it, and a distinct exit code
        print(f"nst study worker {worker_id()}: {err}", file=sys.stderr, flush=True)
        sys.exit(3)


def run_study(spec: ExperimentSpec, opts: StudyOptions) -> Path:
    """Create or resume the study, run the remaining budget on `opts.workers` processes, write
    results/<study>/ and return that directory."""
    from nst.study.outputs import write_outputs
    from nst.tracking.store import project_root

    url = storage_url(opts.storage, project_root())
    out = Path(opts.out) / spec.name
    (out / "images").mkdir(parents=True, exist_ok=True)
    started = time.time()
    skipped: list[str] = []
    pairs = choose_pairs(spec, opts.data, Path(opts.out) / ".cache" / "embedded", skipped)
    study = open_study(spec, url, opts.seed)
    study.set_user_attr("spec", spec.to_dict())
    if opts.track:
        _ensure_parent_run(study, spec, opts)
    remaining = int(spec.budget["trials"]) - n_done(study)
    try:
        if remaining > 0 and opts.workers <= 1:
            run_worker(spec, opts, url, remaining, opts.seed, pairs)
        elif remaining > 0:
            _spawn(spec, opts, url, remaining, pairs)
    finally:  # what was done is written even when a worker or the tracking store failed
        study = open_study(spec, url, opts.seed)
        write_outputs(study, spec, out, storage=redact(url), data=opts.data, started=started,
                      skipped_images=skipped)  # fmt: skip
    if opts.track and study.user_attrs.get("mlflow"):
        from nst.tracking.runs import end_run

        fail_orphan_runs(study)
        end_run(
            study.user_attrs["mlflow"]["parent_run_id"],
            tracking_uri=study.user_attrs["mlflow"]["uri"],
        )
    return out


def _spawn(
    spec: ExperimentSpec, opts: StudyOptions, url: str, remaining: int, pairs: list[Pair]
) -> None:
    if url.startswith("sqlite:///:memory:"):
        raise NstError(
            "an in-memory storage cannot be shared by workers; use sqlite, journal: or PostgreSQL"
        )
    k = min(opts.workers, remaining)
    threads = max(1, (os.cpu_count() or 1) // k)
    ctx = multiprocessing.get_context("spawn")
    shares = [remaining // k + (i < remaining % k) for i in range(k)]
    procs = [ctx.Process(target=_worker_entry,
                         args=(spec, opts, url, n, opts.seed + i, threads, pairs))
             for i, n in enumerate(shares)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise NstError(
            f"{len(failed)} of {k} workers failed (exit codes {failed}; 3: see its message "
            "above, negative: killed by that signal); re-run to resume"
        )


def _ensure_parent_run(study: optuna.Study, spec: ExperimentSpec, opts: StudyOptions) -> None:
    from nst.tracking.runs import start_parent_run
    from nst.tracking.store import check_tracking, resolve_tracking_uri

    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking(uri)  # a dead server fails the command now, not every trial later
    known = study.user_attrs.get("mlflow")
    if known and known.get("uri") == uri:
        return  # resuming: trials join the existing parent run
    experiment = f"study-{spec.name}"
    parent = start_parent_run(spec.name, tracking_uri=uri, experiment=experiment,
                              tags={"nst.study": spec.name, "nst.profile": str(spec.profile)})  # fmt: skip
    study.set_user_attr("mlflow", {"uri": uri, "experiment": experiment, "parent_run_id": parent})
