"""One trial of a training study: train the suggested network, judge it on held-out photos while
it trains, and let the pruner stop it early.

The data (TrainData) is the split of `--data` (nst.data.split, the methods comparison's):
the trials train on its train photos (results/<study>/split/train/) and are validated on the
first `pairs.content` photos of its validation part; johnson trains on the first validation
style, adain and stytr on the train styles (split/styles/) and are validated on the first
`pairs.styles` validation styles. No test photo or style is seen: the methods comparison
reports those. Without --data, the embedded sample is split.

A trial trains its TrainConfig into results/<study>/trials/<number>/ (nst.train.train). At
`reports` steps spread evenly over the run (objective.report_marks), the training loop hands
the network over (nst.train.validate, eval mode, no_grad): the validation photos (centre
crops of `size`, like the training crops; adain and stytr each with its style, cropped alike)
are stylised, the training loss is computed on them (the validation loss: `val/loss/<term>`
in MLflow) and each objective is estimated: a loss term is itself, a metric of nst.metrics
is computed as in optimisation studies (objective.proxy: exact for SSIM, colour and the
held-out network's distances). One objective: the mean over the validation pairs is reported
as trial.report(value, j) for the j-th validation (the pruners' resources run from 1 to
reports), and optuna.TrialPruned is raised when trial.should_prune(). The last validation, at
the final step, evaluates every metric (nst.metrics.Evaluator, the judge that excludes the loss
network and the encoder) unless all objectives are loss terms; its means are the trial's values.

What a trial leaves: curves/trialNNN.csv (the training loss per logged step, pair 0),
images/trialNNN_pairK.png (the final stylised validation pairs), trials/<number>/losses.jsonl
and model.pt (the checkpoint is deleted when the trial ends; keep_best_models deletes the
networks of all but the best trials when the study ends). Tracked: an MLflow run per trial
(nst.train.tracking.training_run) nested under the study's parent run, tags nst.study,
nst.trial, nst.worker, with the loss curves, val/<metric> per validation, objective/<m> and
mean/<m>; no checkpoint files or MLflow model (they stay in the trial's folder).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

import optuna
import torch

from nst import NstError
from nst.data.split import select
from nst.images import resize_tensor, save_image
from nst.models.registry import get_method
from nst.study import attrs
from nst.study.backbone import judge_tags
from nst.study.faults import failure_reason, readable_data, worker_id
from nst.study.objective import (
    CURVE_TERMS,
    Resources,
    TrialFunction,
    finite_values,
    proxy,
    report_marks,
)
from nst.study.pairs import Pair
from nst.study.space import suggest
from nst.study.spec import ExperimentSpec
from nst.train.config import TrainConfig
from nst.train.validate import Validation

CHUNK = 16  # validation pairs per forward pass


@dataclass(frozen=True)
class TrainData:
    """What the trials of a training study train on and are validated on (module docstring)."""

    train: Path  # folder of the training photos
    style: Path  # johnson: the style image; adain, stytr: the folder of training styles
    pairs: list[Pair]  # validation: held-out photo x held-out style
    facts: dict[str, Any] = field(default_factory=dict)  # the split, as nst.methods reports it

    def fields(self, method: str) -> dict[str, str]:
        """The TrainConfig fields the study sets."""
        where = "styles" if get_method(method).takes_style else "style"
        return {"data": str(self.train), where: str(self.style)}


def choose_train_data(
    spec: ExperimentSpec,
    data: Path | None,
    root: Path,
    cache: Path,
    skipped: list[str] | None = None,
) -> TrainData:
    """The split of `data` (or of the embedded sample, written to `cache`): its validation
    pairs, its folders under root/split/; unreadable validation images are skipped into
    `skipped`."""
    from nst.data.fetch import embedded_sample
    from nst.data.lock import list_images

    skipped = [] if skipped is None else skipped
    folder = Path(data) if data and Path(data).is_dir() else None
    if folder is None or not list_images(folder)[0]:
        embedded_sample(cache)
        folder = cache
    per_style = not get_method(spec.method).takes_style  # trained on one style image
    styles = 1 if per_style else int(spec.pairs["styles"])
    split = select(
        folder, "validation", int(spec.pairs["content"]), styles, root, f"study {spec.name} (pairs)"
    )
    good = readable_data(folder, skipped)
    contents = [p for p in split.contents if p in good]
    evals = [p for p in split.styles if p in good]
    if not contents or not evals:
        raise NstError(
            f"{folder}: no readable held-out photo or style left after skipping "
            f"{len(skipped)} unreadable ones; run `nst fetch` again"
        )
    if per_style:
        return TrainData(split.train, evals[0], [Pair(c, evals[0]) for c in contents], split.facts)
    pairs = [Pair(c, s) for c in contents for s in evals]
    return TrainData(split.train, split.train_styles, pairs, split.facts)


def centre_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The short side resized to `size`, then the central size x size square (the training
    crops' scale, nst.train.data)."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    hw = (max(size, round(h * scale)), max(size, round(w * scale)))
    image = resize_tensor(image, hw)
    y, x = (hw[0] - size) // 2, (hw[1] - size) // 2
    return image[..., y : y + size, x : x + size]


class Recorder:
    """The loop's hooks in a trial: the curve rows and the loss network's identity, passed on
    to the MLflow hooks of a tracked trial."""

    def __init__(self, trial: optuna.Trial, mlflow: Any = None):
        self.trial, self.mlflow = trial, mlflow
        self.rows: list[list[Any]] = []
        self.t0 = time.perf_counter()

    def on_start(self, info: dict[str, Any]) -> None:
        self.t0 = time.perf_counter()
        self.trial.set_user_attr(attrs.WEIGHTS_IDENTITY, info["weights"].identity)
        self.trial.set_user_attr(attrs.WEIGHTS_PRETRAINED, bool(info["weights"].pretrained))
        encoder = info.get("encoder_weights")
        if encoder is not None:
            self.trial.set_user_attr(attrs.ENCODER_WEIGHTS, encoder.identity)
            self.trial.set_user_attr(attrs.ENCODER_PRETRAINED, bool(encoder.pretrained))
        if self.mlflow:
            self.mlflow.on_start(info)

    def on_log(self, rows: list[dict[str, float]]) -> None:
        seconds = round(time.perf_counter() - self.t0, 4)
        for r in rows:
            self.rows.append(
                [
                    self.trial.number,
                    0,
                    int(r["step"]),
                    seconds,
                    *(r.get(t, "") for t in CURVE_TERMS),
                ]
            )
        if self.mlflow:
            self.mlflow.on_log(rows)

    def on_sample(self, step: int, images: torch.Tensor) -> None:
        if self.mlflow:
            self.mlflow.on_sample(step, images)

    def on_checkpoint(self, step: int, path: Path) -> None:
        if self.mlflow:
            self.mlflow.on_checkpoint(step, path)

    def on_end(self, result: Any) -> None:
        if self.mlflow:
            self.mlflow.on_end(result)


class TrainingTrials(TrialFunction):
    """trial -> objective values of the trained network on the validation pairs."""

    def __init__(
        self,
        spec: ExperimentSpec,
        data: TrainData,
        out: Path,
        resources: Resources,
        tracking: dict[str, str] | None = None,
    ):
        self.spec, self.data, self.out, self.res = spec, data, out, resources
        self.tracking = tracking  # {"uri", "experiment", "parent_run_id"} or None
        self.terms = spec.fields.loss_terms()
        self.crops: dict[tuple[str, int], torch.Tensor] = {}

    def draw(self, trial: optuna.Trial) -> TrainConfig:
        config = suggest(trial, self.spec, base=self.data.fields(self.spec.method))
        assert isinstance(config, TrainConfig)
        return config

    def _tracked(self, trial: optuna.Trial, config: TrainConfig) -> float | list[float]:
        """The trial inside its MLflow run, strict like an optimisation trial's."""
        from nst.train.tracking import training_run

        t = self.tracking
        assert t is not None
        with training_run(
            config,
            tracking_uri=t["uri"],
            experiment=t["experiment"],
            run_name=f"{self.spec.name}-trial{trial.number:03d}",
            parent_run_id=t["parent_run_id"],
            mode="strict",
            artifacts=False,
            tags={
                "nst.study": self.spec.name,
                "nst.trial": str(trial.number),
                "nst.worker": worker_id(),
            },
        ) as hooks:
            hooks.tracker.check()  # the run could not even be created: fail before training
            trial.set_user_attr(attrs.MLFLOW_RUN_ID, hooks.tracker.run_id)
            try:
                return self._run(trial, config, hooks)
            except optuna.TrialPruned:
                raise
            except Exception as err:
                hooks.tracker.set_tags({"nst.fail_reason": failure_reason(err)})
                raise

    def _crop(self, path: Path, size: int) -> torch.Tensor:
        key = (str(path), size)
        if key not in self.crops:
            self.crops[key] = centre_crop(self.res.image(path, size), size)
        return self.crops[key]

    def _run(self, trial: optuna.Trial, config: TrainConfig, hooks: Any) -> float | list[float]:
        from nst.study.outputs import write_trial_curves
        from nst.train.loop import train

        tracker = hooks.tracker if hooks is not None else None
        folder = self.out / "trials" / str(trial.number)
        shutil.rmtree(folder, ignore_errors=True)  # an earlier study's trial of this number
        marks = report_marks(config.steps, self.spec.reports)
        contents = [self._crop(p.content, config.size) for p in self.data.pairs]
        inputs = [self._crop(p.style, config.size) for p in self.data.pairs]
        from nst.metrics import fit_style

        styles = [
            fit_style(self.res.image(p.style, config.size), c)
            for p, c in zip(self.data.pairs, contents, strict=True)
        ]
        judged = any(m not in self.terms for m in self.metrics)
        judge = self.res.evaluator(config) if judged else None
        final: dict[str, Any] = {}
        recorder = Recorder(trial, hooks)

        def validate(v: Validation) -> None:
            if tracker is not None:
                tracker.check()  # tracking broke: stop training now
            images, losses = _stylize(v, contents, inputs if v.takes_style else None)
            if v.step == config.steps:  # the last validation: every metric, the trial's values
                values = dict(losses)
                if judge is not None:
                    evs = [
                        judge.evaluate(c, s, y).values
                        for c, s, y in zip(contents, styles, images, strict=True)
                    ]
                    values.update({k: sum(e[k] for e in evs) / len(evs) for k in evs[0]})
                    final.update(per_pair=evs)
                final.update(values=values, images=images)
            else:
                values = {
                    **losses,
                    **{
                        o.metric: fmean(
                            proxy(o.metric, o.direction, c, s, y, losses, judge)
                            for c, s, y in zip(contents, styles, images, strict=True)
                        )
                        for o in self.spec.objectives
                        if o.metric not in losses
                    },
                }
            if tracker is not None:
                tracker.log_metrics({f"val/loss/{k}": v for k, v in losses.items()}, step=v.step)
                tracker.log_metrics(
                    {f"val/{o.metric}": values[o.metric] for o in self.spec.objectives}, step=v.step
                )
            if not self.spec.multi_objective:
                trial.report(values[self.metrics[0]], marks[v.step])
                if trial.should_prune():
                    raise optuna.TrialPruned(
                        f"pruned at validation {marks[v.step]} (step {v.step})"
                    )

        try:
            train(
                config, folder, hooks=recorder, progress=False, validate=validate, validate_at=marks
            )
        finally:
            write_trial_curves(self.out, trial.number, recorder.rows)
            _clean(folder, keep_model="values" in final)
        return self._finish(trial, config, final, judge, tracker)

    def _finish(
        self,
        trial: optuna.Trial,
        config: TrainConfig,
        final: dict[str, Any],
        judge: Any,
        tracker: Any,
    ) -> float | list[float]:
        """Images, records and the objective values of the last validation."""
        records = []
        for k, (pair, image) in enumerate(zip(self.data.pairs, final["images"], strict=True)):
            rel = Path("images") / f"trial{trial.number:03d}_pair{k}.png"
            save_image(image.clamp(0, 1), self.out / rel)
            judged = final.get("per_pair") or [{}] * len(final["images"])
            records.append(
                {
                    "content": str(pair.content),
                    "style": str(pair.style),
                    "result": rel.as_posix(),
                    "values": finite_values(judged[k]),
                }
            )
            if tracker is not None:
                tracker.log_image(image.clamp(0, 1), f"pair{k}/images/result.png")
        trial.set_user_attr(attrs.PAIRS, records)
        trial.set_user_attr(attrs.IMAGES, [r["result"] for r in records])
        trial.set_user_attr(
            attrs.MODEL, (Path("trials") / str(trial.number) / "model.pt").as_posix()
        )
        if judge is not None:
            trial.set_user_attr(attrs.JUDGE, judge.held_out)
            if tracker is not None:
                tracker.set_tags(judge_tags(judge.held_out))
        return self._result(trial, final["values"], tracker)


def _stylize(
    v: Validation, contents: list[torch.Tensor], styles: list[torch.Tensor] | None
) -> tuple[list[torch.Tensor], dict[str, float]]:
    """The validation pairs stylised (1x3xSxS each) and the training loss's terms on them, the
    mean over the pairs (chunks of CHUNK pairs, weighted by their size)."""
    images: list[torch.Tensor] = []
    sums: dict[str, float] = {}
    for i in range(0, len(contents), CHUNK):
        c = torch.cat(contents[i : i + CHUNK])
        s = torch.cat(styles[i : i + CHUNK]) if styles is not None else None
        out, losses = v.run(c, s)
        images += [y.unsqueeze(0) for y in out]
        for k, value in losses.items():
            sums[k] = sums.get(k, 0.0) + value * len(c)
    return images, {k: value / len(contents) for k, value in sums.items()}


def _clean(folder: Path, keep_model: bool) -> None:
    """A finished trial's folder: no checkpoint (a trial is never resumed: a retry trains
    afresh), and no network unless the trial completed."""
    for stale in (folder / "checkpoint.pt", *folder.glob(".*.tmp")):
        stale.unlink(missing_ok=True)
    if not keep_model:
        (folder / "model.pt").unlink(missing_ok=True)


def keep_best_models(study: optuna.Study, spec: ExperimentSpec, out: Path) -> None:
    """The networks of the best trials (one objective: the best; several: the Pareto front)
    stay in results/<study>/trials/<number>/; every other trial's model.pt and checkpoint go."""
    try:
        best = study.best_trials if spec.multi_objective else [study.best_trial]
    except ValueError:  # no complete trial
        best = []
    keep = {str(t.number) for t in best}
    for folder in (out / "trials").glob("*"):
        if folder.is_dir():
            _clean(folder, keep_model=folder.name in keep)
