"""Study outputs written exactly as the "Study outputs" contract describes them
(results/<study>/{trials.csv, curves.csv, images/, summary.json, metrics.json}), with random
numbers, so report tests can cover every section without running a study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def noise_png(path: Path, seed: int, size: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype("uint8")).save(path)
    return path


#: a pretrained judge (the default) and the old VGG judge with random weights
JUDGES = {
    True: {
        "backbone": "efficientnet_lite2",
        "weights": "imagenet:efficientnet-lite2-9656183e.pth",
        "sha256": "9" * 64,
        "pretrained": True,
        "judge": "efficientnet",
    },
    False: {
        "backbone": "vgg16",
        "weights": "random:seed=0",
        "sha256": "",
        "pretrained": False,
        "judge": "vgg",
    },
}


def fake_study(
    results: Path,
    data: Path,
    name: str,
    searched: dict[str, list[object]],
    objectives: list[tuple[str, str]],
    n: int = 6,
    random_weights: bool = True,
    curves: bool = True,
    importances: bool = True,
    judge_pretrained: bool | None = True,
) -> Path:
    root = results / name
    rng = np.random.default_rng(len(name))
    contents = [noise_png(data / "content" / f"photo{i}.png", i) for i in range(2)]
    styles = [noise_png(data / "style" / f"paint{i}.png", 10 + i) for i in range(2)]
    pairs = [(contents[0], styles[0]), (contents[1], styles[1]), (contents[0], styles[1])]
    weights = "random:seed=0" if random_weights else "imagenet:vgg19-dcbb9e9d.pth"
    rows, curve_rows = [], []
    for t in range(n):
        row: dict[str, object] = {"number": t, "state": "COMPLETE" if t < n - 1 else "PRUNED"}
        row.update({o: float(rng.random()) for o, _ in objectives})
        row.update({f"params_{p}": values[t % len(values)] for p, values in searched.items()})
        for metric in ("ssim", "style_gram_dist", "peak_memory_mb"):
            row[f"metric_{metric}"] = float(rng.random() * 10)
        row.update(
            duration_s=float(rng.random() * 5),
            mlflow_run_id=f"{t + 1:032x}",
            weights_identity=weights,
        )
        rows.append(row)
        for k in range(len(pairs)):
            noise_png(root / "images" / f"trial{t:03d}_pair{k}.png", 100 * t + k)
            for s in range(1, 11):
                content, style = 10 / s, 100 / s**2
                curve_rows.append(
                    dict(
                        trial=t,
                        pair=k,
                        step=s,
                        seconds=0.1 * s * (1 + t),
                        content=content,
                        style=style,
                        tv=0.1,
                        total=content + style + 0.1,
                    )
                )
    pd.DataFrame(rows).to_csv(root / "trials.csv", index=False)
    if curves:
        pd.DataFrame(curve_rows).to_csv(root / "curves.csv", index=False)
    best = [
        {
            "number": r["number"],
            "values": {o: r[o] for o, _ in objectives},
            "params": {p: r[f"params_{p}"] for p in searched},
            "images": [f"images/trial{r['number']:03d}_pair{k}.png" for k in range(len(pairs))],
            "pairs": [
                {
                    "content": str(c),
                    "style": str(s),
                    "result": f"images/trial{r['number']:03d}_pair{k}.png",
                }
                for k, (c, s) in enumerate(pairs)
            ],
            "mlflow_run_id": r["mlflow_run_id"],
        }
        for r in rows[:2]
    ]
    summary = {
        "study": name,
        "description": f"contract fixture: {name}",
        "objectives": [{"name": o, "direction": d} for o, d in objectives],
        "n_trials": n,
        "states": {"COMPLETE": n - 1, "PRUNED": 1},
        "best_trials": best,
        "importances": {o: {p: 1 / len(searched) for p in searched} for o, _ in objectives}
        if importances
        else {},
        "profile": "smoke",
        "storage": f"sqlite:///{results.parent / 'optuna.db'}",
        "provenance": {
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "git_dirty": False,
            "data_lock_sha256": "f" * 64,
            "params": {"profile": "smoke", "study": {"trials": n}},
            "started": "2026-11-23T09:00:00+00:00",
            "finished": "2026-11-23T09:05:00+00:00",
            "host": "testhost",
            "weights": [weights],
            "random_weights": random_weights,
            "backbones": [
                {"backbone": b, "weights": weights, "pretrained": not random_weights, "trials": 3}
                for b in map(str, searched.get("backbone", ["vgg19"]))
            ],
            "judges": [] if judge_pretrained is None else [JUDGES[judge_pretrained]],
            "judge_pretrained": judge_pretrained,
            "versions": {"torch": "2.14.1"},
        },
        "mlflow": {
            "tracking_uri": f"sqlite:///{results.parent / 'mlflow.db'}",
            "experiment": name,
            "experiment_id": "7",
            "parent_run_id": "e" * 32,
        },
    }
    (root / "summary.json").write_text(json.dumps(summary, indent=1))
    (root / "metrics.json").write_text(
        json.dumps({"n_complete": n - 1, "n_pruned": 1, "n_failed": 0})
    )
    return root


def three_studies(tmp: Path, random_weights: bool = True) -> Path:
    """A backbone, an optimiser and an initialisation comparison; returns the results folder."""
    results, data = tmp / "results", tmp / "data"
    both = [("ssim", "maximize"), ("style_gram_dist", "minimize")]
    fake_study(
        results,
        data,
        "backbones",
        {"backbone": ["vgg19", "deit_tiny"], "beta": [1e3, 1e4, 1e5]},
        both,
        random_weights=random_weights,
    )
    fake_study(
        results,
        data,
        "optimizers",
        {"optimizer": ["adam", "lbfgs", "sgd"], "lr": [0.01, 0.1, 1.0]},
        [("total_loss", "minimize")],
        random_weights=random_weights,
    )
    fake_study(
        results, data, "init", {"init": ["content", "noise"]}, both, random_weights=random_weights
    )
    return results
