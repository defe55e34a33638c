"""Optuna studies: experiment spec -> search space -> objective -> storage -> workers.

A trial draws a TransferConfig from the spec's search space, stylises each of the study's
content/style pairs with it and returns the mean of each objective metric over the pairs,

    f_m(theta) = 1/P sum_p  m(content_p, style_p, stylize(theta, content_p, style_p)).

While a pair runs, the running estimate of f (the finished pairs' values and the current
image's value) is reported `reports` times per pair, so a pruner (median, successive_halving,
hyperband) can stop a trial that is already worse than its peers. Every trial is a nested MLflow run under one
parent run per study (see nst.tracking); results land in results/<study>/ (nst.study.outputs).

A training study (`method: johnson | adain | stytr`) runs the same way, on the same storages,
workers, heartbeat and retries; its trial trains a network instead (nst.study.training), is
validated on held-out photos while it trains and reports each validation to the pruner.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from nst import NstError
from nst.study.attrs import FAIL_REASON, MLFLOW, SPEC, Fault, fault_of
from nst.study.faults import fail_orphan_runs, worker_id
from nst.study.objective import Resources, StudyOptions, TransferTrials
from nst.study.pairs import Pair, choose_pairs
from nst.study.progress import StudyProgress, n_done
from nst.study.pruners import make_pruner
from nst.study.space import make_sampler
from nst.study.spec import ExperimentSpec
from nst.study.storage import make_storage, redact, requeue, storage_url
from nst.study.training import TrainData, TrainingTrials, choose_train_data, keep_best_models

#: what a study's trials run on: content x style pairs (optimisation) or a held-out split
Inputs = list[Pair] | TrainData


def requeue_if_not_its_own(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str | None:
    """A FAIL trial whose recorded Fault is the tracking store's is queued again (the trial is
    not to blame) and its reason returned: the worker stops, since every further trial would
    fail alike. None for any other trial. Decided by the FAULT attribute, not the wording."""
    failed = trial.state == optuna.trial.TrialState.FAIL
    if not failed or fault_of(trial.user_attrs) is not Fault.TRACKING_DOWN:
        return None
    reason = str(trial.user_attrs.get(FAIL_REASON, ""))
    requeue(study, trial, Fault.TRACKING_DOWN, reason, max_retry=None)
    return reason


def open_study(spec: ExperimentSpec, url: str, seed: int) -> optuna.Study:
    study = optuna.create_study(
        storage=make_storage(url),
        study_name=spec.name,
        load_if_exists=True,
        sampler=make_sampler(spec, seed),
        pruner=make_pruner(spec),
        directions=[o.direction for o in spec.objectives],
    )
    names = [o.metric for o in spec.objectives]
    if study.metric_names != names:  # optuna-dashboard's axes and columns, not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def choose_inputs(
    spec: ExperimentSpec, opts: StudyOptions, skipped: list[str] | None = None
) -> Inputs:
    """An optimisation study's pairs, or a training study's held-out split (written under
    <out>/<study>/split/); without data images, of the embedded sample in <out>/.cache/."""
    cache = Path(opts.out) / ".cache" / "embedded"
    if spec.trained:
        return choose_train_data(spec, opts.data, Path(opts.out) / spec.name, cache, skipped)
    return choose_pairs(spec, opts.data, cache, skipped)


def split_facts(pairs: list[Pair]) -> dict[str, Any] | None:
    """The split an optimisation study's pairs were drawn from (the validation part of their
    data folder, nst.data.split), for summary.json."""
    from nst.data.split import split_data

    if not pairs:
        return None
    folder = pairs[0].content.parent.parent  # <data>/content/<file>
    return {
        "part": "validation",
        "contents": sorted({p.content.name for p in pairs}),
        "styles": sorted({p.style.name for p in pairs}),
        **split_data(folder).facts(),
    }


def make_objective(
    spec: ExperimentSpec,
    inputs: Inputs,
    out: Path,
    tracking: dict[str, str] | None,
    max_memory: str | None = None,
) -> TransferTrials | TrainingTrials:
    """The trial function: optimise the pairs (TransferTrials) or train (TrainingTrials), each
    trial's config checked against `max_memory` first (StudyOptions.max_memory)."""
    trials: TransferTrials | TrainingTrials
    if isinstance(inputs, TrainData):
        trials = TrainingTrials(spec, inputs, out, Resources(), tracking)
    else:
        trials = TransferTrials(spec, inputs, out, Resources(), tracking)
    trials.max_memory = max_memory
    return trials


def run_worker(
    spec: ExperimentSpec,
    opts: StudyOptions,
    url: str,
    n_trials: int,
    seed: int,
    pairs: Inputs | None = None,
    progress: StudyProgress | None = None,
) -> None:
    """One process: join the study and run up to n_trials (fewer if others fill the budget).
    Raises TrackingError when the MLflow store stopped answering (the trial it broke is
    queued again for the next run)."""
    from nst.tracking.store import TrackingError

    study = open_study(spec, url, seed)
    out = Path(opts.out) / spec.name
    if pairs is None:
        pairs = choose_inputs(spec, opts)
    tracking = study.user_attrs.get(MLFLOW) if opts.track else None
    objective = make_objective(spec, pairs, out, tracking, opts.max_memory)
    budget = int(spec.budget["trials"])
    tracking_down: list[str] = []

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        reason = requeue_if_not_its_own(study, trial)
        if reason is not None:
            tracking_down.append(f"trial {trial.number}: {reason}")
            study.stop()
        elif n_done(study) >= budget:
            study.stop()
        if progress is not None:
            progress(study, trial)

    timeout = float(spec.budget.get("timeout_s") or 0) or None
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        catch=(Exception,),
        callbacks=[after_trial],
        gc_after_trial=False,
    )
    if tracking_down:
        raise TrackingError(
            f"{tracking_down[0]}; the trial is queued again, nothing is lost: "
            "restart the tracking server and re-run to resume"
        )


def _worker_entry(
    spec: ExperimentSpec,
    opts: StudyOptions,
    url: str,
    n: int,
    seed: int,
    threads: int,
    pairs: Inputs,
) -> None:
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
    from nst.study.parent import ensure_parent_run, update_parent_run
    from nst.tracking.store import project_root

    url = storage_url(opts.storage, project_root())
    out = Path(opts.out) / spec.name
    (out / "images").mkdir(parents=True, exist_ok=True)
    started = time.time()
    skipped: list[str] = []
    pairs = choose_inputs(spec, opts, skipped)
    study = open_study(spec, url, opts.seed)
    study.set_user_attr(SPEC, spec.to_dict())
    if opts.track:
        ensure_parent_run(study, spec, opts)
    remaining = int(spec.budget["trials"]) - n_done(study)
    progress = StudyProgress(spec, study, disable=None if opts.progress else True)
    try:
        if remaining > 0 and opts.workers <= 1:
            run_worker(spec, opts, url, remaining, opts.seed, pairs, progress)
        elif remaining > 0:
            _spawn(spec, opts, url, remaining, pairs, lambda: progress.refresh(study))
    finally:  # what was done is written even when a worker or the tracking store failed
        progress.close()
        study = open_study(spec, url, opts.seed)
        if isinstance(pairs, TrainData):
            keep_best_models(study, spec, out)
        write_outputs(
            study,
            spec,
            out,
            storage=redact(url),
            data=opts.data,
            started=started,
            skipped_images=skipped,
            backbone=opts.backbone,
            split=pairs.facts if isinstance(pairs, TrainData) else split_facts(pairs),
        )
    if opts.track and study.user_attrs.get(MLFLOW):
        from nst.tracking.runs import end_run

        fail_orphan_runs(study)
        update_parent_run(study, spec, opts)
        end_run(
            study.user_attrs[MLFLOW]["parent_run_id"], tracking_uri=study.user_attrs[MLFLOW]["uri"]
        )
    return out


def _spawn(
    spec: ExperimentSpec,
    opts: StudyOptions,
    url: str,
    remaining: int,
    pairs: Inputs,
    poll: Callable[[], None] = lambda: None,
) -> None:
    """Run `remaining` trials on worker processes, calling `poll` every few seconds until
    they are done (the progress bar reads the storage: the workers' callbacks are theirs)."""
    if url.startswith("sqlite:///:memory:"):
        raise NstError(
            "an in-memory storage cannot be shared by workers; use sqlite, journal: or PostgreSQL"
        )
    k = min(opts.workers, remaining)
    threads = max(1, (os.cpu_count() or 1) // k)
    ctx = multiprocessing.get_context("spawn")
    shares = [remaining // k + (i < remaining % k) for i in range(k)]
    procs = [
        ctx.Process(target=_worker_entry, args=(spec, opts, url, n, opts.seed + i, threads, pairs))
        for i, n in enumerate(shares)
    ]
    for p in procs:
        p.start()
    for p in procs:
        while p.is_alive():
            p.join(timeout=2.0)
            poll()
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        raise NstError(
            f"{len(failed)} of {k} workers failed (exit codes {failed}; 3: see its message "
            "above, negative: killed by that signal); re-run to resume"
        )
