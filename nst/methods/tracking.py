"""MLflow records of a methods comparison, in the experiment `methods` (or one named):

    train-<method>[-<style>]  one run per network trained (nst.train.tracking: loss curves,
                              samples, the checkpoint and an MLflow model), tagged
                              nst.methods.profile
    methods-<profile>         the comparison's parent run: the spec's settings as params,
                              results.csv and summary.json as artifacts, tags nst.kind=methods,
                              the judge, the data lock, nst.warning when random weights ran;
                              its description (mlflow.note.content) the spec's, then links to
                              every training run (the train stages ran before it existed)
      <method>                a nested run per method: its config as params (config.<key>),
                              mean/<metric> as metrics over the held-out
                              pairs, seconds and peak_memory_mb per image, its networks'
                              weights as tags, its images as artifacts (images/), its
                              training runs' ids (nst.methods.train_runs) and links to them
                              (its description); it spans the method's evaluation (start and
                              end from summary.json's methods.<name>.evaluated)

The files under results/methods/ stay the record of truth; tracking is best-effort (a store
that fails warns and the comparison's files are written all the same).
"""

from __future__ import annotations

import contextlib
import csv
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nst.methods.run import method_means
from nst.methods.training import Hooks
from nst.tracking.store import NOTE
from nst.train.config import TrainConfig

EXPERIMENT = "methods"


def training_hooks(uri: str | None, profile: str, experiment: str = EXPERIMENT) -> Hooks:
    """Hooks for nst.methods.training: each network's training is one tracked MLflow run."""

    @contextlib.contextmanager
    def hooks(config: TrainConfig, label: str) -> Iterator[Any]:
        from nst.train.tracking import training_run

        with training_run(
            config,
            tracking_uri=uri,
            experiment=experiment,
            run_name=f"train-{label}",
            mode="best-effort",
            tags={"nst.methods.profile": profile},
            experiment_kind="methods",
        ) as h:
            yield h

    return hooks


def log_comparison(root: Path, uri: str | None, experiment: str = EXPERIMENT) -> str | None:
    """The parent run and one nested run per method (module docstring); its run id, or None
    when the store failed (warned)."""
    from nst.tracking.runs import end_run, start_parent_run, update_run
    from nst.tracking.store import TrackingError, TrackingWarning, resolve_tracking_uri

    uri = resolve_tracking_uri(uri)
    summary = json.loads((root / "summary.json").read_text())
    with (root / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    try:
        links = _training_links(uri, summary)
        tags = _parent_tags(summary)
        listed = "\n".join(line for lines in links.values() for line in lines)
        if listed:
            tags[NOTE] = "\n\n".join(filter(None, [tags.get(NOTE), "Training runs:\n\n" + listed]))
        parent = start_parent_run(
            f"{root.name}-{summary['profile']}",  # methods-quick, style_losses-quick
            tracking_uri=uri,
            experiment=experiment,
            tags=tags,
            experiment_kind="methods",
            start_time=summary.get("started"),
        )
        update_run(parent, tracking_uri=uri, params=_parent_params(summary))
        _artifacts(uri, parent, [root / "results.csv", root / "summary.json"], "")
        for name, info in summary["methods"].items():
            mine = [r for r in rows if r["method"] == name]
            tags = {"mlflow.parentRunId": parent, **_method_tags(name, info)}
            if links[name]:
                tags[NOTE] = "Trained in:\n\n" + "\n".join(links[name])
            span = info.get("evaluated") or {}
            child = start_parent_run(
                name,
                tracking_uri=uri,
                experiment=experiment,
                tags=tags,
                experiment_kind="methods",
                start_time=span.get("start"),
            )
            means = method_means(mine, {name: info}, summary["metrics"])[name]
            update_run(
                child,
                tracking_uri=uri,
                params=_method_params(info),
                metrics={f"mean/{k}" if k != "pairs" else k: v for k, v in means.items()},
            )
            _artifacts(uri, child, [root / "images" / name], "images")
            end_run(child, tracking_uri=uri, end_time=span.get("end"))
        end_run(parent, tracking_uri=uri)
    except TrackingError as err:
        warnings.warn(f"the comparison is not in MLflow: {err}", TrackingWarning, stacklevel=2)
        return None
    return parent


def _training_links(uri: str, summary: dict[str, Any]) -> dict[str, list[str]]:
    """Per method, a Markdown list item per training run: a link to the run's page in the UI
    (#/experiments/<id>/runs/<run id>) named by its run name, or the bare id when this store
    has no such run (trained against another store)."""
    from nst.tracking.store import _client, store_errors

    client = _client(uri)
    out: dict[str, list[str]] = {}
    for name, info in summary["methods"].items():
        out[name] = []
        for record in info.get("runs", []):
            run_id = record.get("mlflow_run_id")
            if not run_id:
                continue
            try:
                run = client.get_run(run_id)
            except store_errors():
                out[name].append(f"- {name}: MLflow run {run_id} (not in {uri})")
                continue
            page = f"#/experiments/{run.info.experiment_id}/runs/{run_id}"
            out[name].append(f"- {name}: [{run.info.run_name}]({page})")
    return out


def _parent_tags(summary: dict[str, Any]) -> dict[str, str]:
    from nst.data.lock import DATA_LOCK_SHA256, data_identity

    judge = summary.get("judge") or {}
    tags = {
        "nst.kind": "methods",
        "nst.profile": str(summary["profile"]),
        "nst.judge": str(judge.get("backbone", "")),
        "nst.judge.weights": str(judge.get("weights", "")),
        "nst.judge.pretrained": str(judge.get("pretrained", "")).lower(),
        "nst.judge.excluded": str(judge.get("excluded", "")),
        "nst.judge.shared_family": str(judge.get("shared_family", "")),
    }
    identity = data_identity(Path(summary["data"]))
    if identity:
        tags[f"nst.{DATA_LOCK_SHA256}"] = identity
    if summary.get("description"):
        tags[NOTE] = str(summary["description"])
    random = summary.get("random_weights_methods") or []
    if random:
        tags["nst.warning"] = f"random weights in {', '.join(random)}: not a measurement"
    return tags


def _parent_params(summary: dict[str, Any]) -> dict[str, str]:
    split = summary.get("split", {})
    return {
        "spec": str(summary["spec"]),
        "profile": str(summary["profile"]),
        "size": str(summary["size"]),
        "device": str(summary["device"]),
        "seed": str(summary["seed"]),
        "methods": ",".join(summary["methods"]),
        "test_contents": ",".join(split.get("contents", []))[:6000],
        "test_styles": ",".join(split.get("styles", []))[:6000],
        "split_seed": str(split.get("seed", "")),
        "train_contents": str(split.get("counts", {}).get("content", {}).get("train", "")),
    }


def _method_tags(name: str, info: dict[str, Any]) -> dict[str, str]:
    tags = {"nst.kind": "methods", "nst.method": str(info["method"]), "nst.methods.name": name}
    for n in info.get("networks", []):
        tags[f"nst.weights.{n['role'].replace(' ', '_')}"] = f"{n['backbone']} {n['weights']}"
    trained = [r["mlflow_run_id"] for r in info.get("runs", []) if r.get("mlflow_run_id")]
    if trained:
        tags["nst.methods.train_runs"] = ",".join(trained)
    judge = info.get("judge") or {}
    if judge:  # the judge of this method's results, and the family it shares with them
        tags["nst.judge"] = str(judge.get("backbone", ""))
        tags["nst.judge.depended_on"] = ",".join(judge.get("depended_on", []))
        tags["nst.judge.shared_family"] = str(judge.get("shared_family", ""))
    if any(not n["pretrained"] for n in info.get("networks", [])):
        tags["nst.warning"] = "random weights: the images check the harness, not the method"
    return tags


def _method_params(info: dict[str, Any]) -> dict[str, str]:
    return {f"config.{k}": str(v)[:6000] for k, v in sorted(info.get("config", {}).items())}


def _artifacts(uri: str, run_id: str, paths: list[Path], folder: str) -> None:
    from nst.tracking.store import TrackingError, _client, _one_line, store_errors

    try:
        client = _client(uri)
        for p in paths:
            if p.is_dir():
                client.log_artifacts(run_id, str(p), folder or None)
            elif p.is_file():
                client.log_artifact(run_id, str(p), folder or None)
    except store_errors() as err:
        raise TrackingError(
            f"cannot log artifacts to MLflow run {run_id}: {_one_line(err)}"
        ) from None
