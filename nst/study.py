"""Optuna studies: experiment spec -> search space -> objective -> storage -> workers.

A trial draws a TransferConfig from the spec's search space, stylises each of the study's
content/style pairs with it and returns the mean of each objective metric over the pairs,

    f_m(theta) = 1/P sum_p  m(content_p, style_p, stylize(theta, content_p, style_p)).

While a pair runs, the running estimate of f (the finished pairs' values and the current
image's value) is reported `reports` times per pair, so a pruner (median, successive_halving,
hyperband) can stop a trial that is already worse than its peers. Every trial is a nested MLflow run under one
parent run per study (see nst.tracking); results land in results/<study>/ (nst.study_outputs).

Faults stay inside their trial. Any exception in a trial (a NaN/inf loss, out of memory, a full
disk, a bug) marks that trial FAIL with `fail_reason` in its user attributes and an
nst.fail_reason tag on its FAILED MLflow run, and the study goes on. Two faults are not the
trial's own and are retried instead of counted: a worker that dies mid-trial (found by the
storage heartbeat, see nst.study_storage) and an MLflow store that stops answering mid-trial
(the trial fails with "tracking unavailable", is queued again, and the worker stops with a
clear error, since every further trial would fail the same way; re-run to resume). Unreadable
images in the data are skipped with a warning and listed in summary.json ("skipped_images").
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RetryHeartbeatStaleTrialCallback as Retry

from nst import NstError
from nst.backbones import Backbone
from nst.config import TransferConfig
from nst.experiment import RATIOS, ExperimentSpec, Param, choice_label
from nst.faults import (
    TRACKING_DOWN,
    fail_orphan_runs,
    failure_reason,
    is_out_of_memory,
    readable,
    worker_id,
)
from nst.images import load_image, save_image
from nst.pruners import make_pruner, startup_trials
from nst.study_storage import make_storage, redact, requeue, storage_url
from nst.transfer import Step, build_backbone, fit_size, stylize

DONE = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
CURVE_TERMS = ("content", "style", "tv", "total")


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


@dataclass(frozen=True)
class Pair:
    content: Path
    style: Path


@dataclass
class Resources:
    """What one process builds once and every trial reuses: backbones keyed by
    (name, weights, pooling, seed), held-out evaluators keyed by excluded backbone, images."""

    backbones: dict[tuple[str, str, str, int], Backbone] = field(default_factory=dict)
    evaluators: dict[str, Any] = field(default_factory=dict)
    images: dict[tuple[str, int], torch.Tensor] = field(default_factory=dict)

    def backbone(self, c: TransferConfig) -> Backbone:
        key = (c.backbone, c.weights, c.pooling, c.seed)
        if key not in self.backbones:
            self.backbones[key] = build_backbone(c)
        return self.backbones[key]

    def evaluator(self, exclude: str) -> Any:
        if exclude not in self.evaluators:
            from nst.metrics import Evaluator

            self.evaluators[exclude] = Evaluator(exclude)
        return self.evaluators[exclude]

    def image(self, path: Path, size: int) -> torch.Tensor:
        # loaded once at twice the working size: stylize resizes it down per trial
        key = (str(path), size)
        if key not in self.images:
            self.images[key] = load_image(path, size=2 * size)
        return self.images[key]


# ---------------------------------------------------------------------------- search space


def suggest(trial: optuna.Trial, spec: ExperimentSpec) -> TransferConfig:
    """Draw one config: fixed fields, then each searched field (ratios mapped to weights,
    categorical presets applied, lists of layers decoded from their 'a,b' labels)."""
    values: dict[str, Any] = dict(spec.fixed)
    for p in spec.search:
        value = _suggest_one(trial, p)
        if p.name in RATIOS:
            values.update({"alpha": 1.0, RATIOS[p.name]: value})
            continue
        if p.type == "categorical":  # decode the stored label back to the choice (a layer list)
            value = next(c for c in p.choices if choice_label(c) == value)
            values.update(p.presets.get(choice_label(value), {}))
            value = list(value) if isinstance(value, tuple) else value
        values[p.name] = value
    return TransferConfig.from_dict(values)


def _suggest_one(trial: optuna.Trial, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(p.name, [choice_label(c) for c in p.choices])
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def make_sampler(spec: ExperimentSpec, seed: int) -> optuna.samplers.BaseSampler:
    s = optuna.samplers
    if spec.sampler == "grid":
        space = {p.name: [choice_label(c) for c in p.choices] if p.type == "categorical"
                 else list(range(int(p.low or 0), int(p.high or 0) + 1, int(p.step or 1)))
                 for p in spec.search}  # fmt: skip
        return s.GridSampler(space, seed=seed)
    startup = startup_trials(int(spec.budget["trials"]))
    return {
        "tpe": lambda: s.TPESampler(seed=seed, n_startup_trials=startup),
        "random": lambda: s.RandomSampler(seed=seed),
        "nsga2": lambda: s.NSGAIISampler(seed=seed, population_size=max(4, startup)),
        "nsga3": lambda: s.NSGAIIISampler(seed=seed, population_size=max(4, startup)),
        "cmaes": lambda: s.CmaEsSampler(seed=seed, n_startup_trials=startup),
    }[spec.sampler]()


# ---------------------------------------------------------------------------- data


def choose_pairs(
    spec: ExperimentSpec, data: Path | None, cache: Path, skipped: list[str] | None = None
) -> list[Pair]:
    """`pairs.count` distinct content x style pairs, drawn with `pairs.seed` from the data
    directory's readable images (nst fetch), or from the embedded sample when there is no
    data. Unreadable images are skipped and appended to `skipped`."""
    from nst.data import embedded_sample, list_images

    skipped = [] if skipped is None else skipped
    contents, styles = list_images(data) if data and Path(data).is_dir() else ([], [])
    if contents or styles:
        contents, styles = readable(contents, skipped), readable(styles, skipped)
        if not contents or not styles:
            raise NstError(f"{data}: no readable content or style images left after skipping "
                           f"{len(skipped)} unreadable ones; run `nst fetch` again")  # fmt: skip
    if not contents or not styles:
        contents, styles = embedded_sample(cache)
    grid = [Pair(c, s) for c in contents for s in styles]
    count = int(spec.pairs["count"])
    if count >= len(grid):
        return grid
    return random.Random(int(spec.pairs["seed"])).sample(grid, count)


# ---------------------------------------------------------------------------- objective


class StudyObjective:
    """trial -> objective values (means over pairs); writes images and curves as it goes."""

    def __init__(self, spec: ExperimentSpec, pairs: list[Pair], out: Path, resources: Resources,
                 tracking: dict[str, str] | None = None):  # fmt: skip
        self.spec, self.pairs, self.out, self.res = spec, pairs, out, resources
        self.tracking = tracking  # {"uri", "experiment", "parent_run_id"} or None
        self.metrics = [o.metric for o in spec.objectives]

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        trial.set_user_attr("worker", worker_id())
        try:
            config = suggest(trial, self.spec)
            trial.set_user_attr("config", config.to_dict())
            if self.tracking is None:
                return self._run(trial, config, None)
            return self._tracked(trial, config)
        except optuna.TrialPruned:
            raise
        except Exception as err:  # the trial fails alone; run_worker's catch lets the study go on
            trial.set_user_attr("fail_reason", failure_reason(err))
            if is_out_of_memory(err):  # give the next trial the memory back
                gc.collect()
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            raise

    def _tracked(self, trial: optuna.Trial, config: TransferConfig) -> float | list[float]:
        """The trial inside its MLflow run. Tracking is strict: a trial whose record cannot be
        written fails ("tracking unavailable") rather than finishing with a silent hole."""
        from nst.tracking import transfer_run

        t = self.tracking
        assert t is not None
        with transfer_run(config, tracking_uri=t["uri"], experiment=t["experiment"],
                          run_name=f"{self.spec.name}-trial{trial.number:03d}",
                          parent_run_id=t["parent_run_id"], mode="strict",
                          tags={"nst.study": self.spec.name, "nst.trial": str(trial.number),
                                "nst.worker": worker_id()}) as run:  # fmt: skip
            run.check()  # the run could not even be created: fail before spending compute
            trial.set_user_attr("mlflow_run_id", run.run_id)
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
        records: list[dict[str, str]] = []
        try:
            for k, pair in enumerate(self.pairs):
                if run is not None:
                    run.check()  # tracking broke during the last pair: stop now
                values = self._pair(trial, config, run, k, pair, proxies, curves, records)
                per_pair.append(values)
        finally:
            from nst.study_outputs import write_trial_curves

            write_trial_curves(self.out, trial.number, curves)
            trial.set_user_attr("pairs", records)
            trial.set_user_attr("images", [r["result"] for r in records])
        means = {m: sum(v[m] for v in per_pair) / len(per_pair) for m in per_pair[0]}
        trial.set_user_attr("metrics", means)
        objective = [means[m] for m in self.metrics]
        if run is not None:
            run.log_metrics(
                {f"objective/{m}": v for m, v in zip(self.metrics, objective, strict=True)}
            )
            run.log_metrics({f"mean/{m}": v for m, v in means.items()})
        if any(not math.isfinite(v) for v in objective):
            raise NstError(f"objective not finite: {objective}")
        return objective[0] if len(objective) == 1 else objective

    def _pair(self, trial: optuna.Trial, config: TransferConfig, run: Any, k: int, pair: Pair,
              done_proxies: list[float], curves: list[list[Any]], records: list[dict[str, str]]) -> dict[str, float]:  # fmt: skip
        backbone = self.res.backbone(config)
        trial.set_user_attr("weights_identity", backbone.weights_info.identity)
        trial.set_user_attr("weights_pretrained", bool(backbone.weights_info.pretrained))
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
            curves.append([trial.number, k, step.step, round(step.seconds, 4),
                           *(step.losses[t] for t in CURVE_TERMS)])  # fmt: skip
            if single and step.step in marks:
                o = self.spec.objectives[0]
                proxies[k] = proxy(o.metric, o.direction, target, judged, step.image, step.losses,
                                   self.res.evaluator(config.backbone))  # fmt: skip
                # Optuna's "step" is the report's number (pair k's j-th is k * reports + j), so
                # the pruners' resources (1 .. reports * pairs) mean the same at any step count
                trial.report(sum(proxies) / len(proxies), k * self.spec.reports + marks[step.step])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at pair {k} step {step.step}")

        callbacks = [run.callback(prefix=f"pair{k}/")] if run is not None else []
        result = stylize(config, content, style, callbacks=[*callbacks, on_step], backbone=backbone)
        if single:
            done_proxies.append(proxies[k])
        values = self._values(config, target, style, result.image, result.final_losses,
                              runtime_s=result.seconds, peak_memory_mb=result.peak_memory_mb)  # fmt: skip
        image = Path("images") / f"trial{trial.number:03d}_pair{k}.png"
        save_image(result.image, self.out / image)
        records.append(
            {"content": str(pair.content), "style": str(pair.style), "result": image.as_posix()}
        )
        if run is not None:
            run.log_result(result, content, style, prefix=f"pair{k}/", metrics=values)
        return values

    def _values(self, config: TransferConfig, content: torch.Tensor, style: torch.Tensor,
                image: torch.Tensor, losses: dict[str, float], **extra: float) -> dict[str, float]:  # fmt: skip
        """Loss terms, overridden by the evaluation metrics (nst.metrics) where names clash."""
        values = dict(losses)
        if any(m not in losses for m in self.metrics):
            evaluator = self.res.evaluator(config.backbone)
            ev = evaluator.evaluate(
                content, style, image.detach().float().cpu().clamp(0, 1), **extra
            )
            values.update(ev.values)
        return values


def total_steps(config: TransferConfig) -> int:
    """Optimisation steps of one pair: a pyramid's stages run one after another."""
    if not config.pyramid:
        return config.steps
    from nst.pyramid import stage_configs

    return sum(stage.steps for stage in stage_configs(config))


def report_marks(steps: int, reports: int) -> dict[int, int]:
    """{optimisation step: report number 1..reports}, spread evenly, the last at `steps`."""
    marks: dict[int, int] = {}
    for j in range(1, reports + 1):
        marks.setdefault(max(1, round(j * steps / reports)), len(marks) + 1)
    return marks


def proxy(metric: str, direction: str, content: torch.Tensor, style: torch.Tensor,
          image: torch.Tensor, losses: dict[str, float], evaluator: Any = None) -> float:  # fmt: skip
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
    exact = {"ssim": lambda: m.ssim(x, content), "ms_ssim": lambda: m.ms_ssim(x, content),
             "edge_f1": lambda: m.edge_f1(x, content),
             "color_hellinger": lambda: m.color_hellinger(x, style),
             "color_emd_lab": lambda: m.color_emd_lab(x, style)}  # fmt: skip
    if evaluator is not None:
        net = evaluator.network
        exact |= {"style_gram_dist": lambda: net.style_distances(x, style)["style_gram_dist"],
                  "style_stats_dist": lambda: net.style_distances(x, style)["style_stats_dist"],
                  "content_feature_dist": lambda: net.content_distance(x, content)}  # fmt: skip
    if metric in exact:
        return float(exact[metric]())
    term = "style" if m.METRICS[metric].group == "style" else "content"
    return losses[term] if direction == "minimize" else -losses[term]


# ---------------------------------------------------------------------------- running


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
    from nst.tracking import TrackingError

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
    from nst.study_outputs import write_outputs
    from nst.tracking import project_root

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
        from nst.tracking import end_run

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
    from nst.tracking import check_tracking, resolve_tracking_uri, start_parent_run

    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking(uri)  # a dead server fails the command now, not every trial later
    known = study.user_attrs.get("mlflow")
    if known and known.get("uri") == uri:
        return  # resuming: trials join the existing parent run
    experiment = f"study-{spec.name}"
    parent = start_parent_run(spec.name, tracking_uri=uri, experiment=experiment,
                              tags={"nst.study": spec.name, "nst.profile": str(spec.profile)})  # fmt: skip
    study.set_user_attr("mlflow", {"uri": uri, "experiment": experiment, "parent_run_id": parent})
