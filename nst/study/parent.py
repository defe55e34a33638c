"""A study's parent MLflow run: the row the collapsed experiment view shows for the study.

Its trials are runs nested under it (nst.study.objective); the parent itself records

    params   profile, sampler, pruner, objectives, pairs.*, budget.timeout_s, fixed.<field>
             and search.<field> as a readable distribution, e.g.
             search.lr = loguniform(0.001, 0.1), search.init_blend = uniform(0.1, 0.9) if init=blend
    params   also backbone (the network optimised, or "searched"; a training study's loss
             network) and method (gatys, or the trained network: johnson, adain, stytr)
    tags     nst.study, nst.profile, nst.backbone, nst.backbone.rule (how it was chosen, e.g.
             "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"; nst.study.backbone), the
             judge once trials were scored (nst.judge, nst.judge.weights, nst.judge.sha256,
             nst.judge.pretrained, nst.judge.kind), nst.data.source (network, mirror, embedded, ...),
             nst.data_lock_sha256 (data with a lock: fetched, or the embedded sample's), the
             description as the run's note (mlflow.note.content)
    metrics  best/<objective> (best complete value so far, each objective on its own),
             trials/complete, trials/pruned, trials/failed, trials/budget

The metrics are logged when the study finishes, at step = trials run so far, so a resumed
study adds a point to each chart instead of replacing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from nst.study.attrs import MLFLOW
from nst.study.backbone import BackboneChoice, choose_backbone, parent_backbone_tags
from nst.study.objective import StudyOptions
from nst.study.outputs import best_values, data_facts
from nst.study.spec import ExperimentSpec, Param, choice_label


def describe(p: Param) -> str:
    """A searched field as one readable value: loguniform(0.001, 0.1), int(10, 100, step=10),
    choice(adam, lbfgs), followed by its condition (`if init=blend`)."""
    if p.type == "categorical":
        text = f"choice({', '.join(str(choice_label(c)) for c in p.choices)})"
    else:
        kind = ("log" if p.log else "") + ("uniform" if p.type == "float" else "int")
        low, high = (f"{v:g}" if p.type == "float" else str(int(v or 0)) for v in (p.low, p.high))
        step = f", step={p.step:g}" if p.step else ""
        text = f"{kind}({low}, {high}{step})"
    conditions = [f"{k}={'|'.join(map(str, v))}" for k, v in p.when.items()]
    return f"{text} if {' and '.join(conditions)}" if conditions else text


def spec_params(spec: ExperimentSpec, choice: BackboneChoice | None = None) -> dict[str, str]:
    """The study's settings as MLflow params (what it searched, held fixed and optimised),
    with `backbone`: the network it optimised ("searched" when the spec searches it)."""
    choice = choice or choose_backbone(spec, None)[1]

    def text(value: Any) -> str:
        return ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)

    pruner = ", ".join(f"{k}={v}" for k, v in spec.pruner.items() if k != "type")
    params = {
        "backbone": choice.backbone or "searched",
        "method": spec.method,
        "profile": str(spec.profile),
        "sampler": spec.sampler,
        "pruner": spec.pruner["type"] + (f"({pruner})" if pruner else ""),
        "objectives": ", ".join(f"{o.metric} ({o.direction})" for o in spec.objectives),
        **{f"pairs.{k}": str(v) for k, v in spec.pairs.items()},
        "budget.timeout_s": text(spec.budget.get("timeout_s", 0)),
        **{f"fixed.{k}": text(v) for k, v in sorted(spec.fixed.items())},
        **{f"search.{p.name}": describe(p) for p in spec.search},
    }
    return {k: v[:6000] for k, v in params.items()}


def study_metrics(study: optuna.Study, spec: ExperimentSpec) -> dict[str, float]:
    """best/<objective> and the trial counts, as the parent's metrics."""
    states = [t.state for t in study.get_trials(deepcopy=False)]
    s = optuna.trial.TrialState
    return {
        **{f"best/{k}": v for k, v in best_values(study, spec).items()},
        "trials/complete": states.count(s.COMPLETE),
        "trials/pruned": states.count(s.PRUNED),
        "trials/failed": states.count(s.FAIL),
        "trials/budget": float(spec.budget["trials"]),
    }


def ensure_parent_run(study: optuna.Study, spec: ExperimentSpec, opts: StudyOptions) -> None:
    """Start the study's parent run (with its spec as params) unless the study has one in this
    tracking store already; a resumed study's trials join the existing one."""
    from nst.tracking.runs import start_parent_run, update_run
    from nst.tracking.store import check_tracking, resolve_tracking_uri

    uri = resolve_tracking_uri(opts.tracking_uri)
    check_tracking(uri)  # a dead server fails the command now, not every trial later
    known = study.user_attrs.get(MLFLOW)
    if known and known.get("uri") == uri:
        return
    experiment = f"study-{spec.name}"
    parent = start_parent_run(
        spec.name,
        tracking_uri=uri,
        experiment=experiment,
        tags=parent_tags(spec, opts),
        experiment_kind="study",
    )
    update_run(
        parent, tracking_uri=uri, params=spec_params(spec, opts.backbone)
    )  # visible while it runs
    study.set_user_attr(MLFLOW, {"uri": uri, "experiment": experiment, "parent_run_id": parent})


def parent_tags(
    spec: ExperimentSpec, opts: StudyOptions, trials: list[optuna.trial.FrozenTrial] | None = None
) -> dict[str, str]:
    """Study, profile, backbone and how it was chosen, data; once `trials` ran, the judge."""
    from nst.data.lock import DATA_LOCK_SHA256, data_identity

    choice = opts.backbone or choose_backbone(spec, None)[1]
    tags = {
        "nst.study": spec.name,
        "nst.profile": str(spec.profile),
        **parent_backbone_tags(choice, trials or []),
    }
    if spec.description:
        tags["mlflow.note.content"] = spec.description
    facts = data_facts(opts.data, Path(opts.out) / spec.name)
    tags["nst.data.source"] = facts["source"]
    # the folder the pairs came from: without data images, the embedded sample's cache
    folder = Path(opts.out) / ".cache" / "embedded" if facts["source"] == "embedded" else opts.data
    identity = data_identity(folder)
    if identity:  # the same name and value as summary.json's provenance and `nst fetch`'s output
        tags[f"nst.{DATA_LOCK_SHA256}"] = identity
    return tags


def update_parent_run(study: optuna.Study, spec: ExperimentSpec, opts: StudyOptions) -> None:
    """Record the spec, the data lock, the best values and the trial counts on the parent run
    (called when the study finishes, also after a resume)."""
    from nst.tracking.runs import update_run

    mlflow = study.user_attrs[MLFLOW]
    done = len(study.get_trials(deepcopy=False))
    tags = parent_tags(spec, opts, study.get_trials(deepcopy=False))
    update_run(
        mlflow["parent_run_id"],
        tracking_uri=mlflow["uri"],
        params=spec_params(spec, opts.backbone),
        metrics=study_metrics(study, spec),
        tags=tags,
        step=done,
    )
