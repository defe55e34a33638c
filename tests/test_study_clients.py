"""What each client shows of a study: MLflow (the parent run, trial runs, experiment kind),
optuna-dashboard and the optuna CLI (plain PostgreSQL URL, metric names), conditional
parameters, DVC (metrics.json order, `make exps`) and the terminal (progress bar, repro.sh)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import yaml

from nst.provenance import sha256_file
from nst.study.objective import StudyOptions
from nst.study.runner import run_study
from nst.study.spec import SpecError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
BIN = Path(sys.executable).parent


def smoke(name: str, trials: int = 2):  # type: ignore[no-untyped-def]
    return load_experiment(EXPERIMENTS / f"{name}.yaml").with_profile("smoke", trials=trials)


def study_of(tmp_path: Path, spec, **opts) -> optuna.Study:  # type: ignore[no-untyped-def]
    storage = opts.pop("storage", f"sqlite:///{tmp_path / 'optuna.db'}")
    run_study(spec, StudyOptions(out=tmp_path / "results", storage=storage, **opts))
    return optuna.load_study(study_name=spec.name, storage=storage)


# ------------------------------------------------------------------------------ MLflow


def test_parent_run_shows_spec_data_best_values_and_counts_and_trials_hash_their_inputs(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = smoke("loss_weights", trials=1)
    study = study_of(tmp_path, spec, tracking_uri=uri)
    client = MlflowClient(uri)
    parent_id = study.user_attrs["mlflow"]["parent_run_id"]
    parent = client.get_run(parent_id)
    params = parent.data.params
    assert params["search.style_ratio"] == "loguniform(0.1, 1e+07)"
    # no --backbone: the spec's own network, named as a param and how it was chosen as tags
    assert params["backbone"] == "vgg19"
    assert parent.data.tags["nst.backbone.rule"] == "spec -> vgg19 (the spec's own)"
    assert parent.data.tags["nst.judge"] == "efficientnet_lite2"  # a pretrained judge scored it
    assert params["profile"] == "smoke" and params["sampler"] == "nsga2"
    assert params["objectives"] == "ssim (maximize), style_gram_dist (minimize)"
    assert params["fixed.size"] == "32" and params["pairs.count"] == "1"
    # the data the pairs came from (here the embedded sample) and its lock
    lock = tmp_path / "results" / ".cache" / "embedded"
    from nst.data.lock import lock_hash

    assert parent.data.tags["nst.data_lock_sha256"] == lock_hash(lock)
    assert parent.data.tags["nst.data.source"] == "embedded"
    metrics = parent.data.metrics
    (trial,) = study.trials
    assert metrics["best/ssim"] == pytest.approx(trial.values[0])
    assert metrics["best/style_gram_dist"] == pytest.approx(trial.values[1])
    assert (metrics["trials/complete"], metrics["trials/pruned"], metrics["trials/failed"]) == (
        1,
        0,
        0,
    )
    # each trial's run carries the sha256 of the images it read
    run = client.get_run(trial.user_attrs["mlflow_run_id"])
    pair = trial.user_attrs["pairs"][0]
    assert run.data.tags["nst.data.pair0/content"] == sha256_file(Path(pair["content"]))
    assert run.data.tags["nst.data.pair0/style"] == sha256_file(Path(pair["style"]))

    # a resume updates the same parent: a second point per chart, the params kept
    study = study_of(tmp_path, smoke("loss_weights", trials=2), tracking_uri=uri)
    assert study.user_attrs["mlflow"]["parent_run_id"] == parent_id
    history = client.get_metric_history(parent_id, "trials/complete")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == [1, 2]
    assert client.get_run(parent_id).data.params == params


def test_every_experiment_nst_creates_or_uses_opens_in_model_development_view(
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient

    from nst.tracking.runs import start_parent_run

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment("older", artifact_location=(tmp_path / "a").as_uri())
    start_parent_run("p", tracking_uri=uri, experiment="older")  # an experiment it uses
    start_parent_run("q", tracking_uri=uri, experiment="fresh")  # one it creates
    for experiment in (client.get_experiment(old), client.get_experiment_by_name("fresh")):
        assert experiment is not None
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


# ------------------------------------------------------------------------------ Optuna clients


def test_the_dashboard_names_the_objectives_after_the_metrics(tmp_path: Path) -> None:
    study = study_of(tmp_path, smoke("loss_weights", trials=1), track=False)
    assert study.metric_names == ["ssim", "style_gram_dist"]


def _postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=2).close()
    except Exception:
        return False
    return True


@pytest.mark.postgres
@pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_the_url_given_to_nst_study_works_as_is_in_optuna_and_its_cli(tmp_path: Path) -> None:
    spec = replace(smoke("layers", trials=1), name=f"test_clients_{uuid.uuid4().hex[:8]}")
    try:
        run_study(spec, StudyOptions(out=tmp_path, storage=POSTGRES, track=False))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        code = (
            "import optuna; s = optuna.load_study(study_name=%r, storage=%r); print(len(s.trials))"
        )
        load = subprocess.run(
            [sys.executable, "-c", code % (spec.name, POSTGRES)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert load.returncode == 0 and load.stdout.strip() == "1", load.stderr[-2000:]
        cli = subprocess.run(
            [str(BIN / "optuna"), "studies", "--storage", POSTGRES, "-f", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 0, cli.stderr[-2000:]
        assert spec.name in {s["name"] for s in json.loads(cli.stdout)}
    finally:
        optuna.delete_study(study_name=spec.name, storage=POSTGRES)


# ------------------------------------------------------------------------------ conditional params


def test_a_conditional_parameter_is_drawn_only_where_it_applies() -> None:
    from nst.study.space import suggest

    spec = smoke("init", trials=24)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = {}

    def objective(trial: optuna.Trial) -> float:
        configs[trial.number] = suggest(trial, spec)
        return 0.0

    study.optimize(objective, n_trials=24)
    inits = {t.params["init"] for t in study.trials}
    assert inits == {"content", "style", "noise", "blend"}
    for t in study.trials:
        assert ("init_blend" in t.params) == (t.params["init"] == "blend"), t.params
        if "init_blend" in t.params:
            assert configs[t.number].init_blend == t.params["init_blend"]


def test_the_init_study_records_init_blend_only_for_blend_trials(tmp_path: Path) -> None:
    spec = smoke("init", trials=3)
    spec = replace(spec, sampler="random")  # all four inits within a few trials, any seed
    study = study_of(tmp_path, spec, track=False, seed=3)
    assert len(study.trials) == 3
    for t in study.trials:
        assert ("init_blend" in t.params) == (t.params["init"] == "blend"), t.params


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"inti": "blend"}, "search.init_blend.when.inti: not a categorical field searched above"),
        ({"init": "blended"}, "search.init_blend.when.init: 'blended' is not one of"),
    ],
)
def test_a_bad_condition_is_one_line_naming_the_key(when: dict, message: str) -> None:
    data = yaml.safe_load((EXPERIMENTS / "init.yaml").read_text())
    data["search"]["init_blend"]["when"] = when
    with pytest.raises(SpecError) as err:
        parse_experiment(data, "init.yaml")
    assert str(err.value).startswith(f"init.yaml: {message}")


# ------------------------------------------------------------------------------ DVC


def test_metrics_json_puts_the_best_values_first(tmp_path: Path) -> None:
    study_of(tmp_path, smoke("loss_weights", trials=1), track=False)
    keys = list(json.loads((tmp_path / "results" / "loss_weights" / "metrics.json").read_text()))
    assert keys[:2] == ["best_ssim", "best_style_gram_dist"] and "n_trials" in keys


def git_dvc_repo(repo: Path, *scripts: str) -> None:
    """`repo` as a git repository holding ROOT's `scripts`; `dvc init` is left to the caller."""
    (repo / "scripts").mkdir(parents=True)
    for name in scripts:
        shutil.copy(ROOT / "scripts" / name, repo / "scripts")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)


def commit(repo: Path, message: str) -> None:
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True)


# the stages' metrics.json as nst.study.outputs (per study, from its budget) and nst.methods.run
# (per method) write them
WRITE_METRICS = """import json, pathlib, sys
name, trials = sys.argv[1], int(sys.argv[2])
n = trials or 8
best = {"best_ssim": 0.5 + n / 100, "best_style_gram_dist": 1 / n}
if name == "optimizers":
    best = {"best_total": 1234.5678 * n}
counts = {"n_trials": n, "n_complete": n - 1, "n_pruned": 1, "n_failed": 0, "n_skipped_images": 0}
means = {"pairs": 4.0, "seconds": 12.345678, "peak_memory_mb": 2048.25, "ssim": 0.4567891,
         "style_gram_dist": 0.0123456}
metrics = {**best, **counts} if name != "methods" else {m: means for m in ("gatys", "adain")}
pathlib.Path("results", name).mkdir(parents=True, exist_ok=True)
pathlib.Path("results", name, "metrics.json").write_text(json.dumps(metrics))
"""


def test_make_exps_shows_each_studys_best_values_in_100_columns(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    git_dvc_repo(repo, "exps.py")
    (repo / "write.py").write_text(WRITE_METRICS)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["experiments"] = ["loss_weights", "optimizers", "train_johnson"]
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    stages = {
        "study": {
            "foreach": "${experiments}",
            "do": {
                "cmd": f"{sys.executable} write.py ${{item}} ${{study.trials}}",
                "params": ["profile", "study"],
                "metrics": [{"results/${item}/metrics.json": {"cache": False}}],
            },
        },
        "methods": {
            "cmd": f"{sys.executable} write.py methods 0",
            "metrics": [{"results/methods/metrics.json": {"cache": False}}],
        },
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    # make's setup prerequisites, older than the stamp: `make exps` does not set up again
    for part in ("pyproject.toml", "requirements.lock", "scripts/setup.sh"):
        (repo / part).touch()
    stamp = repo / "stamp"
    stamp.touch()
    os.utime(stamp, (stamp.stat().st_atime + 10, stamp.stat().st_mtime + 10))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "COLUMNS": "100"}
    dvc = [str(BIN / "dvc")]
    subprocess.run([*dvc, "init", "-q"], cwd=repo, check=True, env=env)
    subprocess.run([*dvc, "repro", "-q"], cwd=repo, check=True, env=env)
    commit(repo, "baseline")
    subprocess.run(
        [
            *dvc,
            "exp",
            "run",
            "-q",
            "-n",
            "three-smoke-trials",
            "-S",
            "study.trials=3",
            "-S",
            "profile=smoke",
        ],
        cwd=repo,
        check=True,
        env=env,
    )
    shown = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "exps", f"BIN={BIN}", "STAMP=stamp"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 100, shown.stdout
    assert "…" not in shown.stdout, shown.stdout  # nothing cut
    tables = {line.split()[1]: i for i, line in enumerate(lines) if line.startswith("== ")}
    assert list(tables) == ["loss_weights", "optimizers", "train_johnson", "methods"]

    def row(table: str, label: str) -> list[str]:
        return next(line.split() for line in lines[tables[table] :] if line.startswith(label))

    i = tables["loss_weights"]
    assert lines[i + 1].split() == [
        "experiment",
        "created",
        "profile",
        "budget",
        "complete",
        "ssim",
        "style_gram_dist",
    ]
    # the baseline: the profile's budget, 7 of 8 trials complete, the best values
    assert row("loss_weights", "main")[3:] == ["quick", "profile", "7/8", "0.58", "0.125"]
    # the experiment below it: its own budget and profile
    assert row("loss_weights", "└")[1:2] + row("loss_weights", "└")[-5:] == [
        "three-smoke-trials",
        "smoke",
        "3",
        "2/3",
        "0.53",
        "0.3333",
    ]
    assert row("optimizers", "└")[-2:] == ["2/3", "3704"]  # best_total 3703.7, whole
    # the methods' means: one row per method, every mean
    assert lines[tables["methods"] + 1].split() == [
        "experiment",
        "name",
        "pairs",
        "seconds",
        "peak_memory_mb",
        "ssim",
        "style_gram_dist",
    ]
    assert row("methods", "workspace")[1:] == ["gatys", "4", "12.35", "2048", "0.4568", "0.01235"]


# ------------------------------------------------------------------------------ terminal


def test_the_progress_bar_counts_trials_against_the_budget_and_shows_the_best() -> None:
    from optuna.distributions import FloatDistribution

    from nst.study.progress import StudyProgress

    spec = smoke("loss_weights", trials=8)
    study = optuna.create_study(directions=["maximize", "minimize"])
    progress = StudyProgress(spec, study, disable=False, file=io.StringIO())
    assert progress.postfix == "complete=0 pruned=0 failed=0" and progress.bar.n == 0
    s = optuna.trial.TrialState
    d = {"style_ratio": FloatDistribution(1, 10)}
    for state, values in (
        (s.COMPLETE, [0.4, 0.2]),
        (s.COMPLETE, [0.6, 0.3]),
        (s.PRUNED, None),
        (s.FAIL, None),
    ):
        trial = optuna.create_trial(
            state=state, values=values, params={"style_ratio": 2.0}, distributions=d
        )
        study.add_trial(trial)
        progress(study, study.trials[-1])
    assert progress.postfix == "complete=2 pruned=1 failed=1 best ssim=0.6 style_gram_dist=0.2"
    assert (progress.bar.n, progress.bar.total) == (4, 8)
    assert "4/8" in str(progress.bar)
    progress.close()


PIPELINE = {
    "stages": {  # fetch -> study@a, study@b -> report; a study fails on "fail" in its input
        "fetch": {"cmd": "echo fetched > data.txt", "outs": ["data.txt"]},
        "study": {
            "foreach": ["a", "b"],
            "do": {
                "cmd": "grep -qv fail input_${item}.txt && cat data.txt > study_${item}.txt && echo studied ${item}",
                "deps": ["data.txt", "input_${item}.txt"],
                "outs": ["study_${item}.txt"],
            },
        },
        "report": {
            "cmd": "cat study_a.txt study_b.txt > report.txt",
            "deps": ["study_a.txt", "study_b.txt"],
            "outs": ["report.txt"],
        },
    }
}


def test_make_repro_shows_the_stages_run_and_sums_up_the_unchanged(tmp_path: Path) -> None:
    git_dvc_repo(tmp_path, "repro.sh", "repro_progress.py")  # repro.sh runs `dvc init`
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (tmp_path / "params.yaml").write_text("profile: smoke\n")
    for name in ("a", "b"):
        (tmp_path / f"input_{name}.txt").write_text("ok\n")
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(sys.executable)

    def repro() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(tmp_path / "scripts" / "repro.sh")],
            env={**os.environ, "DVC": str(BIN / "dvc")},
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = repro()
    assert first.returncode == 0, first.stderr
    out = first.stdout.splitlines()
    headers = [line for line in out if line.startswith("== [")]
    assert headers == [
        "== [1/4] fetch ==",
        "== [2/4] study@a ==",
        "== [3/4] study@b ==",
        "== [4/4] report ==",
    ], first.stdout
    assert "studied a" in out and "== 4 stages run, 0 unchanged ==" in out  # the stages' output
    assert any(line.startswith("== make repro: done in") for line in out)
    # a no-op: one line for the unchanged stages, not one each, and no guide to the outputs
    again = repro()
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[0] == "pipeline up to date: 4 stages unchanged"
    assert len(again.stdout.splitlines()) == 2 and "didn't change" not in again.stdout
    # one study's input edited: that study runs (the report's input is the same: it does not)
    (tmp_path / "input_b.txt").write_text("still ok\n")
    third = repro().stdout.splitlines()
    assert [line for line in third if line.startswith("==")][:2] == [
        "== [3/4] study@b ==",
        "== 1 stage run, 3 unchanged ==",
    ]
    # a failing stage: the exit status and DVC's error, nothing said to be up to date
    (tmp_path / "input_a.txt").write_text("fail\n")
    failed = repro()
    assert failed.returncode != 0 and "study@a" in failed.stderr, failed.stderr
    assert "== [2/4] study@a ==" in failed.stdout and "up to date" not in failed.stdout


def test_make_exps_without_dvc_output_is_one_line() -> None:
    """When `dvc exp show` fails (it prints why) or the script runs alone, the table script
    says in one line what it needed, exit 2, no traceback."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "exps.py")],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "dvc exp show --json" in done.stderr
