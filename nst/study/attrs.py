"""What a study keeps in Optuna's user attributes: the keys, once, and the kinds of fault.

Optuna stores these beside each trial (and the study); results/<study>/ (nst.study.outputs)
copies several of them under the same names into trials.csv and summary.json, which the
report (nst.report) reads. This module imports nothing, so every reader can use it.

    trial   WORKER, CONFIG, MLFLOW_RUN_ID, PAIRS, IMAGES, METRICS, WEIGHTS_IDENTITY,
            WEIGHTS_PRETRAINED, JUDGE; training trials MODEL, ENCODER_WEIGHTS and
            ENCODER_PRETRAINED (adain, stytr); a failed trial FAIL_REASON (one line) and FAULT (a Fault);
            a retry RETRY_OF (the trial it repeats) and RETRY_REASON
    study   SPEC (the experiment spec), MLFLOW ({"uri", "experiment", "parent_run_id"})
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

WORKER = "worker"  # host:pid of the process that ran the trial
CONFIG = "config"  # the TransferConfig it drew, as a dict
MLFLOW_RUN_ID = "mlflow_run_id"
PAIRS = "pairs"  # [{"content", "style", "result", "values"}] per pair, paths as written
IMAGES = "images"  # the result images, relative to results/<study>/
METRICS = "metrics"  # {metric: mean over the pairs}
WEIGHTS_IDENTITY = "weights_identity"
WEIGHTS_PRETRAINED = "weights_pretrained"
JUDGE = "judge"  # the held-out network that scored it (nst.metrics Evaluator.held_out)
ENCODER_WEIGHTS = "encoder_weights"  # adain, stytr: the encoders' weights identity
ENCODER_PRETRAINED = "encoder_pretrained"
MODEL = "model"  # a training trial's network, relative to results/<study>/ (complete trials)
FAIL_REASON = "fail_reason"  # "<fault>: <the error, one line>"
FAULT = "fault"  # the Fault's value
RETRY_OF = "retry_of"
RETRY_REASON = "retry_reason"

SPEC = "spec"
MLFLOW = "mlflow"

#: a retry is a fresh trial: it does not inherit what its original recorded while running
NOT_INHERITED = (FAIL_REASON, FAULT, MLFLOW_RUN_ID, WORKER, IMAGES, PAIRS, METRICS, JUDGE, MODEL)


class Fault(Enum):
    """Why a trial failed. The value opens its FAIL_REASON line ("<value>: ...")."""

    NON_FINITE = "non-finite loss"
    OUT_OF_MEMORY = "out of memory"
    DISK_FULL = "disk full"
    TRACKING_DOWN = "tracking unavailable"
    WORKER_LOST = "worker lost"
    ERROR = "error"

    @property
    def retryable(self) -> bool:
        """A fault that is not the trial's own (its worker died, the store went away): the
        trial is run again instead of being counted."""
        return self in (Fault.TRACKING_DOWN, Fault.WORKER_LOST)


def fault_of(attrs: Mapping[str, Any]) -> Fault | None:
    """The Fault recorded in a trial's user attributes; None when there is none (a trial that
    did not fail, or one from before faults were recorded)."""
    try:
        return Fault(attrs.get(FAULT))
    except ValueError:
        return None
