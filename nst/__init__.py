"""nst: a reproducible experiment-tracking harness for neural style transfer research."""

import os as _os

# Nothing in this package may phone home: set before mlflow/dvc/optuna are imported anywhere.
for _key, _value in (
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DVC_NO_ANALYTICS", "1"),
    ("DO_NOT_TRACK", "1"),
):
    _os.environ.setdefault(_key, _value)

__version__ = "0.1.0"


class NstError(Exception):
    """An error caused by the user's input; the CLI prints it as one line, without a traceback."""
