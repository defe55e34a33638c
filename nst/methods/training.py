"""The trained methods' networks: one per method (johnson: one per evaluation style), each
trained once for its config and reused until the config changes.

    <out>/methods/runs/<method>/               adain, stytr: the arbitrary-style network
    <out>/methods/runs/<method>/<style stem>/  johnson: one network per evaluation style

`ensure_trained` reuses a run whose model.pt holds the same TrainConfig, resumes an
interrupted one with the same config (checkpoint.pt) and deletes and retrains one with another
config. The DVC stage train@<method> runs `nst methods <plan file> --step train` (one method,
its plan file written by --step plan), so each method's networks are that stage's output and
an unchanged method is not retrained; the evaluation (--step evaluate) then only reads them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nst import NstError
from nst.data.split import Selection, select
from nst.imagefiles import atomic_write
from nst.methods.spec import MethodPlan, Plan, load_plan
from nst.models.io import read_checkpoint
from nst.train.config import TrainConfig
from nst.train.loop import train

Log = Callable[[str], None]
TRACKED = "mlflow.json"  # <run>/mlflow.json: the MLflow run that trained the network
LEFT_OUT = "LEFT_OUT.txt"  # runs/<method>/LEFT_OUT.txt: why the profile leaves the method out
#: (config, run name) -> a context manager yielding the training loop's hooks (MLflow) or None
Hooks = Callable[[TrainConfig, str], contextlib.AbstractContextManager[Any]]


def run_targets(
    plan: Plan, m: MethodPlan, split: Selection, runs: Path
) -> list[tuple[str, Path, Path]]:
    """(style key, run folder, style image or styles folder) of each network `m` needs; the
    key is the evaluation style's file name (johnson) or "*" (one network for every style:
    adain and stytr trained on the training styles, cin on its bank of the evaluated ones)."""
    if m.entry.takes_style:
        return [("*", runs / m.name, split.train_styles)]
    if m.entry.style_bank:
        return [("*", runs / m.name, split.bank)]
    return [(s.name, runs / m.name / s.stem, s) for s in split.styles]


def saved_config(path: Path) -> TrainConfig | None:
    """The TrainConfig a checkpoint or model file was trained with (None if unreadable)."""
    try:
        saved = read_checkpoint(path)["meta"].get("config") or {}
        return TrainConfig.from_dict(dict(saved))
    except (NstError, OSError, KeyError, TypeError):
        return None


def ensure_trained(
    config: TrainConfig,
    run: Path,
    log: Log,
    *,
    allow_train: bool = True,
    hooks: Hooks | None = None,
    hint: str = "",
    label: str = "",
) -> dict[str, Any]:
    """<run>/model.pt trained with `config`: reused, resumed or (re)trained (module doc).
    allow_train=False (the evaluation step) refuses to train, naming `hint` as the fix."""
    model, ckpt = run / "model.pt", run / "checkpoint.pt"
    if model.exists() and saved_config(model) == config:
        log(f"  {run.name}: trained already (same config), reused")
        return {
            "run": str(run),
            "model": str(model),
            "trained": False,
            "seconds": 0.0,
            "parameters": _parameters(model),
            **_tracked_as(run),
        }
    if not allow_train:
        why = "has no model.pt" if not model.exists() else "holds a network of another config"
        raise NstError(f"{run} {why}: train it first ({hint})")
    same = not model.exists() and ckpt.exists() and saved_config(ckpt) == config
    if run.exists() and not same:
        log(f"  {run.name}: another config in the folder, retraining")
        shutil.rmtree(run)
    log(f"  {run.name}: {'resuming' if same else 'training'} {config.method}, {config.steps} steps")
    t0 = time.perf_counter()
    with hooks(config, label or run.name) if hooks else contextlib.nullcontext() as h:
        result = train(config, run, resume=same, progress=False, hooks=h)
        tracker = getattr(h, "tracker", None)
    record = {
        "run": str(run),
        "model": str(result.model),
        "trained": True,
        "seconds": round(time.perf_counter() - t0, 3),
        "parameters": result.parameters,
    }
    if tracker is not None and tracker.run_id:  # the training's MLflow run, kept with the network
        text = json.dumps({"mlflow_run_id": tracker.run_id, "tracking_uri": tracker.uri}) + "\n"
        atomic_write(run / TRACKED, lambda f: f.write(text.encode()))
    return {**record, **_tracked_as(run)}


def _parameters(model: Path) -> dict[str, Any]:
    """The network's parameter counts its model file records (nst.train.loop), {} if none."""
    try:
        return dict(read_checkpoint(model)["meta"].get("parameters") or {})
    except (NstError, OSError):
        return {}


def _tracked_as(run: Path) -> dict[str, str]:
    """{"mlflow_run_id": ...} of the MLflow run that trained <run>, or {} (untracked)."""
    try:
        return {"mlflow_run_id": str(json.loads((run / TRACKED).read_text())["mlflow_run_id"])}
    except (OSError, ValueError, KeyError):
        return {}


def train_method(
    plan: Plan,
    m: MethodPlan,
    split: Selection,
    runs: Path,
    log: Log,
    *,
    allow_train: bool = True,
    hooks: Hooks | None = None,
) -> list[dict[str, Any]]:
    """Every network of method `m` (run_targets), trained or reused; the records for
    summary.json, paths relative to <out>/methods/. Johnson's folders of styles no longer
    evaluated are removed."""
    targets = run_targets(plan, m, split, runs)
    per_style = not (m.entry.takes_style or m.entry.style_bank)
    if per_style and (runs / m.name).is_dir() and allow_train:
        keep = {run for _, run, _ in targets}
        for old in (runs / m.name).iterdir():
            if old.is_dir() and old not in keep:
                shutil.rmtree(old)
    hint = (
        f"`nst methods {plan.path} --profile {plan.profile} --step train --method {m.name}`"
        f", or `dvc repro train@{m.name}` with {m.name} in params.yaml methods.train"
    )
    records = []
    for key, run, style in targets:
        record = ensure_trained(
            plan.train_config(m, split.train, style),
            run,
            log,
            allow_train=allow_train,
            hooks=hooks,
            hint=hint,
            label=m.name if key == "*" else f"{m.name}-{run.name}",
        )
        # relative to <out>/methods/, so the report finds them wherever results/ moved
        rel = {k: Path(record[k]).relative_to(runs.parent).as_posix() for k in ("run", "model")}
        records.append({**record, **rel, "style": key})
    return records


def train_methods(
    spec: str | Path,
    profile: str,
    data: str | Path,
    out: str | Path,
    names: list[str] | None = None,
    *,
    log: Log = lambda _: None,
    hooks: Hooks | None = None,
) -> list[dict[str, Any]]:
    """`--step train`: train the named methods (default: every trained method of the spec)."""
    plan = load_plan(spec, profile)
    root = Path(out) / plan.name
    for name in names or list(plan.left_out):
        if name in plan.left_out:  # its stage's output: a folder that says why it is empty
            why = f"{name}: left out of the {plan.profile} profile: {plan.left_out[name]}\n"
            (root / "runs" / name).mkdir(parents=True, exist_ok=True)
            atomic_write(root / "runs" / name / LEFT_OUT, lambda f, t=why: f.write(t.encode()))
            log(why.strip())
    chosen = (
        [plan.method(n) for n in names if n not in plan.left_out]
        if names
        else [m for m in plan.methods if m.trained]
    )
    fixed = [m.name for m in chosen if not m.trained]
    if fixed:
        raise NstError(f"{', '.join(fixed)}: optimised per image (no network), nothing to train")
    split = select(data, "test", plan.contents, plan.styles, root, plan.who)
    records = []
    for m in chosen:
        log(f"== train {m.name} ({m.method}) ==")
        records += train_method(plan, m, split, root / "runs", log, hooks=hooks)
    return records


def write_plans(spec: str | Path, profile: str, out: str | Path) -> list[Path]:
    """`--step plan`: <out>/methods/plan/<name>.json, one method's resolved plan each (stale
    files of methods no longer in the spec removed). Unchanged methods keep byte-identical
    files, so DVC sees their train@<name> stages unchanged."""
    plan = load_plan(spec, profile)
    folder = Path(out) / plan.name / "plan"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in plan.names:
        text = json.dumps(plan.only(name).to_dict(), indent=2, sort_keys=True) + "\n"
        path = folder / f"{name}.json"
        if not path.exists() or path.read_text() != text:
            atomic_write(path, lambda f, t=text: f.write(t.encode()))
        written.append(path)
    for old in folder.glob("*.json"):
        if old not in written:
            old.unlink()
    return written
