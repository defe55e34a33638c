"""One trial: stylise each chosen (content, style) pair with the suggested config, judge the results
with the held-out metrics, report intermediate values to the pruner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from nst import NstError
from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.images import fit_size, load_image, save_image
from nst.memory import check_config
from nst.optimize.loop import Step
from nst.optimize.pyramid import total_steps
from nst.optimize.transfer import stylize
from nst.perceptual import loss_backbone
from nst.study import attrs
from nst.study.backbone import BackboneChoice, judge_tags
from nst.study.faults import failure_reason, record_fault, worker_id
from nst.study.pairs import Pair
from nst.study.space import suggest
from nst.study.spec import LOSS_TERMS, ExperimentSpec

CURVE_TERMS = LOSS_TERMS  # the columns of curves.csv: an optimisation's loss terms


@dataclass
class StudyOptions:
    """How (not what) to run: where things go; the spec says what is searched."""

    out: Path = Path("results")
    storage: str | None = None  # None: sqlite:///<project root>/optuna.db
    data: Path | None = None  # None or empty: the embedded sample, cached under out
    tracking_uri: str | None = None
    track: bool = True
    workers: int = 1
    seed: int = 0  # sampler seed (worker i uses seed + i)
    progress: bool = False  # a progress bar over the trial budget on stderr (a terminal only)
    backbone: BackboneChoice | None = None  # how `--backbone` chose the network, for the record
    #: the memory a trial may use, e.g. "4GB" (nst.memory; None: what is available when it starts)
    max_memory: str | None = None


@dataclass
class Resources:
    """What one process builds once and every trial reuses: backbones keyed by
    (name, weights, pooling, seed), held-out evaluators keyed by the networks they exclude,
    images."""

    backbones: dict[tuple[str, str, str, int], Backbone] = field(default_factory=dict)
    evaluators: dict[tuple[str, ...], Any] = field(default_factory=dict)
    images: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)

    def backbone(self, c: TransferConfig) -> Backbone:
        key = (c.backbone, c.weights, c.pooling, c.seed)
        if key not in self.backbones:
            self.backbones[key] = loss_backbone(c)
        return self.backbones[key]

    def evaluator(self, config: Any) -> Any:
        """The judge of a run of `config`: none of the networks it depends on
        (nst.metrics.used_networks: the loss network, an encoder)."""
        from nst.metrics import Evaluator, used_networks

        exclude = used_networks(config)
        if exclude not in self.evaluators:
            self.evaluators[exclude] = Evaluator(exclude)
        return self.evaluators[exclude]

    def image(self, path: Path, size: int) -> torch.Tensor:
        # loaded once at twice the working size: stylize resizes it down per trial
        key = (str(path), size)
        if key not in self.images:
            self.images[key] = load_image(path, size=2 * size)
        return self.images[key]


def finite_values(values: dict[str, float]) -> dict[str, float]:
    """A pair's values as stored with its record (attrs.PAIRS): the finite ones, rounded, so
    the report can compare settings pair by pair (nst.report.intervals.paired_difference)."""
    return {k: round(float(v), 6) for k, v in values.items() if math.isfinite(float(v))}


class TrialFunction:
    """What every study's objective does with a trial: draw its config, run it (inside its MLflow
    run when tracked), and record a fault on the trial before the exception leaves (the trial
    fails alone; run_worker's catch lets the study go on). Subclasses draw and run."""

    spec: ExperimentSpec
    tracking: dict[str, str] | None  # {"uri", "experiment", "parent_run_id"} or None
    max_memory: str | None = None  # StudyOptions.max_memory

    def draw(self, trial: optuna.Trial) -> Any:
        raise NotImplementedError

    def _run(self, trial: optuna.Trial, config: Any, run: Any) -> float | list[float]:
        raise NotImplementedError

    def _tracked(self, trial: optuna.Trial, config: Any) -> float | list[float]:
        raise NotImplementedError

    @property
    def metrics(self) -> list[str]:
        return [o.metric for o in self.spec.objectives]

    def _result(
        self, trial: optuna.Trial, means: dict[str, float], run: Any
    ) -> float | list[float]:
        """The trial's result from its mean metrics: recorded on the trial and its MLflow run
        (objective/<m>, mean/<m>), refused when not finite, one value per objective."""
        trial.set_user_attr(attrs.METRICS, means)
        objective = [means[m] for m in self.metrics]
        if run is not None:
            run.log_metrics(
                {f"objective/{m}": v for m, v in zip(self.metrics, objective, strict=True)}
            )
            run.log_metrics({f"mean/{m}": v for m, v in means.items()})
        if any(not math.isfinite(v) for v in objective):
            raise NstError(f"objective not finite: {objective}")
        return objective[0] if len(objective) == 1 else objective

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr(attrs.WORKER, worker_id())
        try:
            config = self.draw(trial)
            trial.set_user_attr(attrs.CONFIG, config.to_dict())
            # predicted not to fit the memory: fails alone, before any work
            check_config(config, self.max_memory)
            if self.tracking is None:
                return self._run(trial, config, None)
            return self._tracked(trial, config)
        except optuna.TrialPruned:
            raise
        except Exception as err:
            record_fault(trial, err)
            raise


class TransferTrials(TrialFunction):
    """trial -> objective values (means over pairs); writes images and curves as it goes."""

    def __init__(
        self,
        spec: ExperimentSpec,
        pairs: list[Pair],
        out: Path,
        resources: Resources,
        tracking: dict[str, str] | None = None,
    ):
        self.spec, self.pairs, self.out, self.res = spec, pairs, out, resources
        self.tracking = tracking

    def draw(self, trial: optuna.Trial) -> TransferConfig:
        config = suggest(trial, self.spec)
        assert isinstance(config, TransferConfig)
        return config

    def _tracked(self, trial: optuna.Trial, config: TransferConfig) -> float | list[float]:
        """The trial inside its MLflow run. Tracking is strict: a trial whose record cannot be
        written fails ("tracking unavailable") rather than finishing with a silent hole."""
        from nst.tracking.transfer import transfer_run

        t = self.tracking
        assert t is not None
        with transfer_run(
            config,
            tracking_uri=t["uri"],
            experiment=t["experiment"],
            run_name=f"{self.spec.name}-trial{trial.number:03d}",
            parent_run_id=t["parent_run_id"],
            mode="strict",
            tags={
                "nst.study": self.spec.name,
                "nst.trial": str(trial.number),
                "nst.worker": worker_id(),
            },
        ) as run:
            run.check()  # the run could not even be created: fail before spending compute
            trial.set_user_attr(attrs.MLFLOW_RUN_ID, run.run_id)
            try:
                return self._run(trial, config, run)
            except optuna.TrialPruned:
                raise
            except Exception as err:
                run.set_tags({"nst.fail_reason": failure_reason(err)})
                raise

    def _run(self, trial: optuna.Trial, config: TransferConfig, run: Any) -> float | list[float]:
        per_pair: list[dict[str, float]] = []
        proxies: list[float] = []
        curves: list[list[Any]] = []
        records: list[dict[str, Any]] = []
        try:
            for k, pair in enumerate(self.pairs):
                if run is not None:
                    run.check()  # tracking broke during the last pair: stop now
                values = self._pair(trial, config, run, k, pair, proxies, curves, records)
                per_pair.append(values)
        finally:
            from nst.study.outputs import write_trial_curves

            write_trial_curves(self.out, trial.number, curves)
            trial.set_user_attr(attrs.PAIRS, records)
            trial.set_user_attr(attrs.IMAGES, [r["result"] for r in records])
        means = {m: sum(v[m] for v in per_pair) / len(per_pair) for m in per_pair[0]}
        return self._result(trial, means, run)

    def _pair(
        self,
        trial: optuna.Trial,
        config: TransferConfig,
        run: Any,
        k: int,
        pair: Pair,
        done_proxies: list[float],
        curves: list[list[Any]],
        records: list[dict[str, Any]],
    ) -> dict[str, float]:
        backbone = self.res.backbone(config)
        trial.set_user_attr(attrs.WEIGHTS_IDENTITY, backbone.weights_info.identity)
        trial.set_user_attr(attrs.WEIGHTS_PRETRAINED, bool(backbone.weights_info.pretrained))
        content = self.res.image(pair.content, config.size)
        style = self.res.image(pair.style, config.size)
        target = fit_size(content, config.size, backbone.size_multiple)
        marks = report_marks(total_steps(config), self.spec.reports)
        # reports feed the pruner only: without one they would cost judge-network forwards
        single = not self.spec.multi_objective and self.spec.pruner["type"] != "none"
        proxies = [*done_proxies, math.nan]  # finished pairs' last value, this pair's
        from nst.metrics import fit_style

        judged = fit_style(style, target)  # the style as the evaluator sees it (one tensor, cached)

        def on_step(step: Step) -> None:
            curves.append(
                [
                    trial.number,
                    k,
                    step.step,
                    round(step.seconds, 4),
                    *(step.losses[t] for t in CURVE_TERMS),
                ]
            )
            if single and step.step in marks:
                o = self.spec.objectives[0]
                judge = None if o.metric in step.losses else self.res.evaluator(config)
                proxies[k] = proxy(
                    o.metric, o.direction, target, judged, step.image, step.losses, judge
                )
                # Optuna's "step" is the report's number (pair k's j-th is k * reports + j), so
                # the pruners' resources (1 .. reports * pairs) mean the same at any step count
                trial.report(sum(proxies) / len(proxies), k * self.spec.reports + marks[step.step])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at pair {k} step {step.step}")

        callbacks = [run.callback(prefix=f"pair{k}/")] if run is not None else []
        result = stylize(config, content, style, callbacks=[*callbacks, on_step], backbone=backbone)
        if single:
            done_proxies.append(proxies[k])
        values = self._values(
            config,
            target,
            style,
            result.image,
            result.final_losses,
            runtime_s=result.seconds,
            peak_memory_mb=result.peak_memory_mb,
        )
        if any(m not in result.final_losses for m in self.metrics):  # the judge scored it
            held = self.res.evaluator(config).held_out
            trial.set_user_attr(attrs.JUDGE, held)
            if run is not None:
                run.set_tags(judge_tags(held))
        image = Path("images") / f"trial{trial.number:03d}_pair{k}.png"
        save_image(result.image, self.out / image)
        records.append(
            {
                "content": str(pair.content),
                "style": str(pair.style),
                "result": image.as_posix(),
                "values": finite_values(values),
            }
        )
        if run is not None:
            from nst.tracking.tags import hash_files

            hashes = hash_files({"content": pair.content, "style": pair.style})
            run.log_result(
                result, content, style, prefix=f"pair{k}/", metrics=values, data_hashes=hashes
            )
        return values

    def _values(
        self,
        config: TransferConfig,
        content: torch.Tensor,
        style: torch.Tensor,
        image: torch.Tensor,
        losses: dict[str, float],
        **extra: float,
    ) -> dict[str, float]:
        """Loss terms, overridden by the evaluation metrics (nst.metrics) where names clash."""
        values = dict(losses)
        if any(m not in losses for m in self.metrics):
            evaluator = self.res.evaluator(config)
            ev = evaluator.evaluate(
                content, style, image.detach().float().cpu().clamp(0, 1), **extra
            )
            values.update(ev.values)
        return values


def report_marks(steps: int, reports: int) -> dict[int, int]:
    """{optimisation step: report number 1..reports}, spread evenly, the last at `steps`."""
    marks: dict[int, int] = {}
    for j in range(1, reports + 1):
        marks.setdefault(max(1, round(j * steps / reports)), len(marks) + 1)
    return marks


def proxy(
    metric: str,
    direction: str,
    content: torch.Tensor,
    style: torch.Tensor,
    image: torch.Tensor,
    losses: dict[str, float],
    evaluator: Any = None,
) -> float:
    """The objective metric of the current image, for pruning.

    Loss terms are themselves; image metrics (SSIM, MS-SSIM, edge F1, colour distances) and
    the held-out network's feature distances (Gram, statistics, content features: one forward
    of the judge network per report, a fraction of an optimisation step) are computed exactly.
    The raw loss terms rank trials differently from the held-out metrics (measured in
    benchmarks/bench_study.py: pruning on them kept the wrong trials). LPIPS falls back to
    the matching raw loss term, the style loss L_s for the style group and the content loss
    L_c otherwise, negated when maximised.
    """
    if metric in losses:
        return losses[metric]
    from nst import metrics as m

    x = image.detach().float().cpu().clamp(0, 1)
    exact = {
        "ssim": lambda: m.ssim(x, content),
        "ms_ssim": lambda: m.ms_ssim(x, content),
        "edge_f1": lambda: m.edge_f1(x, content),
        "color_hellinger": lambda: m.color_hellinger(x, style),
        "color_emd_lab": lambda: m.color_emd_lab(x, style),
    }
    if evaluator is not None:
        net = evaluator.network
        exact |= {
            "style_gram_dist": lambda: net.style_distances(x, style)["style_gram_dist"],
            "style_stats_dist": lambda: net.style_distances(x, style)["style_stats_dist"],
            "content_feature_dist": lambda: net.content_distance(x, content),
        }
    if metric in exact:
        return float(exact[metric]())
    term = "style" if m.METRICS[metric].group == "style" else "content"
    return losses[term] if direction == "minimize" else -losses[term]
