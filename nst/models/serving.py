"""A trained network as an MLflow model, and model URIs (runs:/..., models:/...) to checkpoints.

The MLflow model is a pyfunc `PythonModel` wrapper (StylizerModel) around the weights-only
checkpoint (nst.models.io), kept as the model's artifact `checkpoint` (artifacts/model.pt),
saved as a "model from code" (nst/models/mlflow_model.py): nothing in it is pickled.
A training run logs it as an MLflow 3 logged model (log_mlflow_model: the experiment's
"Logged models" tab, linked to its source run, with the run's params and final metrics).
A wrapper rather than `mlflow.pytorch.log_model`, because that flavour pickles the whole
nn.Module (loading it runs pickled code) and feeds predict's input to forward as is, so it
cannot take the NxHxWx3 arrays image libraries produce. Here, in any Python process where
nst is importable:

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")   # or models:/NAME/VERSION,
                                                                # or models:/<logged model id>
    y = model.predict(x)   # x: float32 N x H x W x 3 or N x 3 x H x W in [0, 1]

returns the stylised batch in x's layout and shape. The layout is read from the shape: last
axis 3 -> NHWC, else axis 1 of 3 -> NCHW (an image 3 px wide with 3 rows reads as NHWC).
`model_config={"device": "cuda"}` runs it on a GPU (default: the CPU).

Arbitrary-style networks (adain, stytr: two image inputs) take a dict of two arrays,

    y = model.predict({"content": c, "style": s})   # each NxHxWx3 or Nx3xHxW in [0, 1]

(the style batch may have another size than the content; one style image is broadcast over a
content batch), and return the stylised content in the content's layout. Their signature is
two named float32 tensor specs, "content" and "style", of shape (-1, -1, -1, -1).

The signature is a float32 tensor of shape (-1, -1, -1, -1) in and out: any batch, size and
either layout. Requirements are pinned to this environment's torch, numpy and mlflow (given
explicitly: MLflow's inference of them loads the model in a subprocess, seconds per save).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mlflow.pyfunc import PythonModel

from nst import NstError
from nst.models.uri import quiet

CHECKPOINT_ARTIFACT = "checkpoint"
#: a training run's logged model's name: runs:/<run id>/model is the model named so whose
#: source run is that run (MLflow 3 resolves runs:/<id>/<name> to such a logged model)
MODEL_NAME = "model"


def to_nchw(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the batch as N x 3 x H x W, whether it came as NHWC)."""
    if x.ndim != 4:
        raise NstError(f"expected a 4-d image batch (NxHxWx3 or Nx3xHxW), got shape {x.shape}")
    if x.shape[-1] == 3:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), True
    if x.shape[1] == 3:
        return x, False
    raise NstError(f"expected an RGB batch NxHxWx3 or Nx3xHxW, got shape {x.shape}")


class StylizerModel(PythonModel):
    """The pyfunc model of a trained network (module docstring)."""

    # predict has no type hints on purpose: MLflow would read them as a schema of its own
    # over signature(); this attribute stops MLflow's advice to add some, given at class
    # creation under its own warning filter
    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        import torch

        from nst.models.io import load_model

        config = getattr(context, "model_config", None) or {}
        self.device = torch.device(str(config.get("device", "cpu")))
        self.model, self.meta = load_model(context.artifacts[CHECKPOINT_ARTIFACT], self.device)

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import torch

        from nst.models.registry import model_inputs

        names = model_inputs(self.model)
        if len(names) > 1 or isinstance(model_input, dict):
            if not isinstance(model_input, dict) or set(names) - set(model_input):
                raise NstError(
                    f"this {self.meta.get('method')} model takes a dict of arrays with the "
                    f"keys {', '.join(names)}; got {type(model_input).__name__}"
                )
            arrays = [np.asarray(model_input[n], dtype=np.float32) for n in names]
        else:
            arrays = [np.asarray(model_input, dtype=np.float32)]
        batches = [to_nchw(a) for a in arrays]
        tensors = [torch.from_numpy(b).to(self.device) for b, _ in batches]
        if len(tensors) > 1 and tensors[1].shape[0] == 1 < tensors[0].shape[0]:
            tensors[1] = tensors[1].expand(tensors[0].shape[0], -1, -1, -1)
        with torch.no_grad():
            y = self.model(*tensors).float().cpu().numpy()
        return np.ascontiguousarray(y.transpose(0, 2, 3, 1)) if batches[0][1] else y


def signature(inputs: tuple[str, ...] = ("content",)) -> Any:
    """One unnamed image tensor in and out; for two inputs (adain, stytr) named ones."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    shape, dtype = (-1, -1, -1, -1), np.dtype(np.float32)
    spec = TensorSpec(dtype, shape)
    if len(inputs) == 1:
        return ModelSignature(inputs=Schema([spec]), outputs=Schema([spec]))
    named: list[ColSpec | TensorSpec] = [TensorSpec(dtype, shape, name=n) for n in inputs]
    return ModelSignature(inputs=Schema(named), outputs=Schema([spec]))


def requirements() -> list[str]:
    import mlflow
    import torch

    return [
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
    ]


def save_mlflow_model(checkpoint: str | Path, path: str | Path, mlflow_model: Any = None) -> Path:
    """Write the MLflow model of `checkpoint` (a model.pt) into the new folder `path`;
    `mlflow_model` (an mlflow.models.Model) carries the logged model's and run's ids."""
    import mlflow.pyfunc

    from nst.models.io import read_checkpoint
    from nst.models.registry import get_method

    method = str(read_checkpoint(checkpoint).get("meta", {}).get("method"))
    inputs = get_method(method).inputs
    path = Path(path)
    code = Path(__file__).with_name("mlflow_model.py")  # a model from code: no pickle
    with quiet():
        # no input_example: MLflow would load and run the model to check it (~4 s per save)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(code),
            artifacts={CHECKPOINT_ARTIFACT: str(checkpoint)},
            signature=signature(inputs),
            pip_requirements=requirements(),
            mlflow_model=mlflow_model,
        )
    return path


def source_tags(run_tags: dict[str, str]) -> dict[str, str]:
    """The run's mlflow.source.* tags (program, type, git commit): the UI's "Logged from"
    column of a logged model is rendered from the model's own copies of them."""
    return {k: v for k, v in run_tags.items() if k.startswith("mlflow.source.")}


def log_mlflow_model(
    client: Any,
    run_id: str,
    checkpoint: str | Path,
    *,
    name: str = MODEL_NAME,
    metrics: dict[str, float] | None = None,
    step: int = 0,
) -> Any:
    """Log the MLflow model of `checkpoint` as an MLflow 3 logged model of run `run_id`'s
    experiment and return it (an mlflow.entities.LoggedModel): named `name` (runs:/<run id>/<name> resolves to it),
    source_run_id the run, the run's params as its params, `metrics` logged to the run at
    `step` linked to it, and recorded as the run's output (the run page lists it). What
    mlflow.pyfunc.log_model does, through an explicit client: its fluent form would use the
    process-wide tracking URI. The model is READY once its files are in, FAILED otherwise."""
    import tempfile
    import time

    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model

    from nst.models.io import read_checkpoint
    from nst.tracking.store import log_batch

    run = client.get_run(run_id)
    meta = read_checkpoint(checkpoint).get("meta", {})
    model = client.create_logged_model(
        run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        params=dict(run.data.params),
        tags={"nst.method": str(meta.get("method", "")), **source_tags(run.data.tags)},
        model_type="nst-stylizer",
    )
    try:
        with tempfile.TemporaryDirectory(prefix="nst-mlflow-model-") as tmp:
            ids = Model(
                artifact_path=model.artifact_location,
                run_id=run_id,
                model_uuid=model.model_id,
                model_id=model.model_id,
            )
            folder = save_mlflow_model(checkpoint, Path(tmp) / name, ids)
            client.log_model_artifacts(model.model_id, str(folder))
        client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=step)])
        ts = int(time.time() * 1000)
        log_batch(
            client,
            run_id,
            metrics=[
                Metric(k, float(v), ts, step, model_id=model.model_id)
                for k, v in (metrics or {}).items()
            ],
        )
    except BaseException:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    return client.finalize_logged_model(model.model_id, "READY")
