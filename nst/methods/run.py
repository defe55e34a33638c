"""`run_methods`: every method of experiments/methods.yaml on the same held-out pairs.

1. The split (nst.data.split): the first `pairs.content` photos and `pairs.styles` styles of
   its test part are evaluated; the networks train on its train and validation photos (the
   refit once the studies selected on validation); johnson trains one network per test style,
   adain and stytr on the train and validation styles (never a test style).
2. Training (nst.methods.training) into <out>/methods/runs/<method>/ (johnson: one network
   per style, runs/<method>/<style stem>/), reused while the config is the same.
3. Every method stylises every content x style pair through nst.methods.Stylizer (time and
   peak memory measured there) and nst.metrics.Evaluator judges it: one held-out network for
   every method, none of the networks any method's output depended on (loss networks,
   encoders), named on every row (results.csv `judge`) and per method in summary.json
   (methods.<name>.judge: the networks it depended on, the family it shares with the judge).
4. <out>/methods/results.csv (one row per method x pair), summary.json (split, configs,
   runs, networks, judge), metrics.json (each method's means of seconds, memory and
   the headline metrics, for `dvc metrics show`) and
   images/<method>/<content>__<style>.png are written into a
   staging folder and moved into place, so a failed run leaves the previous results whole.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from nst import __version__
from nst.data.split import Selection, select
from nst.imagefiles import atomic_write
from nst.images import load_image, save_image
from nst.methods.spec import MethodPlan, Plan, load_plan
from nst.methods.stylizer import Stylizer
from nst.methods.training import Hooks, Log, train_method
from nst.metrics import Evaluator
from nst.metrics.degenerate import degenerate
from nst.metrics.features import shared_family

FIXED_COLUMNS = (
    "method",
    "content",
    "style",
    "seconds",
    "peak_memory_mb",
    "image",
    "judge",
    "degenerate",
)
HEADLINE = ("ssim", "style_gram_dist")  # the content and the style metric of metrics.json


def _stylizers(
    plan: Plan,
    m: MethodPlan,
    split: Selection,
    runs: Path,
    log: Log,
    allow_train: bool,
    hooks: Hooks | None,
) -> tuple[dict[str, Stylizer], list[dict[str, Any]]]:
    """style name -> the Stylizer that stylises it ("*" for every style), and the runs."""
    if m.entry.kind == "onnx":
        return {"*": Stylizer.from_external(plan.external_config(m), m.name)}, []
    if not m.trained:
        return {"*": Stylizer.from_config(plan.optimisation_config(m), m.name, m.method)}, []
    records = train_method(plan, m, split, runs, log, allow_train=allow_train, hooks=hooks)
    if m.entry.style_bank:  # one network, each evaluated style its bank's entry (split.bank)
        model = runs.parent / records[0]["model"]
        banks = {}
        for i, s in enumerate(split.styles):
            banks[s.name] = Stylizer.from_checkpoint(model, m.name, device=plan.device)
            cast(Any, banks[s.name].model).select(i)
        return banks, records
    out = {
        r["style"]: Stylizer.from_checkpoint(runs.parent / r["model"], m.name, device=plan.device)
        for r in records
    }
    return out, records


def fit_memory(stylizers: dict[str, Stylizer], max_memory: str | None) -> None:
    """`--max-memory`: every image checked against it before it runs, a trained network's
    in the largest tile that fits when the whole image would not (Stylizer's module docstring)."""
    for s in stylizers.values():
        s.max_memory = max_memory
        s.tile = "auto" if max_memory and s.model is not None else s.tile


def run_methods(
    spec: str | Path,
    profile: str,
    data: str | Path,
    out: str | Path,
    *,
    log: Log = lambda _: None,
    train: bool = True,
    hooks: Hooks | None = None,
    max_memory: str | None = None,
) -> Path:
    """Run the comparison (module docstring); returns <out>/methods. train=False (--step
    evaluate, the DVC methods stage) uses the networks train@<method> made and trains none.
    `max_memory` (e.g. "4GB"): every image checked against it first (fit_memory)."""
    plan = load_plan(spec, profile)
    root = Path(out) / plan.name
    root.mkdir(parents=True, exist_ok=True)
    split = select(data, "test", plan.contents, plan.styles, root, plan.who)
    stage = root / f".staging-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"
    stage.mkdir()
    started = time.time()
    try:
        rows, methods, judge = _run(plan, split, root, stage, log, train, hooks, max_memory)
        _write(root, stage, plan, split, rows, methods, judge, Path(data), started)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root


def _run(
    plan: Plan,
    split: Selection,
    root: Path,
    stage: Path,
    log: Log,
    train: bool,
    hooks: Hooks | None,
    max_memory: str | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    built: dict[str, dict[str, Stylizer]] = {}
    methods: dict[str, Any] = {}
    for m in plan.methods:
        log(f"== {m.name} ({m.method}) ==")
        stylizers, runs = _stylizers(plan, m, split, root / "runs", log, train, hooks)
        fit_memory(stylizers, max_memory)
        networks: dict[str, dict[str, Any]] = {}
        for s in stylizers.values():
            for n in s.networks:
                networks[f"{n.role} {n.backbone} {n.weights}"] = n.to_dict()
        built[m.name] = stylizers
        methods[m.name] = {
            "method": m.method,
            "config": m.config,
            "runs": runs,
            "networks": list(networks.values()),
            "reference": m.reference,
            **({"train_size": plan.crop} if m.trained else {}),
        }
    # one judge for every method, so their numbers compare: none of the networks any method's
    # output depended on (loss networks, encoders)
    used = sorted({n["backbone"] for v in methods.values() for n in v["networks"]})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*no ImageNet.*")
        evaluator = Evaluator(used, judge=plan.judge)
    judge = evaluator.held_out
    for v in methods.values():
        mine = sorted({n["backbone"] for n in v["networks"]})
        v["judge"] = {
            "backbone": judge["backbone"],
            "depended_on": mine,
            "shared_family": shared_family(judge["backbone"], mine),
        }
    contents = [(p, load_image(p, size=plan.size)) for p in split.contents]
    styles = [(p, load_image(p, size=plan.size)) for p in split.styles]
    rows: list[dict[str, Any]] = []
    for m in plan.methods:
        log(f"== evaluate {m.name} (judge {judge['backbone']}) ==")
        stylizers = built[m.name]
        start = time.time()
        for cpath, content in contents:
            for spath, style in styles:
                stylizer = stylizers.get(spath.name) or stylizers["*"]
                done = stylizer.stylize(content, style)
                if done.tile:
                    log(f"  {cpath.name}: in tiles of {done.tile} px to fit --max-memory")
                ev = evaluator.evaluate(
                    content,
                    style,
                    done.image,
                    runtime_s=done.seconds,
                    peak_memory_mb=done.peak_memory_mb,
                )
                rel = Path("images") / m.name / f"{cpath.stem}__{spath.stem}.png"
                save_image(done.image, stage / rel)
                values = {
                    k: v for k, v in ev.values.items() if k not in ("runtime_s", "peak_memory_mb")
                }
                rows.append(
                    {
                        "method": m.name,
                        "content": cpath.name,
                        "style": spath.name,
                        "seconds": round(done.seconds, 4),
                        "peak_memory_mb": round(done.peak_memory_mb, 1),
                        "image": rel.as_posix(),
                        "judge": judge["backbone"],
                        "degenerate": degenerate(done.image, content),
                        **values,
                    }
                )
                log(f"  {cpath.name} x {spath.name}: {done.seconds:.2f} s")
        # when its stylisations and their judging ran (seconds since the epoch): the span of
        # its MLflow run, logged afterwards (nst.methods.tracking)
        methods[m.name]["evaluated"] = {"start": round(start, 3), "end": round(time.time(), 3)}
    return rows, methods, judge


def _write(
    root: Path,
    stage: Path,
    plan: Plan,
    split: Selection,
    rows: list[dict[str, Any]],
    methods: dict[str, Any],
    judge: dict[str, Any],
    data: Path,
    started: float,
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
        "spec": plan.path,
        "profile": plan.profile,
        "description": plan.description,
        "size": plan.size,
        "device": plan.device,
        "seed": plan.seed,
        "data": str(data),
        "data_source": source,
        "split": split.facts,
        "methods": methods,
        "judge": judge,
        "metrics": metrics,
        "random_weights_methods": random,
        "left_out": plan.left_out,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "nst_version": __version__,
        "started": round(started, 3),  # seconds since the epoch: the comparison run's start
    }
    old = root / f".old-{stage.name}"
    if (root / "images").exists():
        (root / "images").rename(old)
    (stage / "images").mkdir(exist_ok=True)
    (stage / "images").rename(root / "images")
    shutil.rmtree(old, ignore_errors=True)
    atomic_write(root / "results.csv", lambda f: f.write(buf.getvalue().encode()))
    text = json.dumps(summary, indent=2, default=str) + "\n"
    atomic_write(root / "summary.json", lambda f: f.write(text.encode()))
    # the headline metrics only: `dvc metrics show` puts every study's and method's in one row
    means = json.dumps(method_means(rows, methods, list(HEADLINE)), indent=2) + "\n"
    atomic_write(root / "metrics.json", lambda f: f.write(means.encode()))


def method_means(
    rows: list[dict[str, Any]], methods: dict[str, Any], metrics: list[str]
) -> dict[str, dict[str, float]]:
    """Per method, the mean over the held-out pairs of seconds, peak memory and `metrics`, and
    the number of pairs (metrics.json: the HEADLINE metrics; MLflow: every metric)."""
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        mine = [r for r in rows if r["method"] == name]
        means = {"pairs": float(len(mine))}
        for key in ("seconds", "peak_memory_mb", *metrics):
            values = [float(r[key]) for r in mine if r.get(key) not in (None, "")]
            if values:
                means[key] = round(sum(values) / len(values), 6)
        out[name] = means
    return out
