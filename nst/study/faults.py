"""Faults in a study: name them, keep them inside their trial, and leave a record.

At scale something always breaks: a trial diverges (NaN), a GPU runs out of memory, a disk
fills, a worker is killed, the tracking server goes away, a downloaded image is truncated.
nst.study turns each into a FAIL trial with a one-line `fail_reason`, a retry (for faults that
are not the trial's own), or a skipped input, using the helpers here:

    classify(err)         the Fault (nst.study.attrs): what decides a retry
    failure_reason(err)   "non-finite loss: ..." | "out of memory: ..." | "disk full: ..." |
                          "tracking unavailable: ..." | "error: <Type>: ..."
    record_fault(trial, err)   both in the trial's user attributes (every kind of trial)
    readable(paths, skipped)   the images that decode; the others warned about and listed
    fail_orphan_runs(study)    MLflow runs of FAIL trials left RUNNING -> FAILED + reason
"""

from __future__ import annotations

import errno
import gc
import os
import platform
import warnings
from pathlib import Path

import optuna
import torch

from nst.imagefiles import ImageError, open_rgb
from nst.study.attrs import (
    FAIL_REASON,
    FAULT,
    MLFLOW,
    MLFLOW_RUN_ID,
    RETRY_OF,
    RETRY_REASON,
    Fault,
)


class UnreadableImageWarning(UserWarning):
    """An image in the data directory cannot be decoded; the study skips it."""


def worker_id() -> str:
    """host:pid, recorded on every trial (which worker ran it, and which one died)."""
    return f"{platform.node()}:{os.getpid()}"


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, MemoryError | torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def classify(err: BaseException) -> Fault:
    """The kind of fault an exception is, by its type (never by its message's wording)."""
    from nst.runtime import NonFiniteLoss
    from nst.tracking.store import TrackingError

    if isinstance(err, NonFiniteLoss):
        return Fault.NON_FINITE
    if is_out_of_memory(err):
        return Fault.OUT_OF_MEMORY
    if isinstance(err, TrackingError):
        return Fault.TRACKING_DOWN
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return Fault.DISK_FULL
    return Fault.ERROR


def failure_reason(err: BaseException, fault: Fault | None = None) -> str:
    """One line saying why a trial failed: the kind of fault, then the error itself (the
    message alone where the kind already says what the error is)."""
    fault = fault or classify(err)
    text = (str(err).strip().splitlines() or [""])[0][:300]
    detail = f"{type(err).__name__}: {text}" if text else type(err).__name__
    plain = fault in (Fault.NON_FINITE, Fault.TRACKING_DOWN)
    return f"{fault.value}: {text if plain else detail}"


def record_fault(trial: optuna.Trial, err: BaseException) -> None:
    """A failing trial's FAULT and FAIL_REASON user attributes (what decides a retry, and the
    one line the summary shows); after running out of memory, the memory is given back."""
    fault = classify(err)
    trial.set_user_attr(FAULT, fault.value)
    trial.set_user_attr(FAIL_REASON, failure_reason(err, fault))
    if is_out_of_memory(err):  # give the next trial the memory back
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def readable(paths: list[Path], skipped: list[str]) -> list[Path]:
    """The paths whose images decode; each one that does not is warned about and appended
    to `skipped` (a truncated download, a zero-byte file, a non-image with an image name)."""
    ok = []
    for path in paths:
        try:
            open_rgb(path)
        except ImageError as err:
            warnings.warn(f"skipping unreadable image: {err}", UnreadableImageWarning, stacklevel=2)
            skipped.append(str(path))
        else:
            ok.append(path)
    return ok


def readable_data(folder: Path, skipped: list[str]) -> set[Path]:
    """Every image of a data folder that decodes, whatever its part of the split: a broken file
    is reported once, wherever it lies (readable, into `skipped`)."""
    from nst.data.lock import list_images

    contents, styles = list_images(folder)
    return set(readable([*contents, *styles], skipped))


def fail_orphan_runs(study: optuna.Study) -> None:
    """MLflow runs of FAIL trials still marked RUNNING (the tracking store broke mid-trial, or
    the worker died): FAILED now, with the trial's reason, so MLflow agrees with Optuna."""
    from nst.tracking.runs import fail_run

    uri = study.user_attrs[MLFLOW]["uri"]
    retried = {
        t.user_attrs.get(RETRY_OF): t.user_attrs.get(RETRY_REASON)
        for t in study.get_trials(deepcopy=False)
    }
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,)):
        run_id = t.user_attrs.get(MLFLOW_RUN_ID)
        reason = t.user_attrs.get(FAIL_REASON) or retried.get(t.number) or "trial failed"
        if run_id:
            fail_run(str(run_id), str(reason), tracking_uri=uri)
