"""How far a study is: the trials that count against its budget, and the terminal's bar.

`nst study` shows one tqdm bar over the trial budget,

    study init:  38%|████      | 3/8 [00:41<01:09, 13.8s/trial, complete=2 pruned=1 failed=0 best ssim=0.512 style_gram_dist=0.0123]

updated after every trial (one worker: an Optuna callback) or every few seconds (several
worker processes: read from the storage). A resumed study starts the bar at what is done.
"""

from __future__ import annotations

import sys
import warnings
from typing import IO

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry
from tqdm import tqdm

from nst.study.outputs import best_values
from nst.study.spec import ExperimentSpec

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def n_done(study: optuna.Study) -> int:
    """Trials that count against the budget: complete, pruned, and failed ones not retried."""
    trials = study.get_trials(deepcopy=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retried = {Retry.retried_trial_number(t) for t in trials}
    fail = optuna.trial.TrialState.FAIL
    return sum(t.state in DONE or (t.state == fail and t.number not in retried) for t in trials)


class StudyProgress:
    """A progress bar over a study's trial budget; call it as an Optuna callback
    (study, trial) or `refresh(study)` directly. disable=None: shown only on a terminal."""

    def __init__(
        self,
        spec: ExperimentSpec,
        study: optuna.Study,
        *,
        disable: bool | None = None,
        file: IO[str] | None = None,
    ):
        self.spec = spec
        self.postfix = ""
        self.bar = tqdm(
            total=int(spec.budget["trials"]),
            initial=min(n_done(study), int(spec.budget["trials"])),
            desc=f"study {spec.name}",
            unit="trial",
            disable=disable,
            file=file or sys.stderr,
            dynamic_ncols=True,
        )
        self.refresh(study)

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.refresh(study)

    def refresh(self, study: optuna.Study) -> None:
        trials = study.get_trials(deepcopy=False)
        s = optuna.trial.TrialState
        counts = {
            k: sum(t.state == v for t in trials)
            for k, v in (("complete", s.COMPLETE), ("pruned", s.PRUNED), ("failed", s.FAIL))
        }
        best = best_values(study, self.spec)
        self.postfix = " ".join(f"{k}={v}" for k, v in counts.items()) + (
            " best " + " ".join(f"{k}={v:.4g}" for k, v in best.items()) if best else ""
        )
        done = min(n_done(study), self.bar.total)
        if done > self.bar.n:  # update(), not n = ...: the rate behind the ETA counts from it
            self.bar.update(done - self.bar.n)
        self.bar.set_postfix_str(self.postfix)

    def close(self) -> None:
        self.bar.close()
