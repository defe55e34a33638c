"""The DVC pipeline (dvc.yaml + params.yaml): structure, and end to end in a temporary git+DVC
repository with the smoke profile and two experiments.

The end-to-end test checks what a user relies on: `dvc repro` completes; a second `dvc repro`
runs nothing; editing one experiment file re-runs only that study and the report; editing one
method of experiments/methods.yaml retrains only that method (then the evaluation and the
report); a study re-run replaces its study rather than adding trials; `dvc exp run -S
study.trials=3` records the parameter and its metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_DATA
EXPERIMENTS = ("loss_weights", "optimizers")  # two quick ones
COMPARISONS = ("style_losses",)  # the params.yaml comparisons, smoke profile


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def ran(output: str) -> set[str]:
    """Stages that `dvc repro` ran (not skipped)."""
    return set(re.findall(r"Running stage '([^']+)'", output))


# ------------------------------------------------------------------------------ structure


def test_every_experiment_in_params_has_a_study_stage() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["profile"] in ("smoke", "quick", "full")
    for name in params["experiments"]:
        assert (ROOT / "experiments" / f"{name}.yaml").is_file(), name
    out = dvc(ROOT, "stage", "list", "--all").stdout
    stages = {line.split()[0] for line in out.splitlines() if line.strip()}
    trained = {f"train@{n}" for n in params["methods"]["train"]}
    assert stages == {
        "fetch",
        "report",
        "methods-plan",
        "methods",
        *trained,
        *(f"study@{n}" for n in params["experiments"]),
        *(f"compare@{n}" for n in params["comparisons"]),
    }


def test_the_train_stages_are_the_specs_trained_methods() -> None:
    """params.yaml methods.train lists exactly the trained methods of the spec: a method
    missing there would have no train@ stage, and `nst methods --step evaluate` would stop."""
    from nst.methods.spec import load_plan

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for profile in ("smoke", "quick", "full"):
        plan = load_plan(ROOT / params["methods"]["spec"], profile)
        trained = [m.name for m in plan.methods if m.trained] + list(plan.left_out)
        assert sorted(params["methods"]["train"]) == sorted(trained)  # left out: LEFT_OUT.txt


def test_stages_declare_deps_params_outs_and_metrics() -> None:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    study = pipeline["study"]
    assert study["foreach"] == "${experiments}"  # one template, no copy-pasted stages
    do = study["do"]
    assert "experiments/${item}.yaml" in do["deps"] and "data/lock.json" in do["deps"]
    assert "--fresh" in do["cmd"] and "--trials ${study.trials}" in do["cmd"]
    assert {"profile", "study"} <= set(do["params"])
    assert do["metrics"] == [{"results/${item}/metrics.json": {"cache": False}}]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in do["outs"]]
    assert not any("optuna.db" in o or "mlflow" in o for o in outs)  # stores accumulate
    assert "data" in pipeline["fetch"]["params"]
    assert "results" in pipeline["report"]["deps"] and pipeline["report"]["outs"] == ["reports"]
    assert "analytics = false" in (ROOT / ".dvc" / "config").read_text()


def test_dag_runs_fetch_then_each_study_and_the_methods_then_the_report() -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    names, trained = params["experiments"], params["methods"]["train"]
    edges = set(re.findall(r'"([^"]+)" -> "([^"]+)"', dvc(ROOT, "dag", "--dot").stdout))
    expected = {("fetch", f"study@{n}") for n in names} | {(f"study@{n}", "report") for n in names}
    expected |= {("fetch", f"train@{n}") for n in trained}
    expected |= {("methods-plan", f"train@{n}") for n in trained}
    expected |= {(f"train@{n}", "methods") for n in trained}
    expected |= {("fetch", "methods"), ("methods-plan", "methods"), ("methods", "report")}
    expected |= {(f"train@{n}", "report") for n in trained} | {("methods-plan", "report")}
    compared = params["comparisons"]
    expected |= {("fetch", f"compare@{n}") for n in compared}
    expected |= {(f"compare@{n}", "report") for n in compared}
    assert edges == expected


def test_fresh_deletes_only_that_study_and_its_trial_files(tmp_path: Path) -> None:
    import optuna

    from nst.cli.study import start_over

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=url).optimize(lambda t: 1.0, n_trials=1)
        for part in ("images", "curves"):
            (tmp_path / name / part).mkdir(parents=True)
    start_over("a", url, tmp_path / "a")
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["b"]
    assert not (tmp_path / "a" / "images").exists() and not (tmp_path / "a" / "curves").exists()
    assert (tmp_path / "b" / "images").is_dir()
    start_over("never-ran", url, tmp_path / "never-ran")  # nothing to delete: no error


# ------------------------------------------------------------------------------ end to end


def make_repo(tmp: Path) -> Path:
    """A git+DVC repo with the project's dvc.yaml, params.yaml (smoke profile, two
    experiments, stores inside tmp) and the files the stages depend on."""
    repo = tmp / "repo"
    repo.mkdir()
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / "nst", repo / "nst", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "experiments").mkdir()
    for name in (*EXPERIMENTS, "methods", *COMPARISONS):
        shutil.copy(ROOT / "experiments" / f"{name}.yaml", repo / "experiments")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    mirror = SHARED if (SHARED / "manifest.json").exists() else tmp / "no-mirror"
    mirror.mkdir(exist_ok=True)  # an empty mirror: the fetch falls back to the embedded sample
    params.update(profile="smoke", experiments=list(EXPERIMENTS))
    # 3 of each: the smallest data a train / validation / test split takes (nst.data.split)
    params["data"].update(content=3, styles=3, manifests="classic", mirror=str(mirror))
    params["tracking"]["uri"] = f"sqlite:///{repo / 'mlflow.db'}"
    params["report"]["reconstruction_steps"] = 0
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("/mlflow.db\n/mlartifacts/\n/optuna.db\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    return repo


def commit(repo: Path, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True)


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_repro_noop_partial_rerun_and_exp_run(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    methods = {"methods-plan", "train@johnson", "train@adain", "train@stytr", "methods"}
    compare = {f"compare@{n}" for n in COMPARISONS}
    all_stages = {"fetch", "report", *methods, *compare, *(f"study@{n}" for n in EXPERIMENTS)}

    # 1. the whole pipeline runs
    first = dvc(repo, "repro")
    assert ran(first.stdout) == all_stages, first.stdout
    for name in EXPERIMENTS:
        folder = repo / "results" / name
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["n_trials"] == 2  # the smoke budget
        assert (folder / "optuna.db").is_file() and list((folder / "images").glob("*.png"))
    assert (repo / "reports" / "index.html").is_file()
    assert "Methods compared" in (repo / "reports" / "index.html").read_text()
    assert json.loads((repo / "data" / "lock.json").read_text())["files"]
    means = json.loads((repo / "results" / "methods" / "metrics.json").read_text())
    assert set(means) == {"gatys", "strotss", "johnson", "cin", "adain", "stytr"}
    assert means["adain"]["pairs"] == 1
    assert "Methods compared: style_losses" in (repo / "reports" / "index.html").read_text()
    models = {
        n: (repo / "results" / "methods" / "runs" / n).rglob("model.pt")
        for n in ("johnson", "cin", "adain", "stytr")
    }
    stamps = {n: [p.stat().st_mtime_ns for p in paths] for n, paths in models.items()}
    assert all(len(v) == 1 for v in stamps.values()), stamps
    commit(repo, "first run")

    # 2. nothing changed: nothing runs
    second = dvc(repo, "repro")
    assert ran(second.stdout) == set(), second.stdout
    assert "didn't change" in second.stdout

    # 3. one experiment edited: its study and the report, nothing else; the study is replaced
    before = json.loads((repo / "results" / "optimizers" / "summary.json").read_text())
    spec = repo / "experiments" / "optimizers.yaml"
    spec.write_text(spec.read_text().replace("step sizes", "learning rates"))
    status = json.loads(dvc(repo, "status", "--json").stdout)
    assert set(status) == {"study@optimizers"}, status
    third = dvc(repo, "repro")
    assert ran(third.stdout) == {"study@optimizers", "report"}, third.stdout
    metrics = json.loads((repo / "results" / "optimizers" / "metrics.json").read_text())
    assert metrics["n_trials"] == 2  # not 4: the re-run started afresh
    summary = json.loads((repo / "results" / "optimizers" / "summary.json").read_text())
    assert summary["description"].endswith("learning rates, at a fixed step budget.")
    assert summary["mlflow"]["parent_run_id"] != before["mlflow"]["parent_run_id"]
    images = sorted(p.name for p in (repo / "results" / "optimizers" / "images").glob("*.png"))
    assert images == ["trial000_pair0.png", "trial001_pair0.png"]  # trials that really ran
    commit(repo, "edit optimizers")

    # 3b. one method's settings edited: that method is retrained, the others are not
    spec = repo / "experiments" / "methods.yaml"
    text = spec.read_text()
    edited = text.replace(
        "adain: {encoder: efficientnet_lite0, encoder_layer: stage2, lr: 1.0e-3",
        "adain: {encoder: efficientnet_lite0, encoder_layer: stage2, lr: 2.0e-3",
    )
    assert edited != text
    spec.write_text(edited)
    fourth = dvc(repo, "repro")
    assert ran(fourth.stdout) == {"methods-plan", "train@adain", "methods", "report"}, fourth.stdout
    for n in stamps:
        now = [p.stat().st_mtime_ns for p in (repo / "results/methods/runs" / n).rglob("model.pt")]
        assert (now != stamps[n]) == (n == "adain"), (n, now, stamps[n])
    summary = json.loads((repo / "results" / "methods" / "summary.json").read_text())
    assert summary["methods"]["adain"]["config"]["lr"] == 2.0e-3
    assert ran(dvc(repo, "repro").stdout) == set()
    commit(repo, "edit adain")

    # 4. an experiment with another trial budget: the param and its metrics are recorded
    dvc(repo, "exp", "run", "-S", "study.trials=3")
    diff = json.loads(dvc(repo, "params", "diff", "--json").stdout)["params.yaml"]
    assert (diff["study.trials"]["old"], diff["study.trials"]["new"]) == (0, 3)
    shown = json.loads(dvc(repo, "metrics", "show", "--json").stdout)[""]["data"]
    for name in EXPERIMENTS:
        assert shown[f"results/{name}/metrics.json"]["data"]["n_trials"] == 3
    # the experiment is recorded beside its baseline commit, with its params and metrics
    baseline = next(
        r for r in json.loads(dvc(repo, "exp", "show", "--json").stdout) if r["rev"] != "workspace"
    )
    (exp,) = [rev["data"] for e in baseline["experiments"] or [] for rev in e["revs"]]
    assert exp["params"]["params.yaml"]["data"]["study"]["trials"] == 3
    assert exp["metrics"]["results/loss_weights/metrics.json"]["data"]["n_trials"] == 3
    assert baseline["data"]["params"]["params.yaml"]["data"]["study"]["trials"] == 0
