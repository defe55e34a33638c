"""`run_methods`: every method of experiments/methods.yaml on the same held-out pairs.

1. The held-out split (nst.methods.split): the first `pairs.content` photos are evaluated and
   never trained on; johnson trains one network per evaluation style, adain and stytr on the
   other styles.
2. Training (nst.train.train) into <out>/methods/runs/<method>/ (johnson:
   runs/<method>/<style stem>/, one per style); a run whose
   model.pt holds the same TrainConfig is reused, an interrupted one with the same config is
   resumed, and one with another config is deleted and retrained.
3. Every method stylises every content x style pair through nst.methods.Stylizer (time and
   peak memory measured there) and nst.metrics.Evaluator judges it (held-out network).
4. <out>/methods/results.csv (one row per method x pair), summary.json (split, configs,
   runs, networks, judge) and images/<method>/<content>__<style>.png are written into a
   staging folder and moved into place, so a failed run leaves the previous results whole.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nst import __version__
from nst.images import atomic_write, load_image, save_image
from nst.methods.spec import MethodPlan, Plan, load_plan
from nst.methods.split import Split, held_out_split
from nst.methods.stylizer import Stylizer
from nst.metrics import Evaluator
from nst.models.io import read_checkpoint
from nst.train.config import TrainConfig
from nst.train.loop import train

FIXED_COLUMNS = ("method", "content", "style", "seconds", "peak_memory_mb", "image")


def ensure_trained(config: TrainConfig, run: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """<run>/model.pt trained with `config`: reused, resumed or (re)trained (module doc)."""
    model, ckpt = run / "model.pt", run / "checkpoint.pt"
    same = False
    if model.exists():
        saved = read_checkpoint(model)["meta"].get("config") or {}
        if TrainConfig.from_dict(dict(saved)) == config:
            log(f"  {run.name}: trained already (same config), reused")
            return {"run": str(run), "model": str(model), "trained": False, "seconds": 0.0}
    elif ckpt.exists():
        saved = read_checkpoint(ckpt)["meta"].get("config") or {}
        same = TrainConfig.from_dict(dict(saved)) == config
    if run.exists() and not same:
        log(f"  {run.name}: another config in the folder, retraining")
        shutil.rmtree(run)
    log(f"  {run.name}: training {config.method}, {config.steps} steps")
    t0 = time.perf_counter()
    result = train(config, run, resume=same, progress=False)
    return {"run": str(run), "model": str(result.model), "trained": True,
            "seconds": round(time.perf_counter() - t0, 3)}  # fmt: skip


def _stylizers(
    plan: Plan, m: MethodPlan, split: Split, runs: Path, log: Callable[[str], None]
) -> tuple[dict[str, Stylizer], list[dict[str, Any]]]:
    """style name -> the Stylizer that stylises it ("*" for every style), and the runs."""
    if not m.trained:
        return {"*": Stylizer.from_config(plan.transfer_config(m), m.name)}, []
    if m.method == "johnson":
        targets = [(s.name, runs / m.name / s.stem, s) for s in split.styles]
    else:
        targets = [("*", runs / m.name, split.train_styles)]
    out, records = {}, []
    for key, run, style in targets:
        record = ensure_trained(plan.train_config(m, split.train, style), run, log)
        out[key] = Stylizer.from_checkpoint(record["model"], m.name, device=plan.device)
        # paths relative to <out>/methods/, so the report finds them wherever results/ moved
        rel = {k: Path(record[k]).relative_to(runs.parent).as_posix() for k in ("run", "model")}
        records.append({**record, **rel, "style": key})
    return out, records


def run_methods(
    spec: str | Path,
    profile: str,
    data: str | Path,
    out: str | Path,
    *,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """Run the comparison (module docstring); returns <out>/methods."""
    plan = load_plan(spec, profile)
    root = Path(out) / "methods"
    root.mkdir(parents=True, exist_ok=True)
    split = held_out_split(
        Path(data), root, plan.contents, plan.styles, train=any(m.trained for m in plan.methods)
    )
    stage = root / f".staging-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
    stage.mkdir()
    try:
        rows, methods, judge = _run(plan, split, root, stage, log)
        _write(root, stage, plan, split, rows, methods, judge, Path(data))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root


def _run(
    plan: Plan, split: Split, root: Path, stage: Path, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    used = {str(m.config.get(k)) for m in plan.methods for k in ("backbone", "encoder")}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no ImageNet.*")
        evaluator = Evaluator("efficientnet_lite2" if "efficientnet_lite2" in used else None,
                              judge=plan.judge)  # fmt: skip
    contents = [(p, load_image(p, size=plan.size)) for p in split.contents]
    styles = [(p, load_image(p, size=plan.size)) for p in split.styles]
    rows: list[dict[str, Any]] = []
    methods: dict[str, Any] = {}
    for m in plan.methods:
        log(f"== {m.name} ({m.method}) ==")
        stylizers, runs = _stylizers(plan, m, split, root / "runs", log)
        networks: dict[str, dict[str, Any]] = {}
        for s in stylizers.values():
            for n in s.networks:
                networks[f"{n.role} {n.backbone} {n.weights}"] = n.to_dict()
        methods[m.name] = {"method": m.method, "config": m.config, "runs": runs,
                           "networks": list(networks.values())}  # fmt: skip
        for cpath, content in contents:
            for spath, style in styles:
                stylizer = stylizers.get(spath.name) or stylizers["*"]
                done = stylizer.stylise(content, style)
                ev = evaluator.evaluate(content, style, done.image, runtime_s=done.seconds,
                                        peak_memory_mb=done.peak_memory_mb)  # fmt: skip
                rel = Path("images") / m.name / f"{cpath.stem}__{spath.stem}.png"
                save_image(done.image, stage / rel)
                values = {k: v for k, v in ev.values.items()
                          if k not in ("runtime_s", "peak_memory_mb")}  # fmt: skip
                rows.append({"method": m.name, "content": cpath.name, "style": spath.name,
                             "seconds": round(done.seconds, 4),
                             "peak_memory_mb": round(done.peak_memory_mb, 1),
                             "image": rel.as_posix(), **values})  # fmt: skip
                log(f"  {cpath.name} x {spath.name}: {done.seconds:.2f} s")
    return rows, methods, evaluator.held_out


def _write(
    root: Path,
    stage: Path,
    plan: Plan,
    split: Split,
    rows: list[dict[str, Any]],
    methods: dict[str, Any],
    judge: dict[str, str],
    data: Path,
) -> None:
    metrics = sorted({k for r in rows for k in r} - set(FIXED_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, [*FIXED_COLUMNS, *metrics], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    lock = data / "lock.json"
    source = json.loads(lock.read_text()).get("source", "") if lock.is_file() else ""
    random = sorted({m for m, v in methods.items() for n in v["networks"] if not n["pretrained"]})
    summary = {
        "spec": plan.path, "profile": plan.profile, "description": plan.description,
        "size": plan.size, "device": plan.device, "seed": plan.seed, "data": str(data),
        "data_source": source, "split": split.facts, "methods": methods, "judge": judge,
        "metrics": metrics, "random_weights_methods": random,
        "created": datetime.now(UTC).isoformat(timespec="seconds"), "nst_version": __version__,
    }  # fmt: skip
    old = root / f".old-{stage.name}"
    if (root / "images").exists():
        (root / "images").rename(old)
    (stage / "images").mkdir(exist_ok=True)
    (stage / "images").rename(root / "images")
    shutil.rmtree(old, ignore_errors=True)
    atomic_write(root / "results.csv", lambda f: f.write(buf.getvalue().encode()))
    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write(root / "summary.json", lambda f: f.write(text.encode()))
