"""MLflow records of a training run, through the same run machinery as transfers.

One run per training (nst.tracking.transfer.transfer_run: config as params, provenance tags,
strict or best-effort failure policy), holding

    metrics  loss/<term> per step (content, style, tv, total of the global batch), and at the
             end final/<term>, images_per_second, seconds, peak_memory_mb, skipped_images;
             parameters/<trainable|frozen|total|lora|trainable_share> of the network
    images   images/style.png, images/validation_inputs.png (the held-out validation photos),
             images/validation.png (the final network's stylisation of them); samples: the
             validation photos stylised every sample_every steps, as image steps (the UI's
             step slider)
    tags     nst.kind=train, nst.method, nst.world_size, the loss backbone's weights
             (nst.tracking.tags.weights_tags), nst.warning for random weights; adain and
             stytr also nst.encoder.weights and nst.encoder.pretrained
    files    checkpoint/checkpoint.pt and checkpoint/model.pt at the end
    model    the final network as an MLflow 3 logged model named "model" (the experiment's
             "Logged models" tab; source run this run, the run's params and final metrics),
             a pyfunc model with a signature (nst.models.serving), so
             mlflow.pyfunc.load_model("runs:/<id>/model") stylises arrays; registered as a
             new version of `register_model` when one is named

Only rank 0 creates a run. A resumed run makes a new MLflow run (tagged nst.resumed_from).
A study's training trial (nst.study.training) is a run nested under the study's parent run
(parent_run_id), without the files and model (artifacts=False).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import torch

from nst.train.config import TrainConfig
from nst.train.loop import TrainResult

VALIDATION = "images/validation.png"  # the final network's stylisation of the validation photos
VALIDATION_INPUTS = "images/validation_inputs.png"  # ... and the photos themselves


class MlflowHooks:
    """nst.train.loop.TrainHooks that log into one TransferTracker's run. artifacts=False
    leaves out the checkpoint files and the MLflow model (a study's trial: its metrics and
    curves are the record, and its network stays in the study's folder)."""

    def __init__(self, tracker: Any, register_model: str | None = None, artifacts: bool = True):
        self.tracker = tracker
        self.register_model = register_model
        self.artifacts = artifacts
        self.model_version: str | None = None
        self.model_id: str | None = None  # the logged model's (models:/<model id>)
        self._on_step = tracker.callback()

    def on_start(self, info: dict[str, Any]) -> None:
        from nst.tracking.tags import weights_tags

        t = self.tracker
        t.set_tags(weights_tags(cast(Any, SimpleNamespace(weights=info["weights"]))))
        t.set_tags({"nst.world_size": str(info["world_size"])})
        encoder = info.get("encoder_weights")  # adain, stytr: the (frozen) encoders' weights
        if encoder is not None:
            t.set_tags(
                {
                    "nst.encoder.weights": encoder.identity,
                    "nst.encoder.pretrained": str(bool(encoder.pretrained)).lower(),
                }
            )
        if info["start_step"]:
            t.set_tags({"nst.resumed_from": str(info["start_step"])})
        counts = info.get("parameters") or {}
        t.log_metrics({f"parameters/{k}": float(v) for k, v in counts.items()}, step=0)
        t.log_image(info["style"], "images/style.png")
        val = info["val"]
        if len(val):
            t.log_image(torch.cat(list(val), dim=-1).unsqueeze(0), VALIDATION_INPUTS)

    def on_log(self, rows: list[dict[str, float]]) -> None:
        for row in rows:
            losses = {k: v for k, v in row.items() if k != "step"}
            self._on_step(cast(Any, SimpleNamespace(step=int(row["step"]), losses=losses)))
        self.tracker.flush()

    def on_sample(self, step: int, images: torch.Tensor) -> None:
        self.tracker.log_frames([images], [step], key="samples")

    def on_checkpoint(self, step: int, path: Path) -> None:
        self.tracker.log_metrics({"checkpoint_step": float(step)}, step=step)

    def on_end(self, result: TrainResult) -> None:
        t = self.tracker
        metrics = {f"final/{k}": v for k, v in result.final_losses.items() if k != "step"}
        metrics.update(
            {
                "images_per_second": result.images_per_second,
                "seconds": result.seconds,
                "peak_memory_mb": result.peak_memory_mb,
                "skipped_images": float(len(result.skipped)),
                "steps": float(result.steps),
            }
        )
        t.log_metrics(metrics, step=result.steps)
        if result.bf16:
            t.set_tags({"nst.bf16": result.bf16})
        if result.config.deterministic:  # where the bytes can still differ between runs
            t.set_tags({"nst.nondeterministic_ops": ",".join(result.nondeterministic) or "none"})
        if result.validation is not None:
            t.log_image(result.validation, VALIDATION)
        if not self.artifacts:
            return
        t.log_artifact(result.checkpoint, "checkpoint")
        t.log_artifact(result.model, "checkpoint")
        self.log_model(result.model, metrics, result.steps)

    def log_model(self, checkpoint: Path, metrics: dict[str, float], step: int) -> None:
        """The MLflow model of `checkpoint` as the run's logged model (`metrics` at `step`
        linked to it), then registered as a version of `register_model` when one is named."""
        from mlflow.exceptions import MlflowException

        from nst.models.serving import log_mlflow_model
        from nst.models.uri import quiet
        from nst.tracking.store import store_errors

        t = self.tracker
        if not t.active:
            return
        try:
            with quiet():
                model = log_mlflow_model(t.client, t.run_id, checkpoint, metrics=metrics, step=step)
            self.model_id = str(model.model_id)
        except store_errors() as err:
            t.fail("logging the model", err)
            return
        if not self.register_model:
            return
        try:
            client = t.client
            try:
                client.create_registered_model(self.register_model)
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            # the logged model's own files as the source: a models:/<model id> source would be
            # resolved through the process-wide tracking URI, not this run's store
            version = client.create_model_version(
                self.register_model,
                model.artifact_location,
                run_id=t.run_id,
                model_id=self.model_id,
            )
            self.model_version = str(version.version)
        except store_errors() as err:
            t.fail(f"registering the model {self.register_model!r}", err)


@contextlib.contextmanager
def training_run(
    config: TrainConfig,
    *,
    tracking_uri: str | None = None,
    experiment: str = "nst",
    run_name: str | None = None,
    mode: str = "strict",
    tags: dict[str, str] | None = None,
    register_model: str | None = None,
    parent_run_id: str | None = None,
    artifacts: bool = True,
    experiment_kind: str = "runs",
) -> Iterator[MlflowHooks]:
    """An MLflow run for one training (module docstring), yielding the loop's hooks; nested
    under `parent_run_id` when given (a study's trial under the study's run)."""
    from nst.tracking.transfer import transfer_run

    all_tags = {"nst.kind": "train", "nst.method": config.method, **(tags or {})}
    # transfer_run needs only to_dict(), seed and device of its config, which TrainConfig has
    with transfer_run(
        cast(Any, config),
        tracking_uri=tracking_uri,
        experiment=experiment,
        run_name=run_name,
        mode=mode,
        tags=all_tags,
        parent_run_id=parent_run_id,
        experiment_kind=experiment_kind,
    ) as tracker:
        yield MlflowHooks(tracker, register_model, artifacts)
