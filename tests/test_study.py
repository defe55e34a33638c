"""Optuna studies from experiment files: validation, smoke runs, resume, workers, pruning, MLflow."""

from __future__ import annotations

import csv
import json
import sys
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest
import yaml

from nst import NstError
from nst.cli import main as cli_main
from nst.study.objective import Resources, StudyOptions, TransferTrials
from nst.study.pairs import choose_pairs, spread_pairs
from nst.study.pruners import ScoutedHalvingPruner, make_pruner, warmup_reports
from nst.study.runner import run_study
from nst.study.spec import load_experiment, parse_experiment

#: the study specs among experiments/*.yaml (`nst methods` files, with `methods:`, are not studies)
EXPERIMENTS = sorted(
    p
    for p in (Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml")
    if "methods" not in (yaml.safe_load(p.read_text()) or {})
)
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"

BASE = {
    "name": "t",
    "search": {"style_ratio": {"type": "float", "low": 1.0e2, "high": 1.0e6}},
    "objectives": [{"metric": "total"}],
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize(
    ("change", "key", "fix"),
    [
        ({"serch": {}}, "serch", "valid keys"),
        ({"search": {"lr": {"type": "float", "low": "fast", "high": 1}}}, "search.lr", "numbers"),
        ({"search": {"lr": {"type": "float", "low": 0.5, "high": 0.1}}}, "search.lr", "below high"),
        ({"search": {"steps": {"type": "float", "low": 1, "high": 9}}}, "search.steps.type", "int"),
        (
            {"search": {"optimizer": {"type": "categorical", "choices": ["adam", "rmsprop"]}}},
            "search.optimizer.choices",
            "one of",
        ),
        ({"objectives": [{"metric": "beauty"}]}, "objectives[0].metric", "known:"),
        (
            {"objectives": [{"metric": "ssim", "direction": "minimize"}]},
            "objectives[0].direction",
            "maximize",
        ),
        ({"fixed": {"stepz": 3}}, "fixed", "valid keys"),
        ({"sampler": "bayes"}, "sampler", "tpe"),
        ({"objectives": ["ssim", "style_gram_dist"], "pruner": "median"}, "pruner", "pruner: none"),
    ],
)
def test_spec_errors_are_one_line_naming_file_and_key(tmp_path, change, key, fix):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, **change}))
    with pytest.raises(NstError) as err:
        load_experiment(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}")
    assert fix in message


def test_a_broken_metrics_import_is_an_error_not_fewer_objectives(monkeypatch):
    """nst.metrics is part of nst: an ImportError inside it surfaces instead of leaving only
    the loss terms as objectives (and "ssim" then reported as an unknown metric)."""
    from nst.study.spec import metric_directions

    assert metric_directions()["ssim"] == "maximize"
    monkeypatch.setitem(sys.modules, "nst.metrics", None)
    with pytest.raises(ImportError, match="nst.metrics"):
        metric_directions()


def test_cli_reports_a_bad_spec_in_one_line_with_status_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**BASE, "budget": {"trials": "many"}}))
    assert cli_main(["study", str(path), "--profile", "smoke", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "budget.trials" in err


def test_ratios_map_to_weights_and_presets_apply():
    from nst.study.space import suggest

    spec = load_experiment(EXPERIMENTS[0].parent / "backbones.yaml").with_profile("smoke")
    trial = optuna.trial.FixedTrial({"backbone": "deit_small", "style_ratio": 10000.0})
    config = suggest(trial, spec)  # type: ignore[arg-type]
    assert (config.alpha, config.beta) == (1.0, 10000.0)
    # no presets in the file: each backbone brings its own layers (LAYER_PRESETS)
    assert config.content_layers == ("block8",) and config.style_layers[0] == "block1"
    lite = suggest(
        optuna.trial.FixedTrial({"backbone": "efficientnet_lite0", "style_ratio": 1.0e5}), spec
    )  # type: ignore[arg-type]
    assert lite.content_layers == ("stage3",) and lite.style_layers[0] == "stem"
    assert {p.name: p.choices for p in spec.search}["backbone"] == (
        "vgg19",
        "deit_small",
        "efficientnet_lite0",
    )


def test_a_profile_narrows_a_searched_field_and_never_adds_one():
    """backbones.yaml's quick profile compares the networks pretrained offline; the full
    profile keeps the experiment's own choices."""
    path = EXPERIMENTS[0].parent / "backbones.yaml"
    quick = load_experiment(path).with_profile("quick")
    assert {p.name: p.choices for p in quick.search}["backbone"] == (
        "efficientnet_lite0",
        "efficientnet_lite1",
        "efficientnet_lite2",
    )
    full = load_experiment(path).with_profile("full")
    assert "vgg19" in {p.name: p.choices for p in full.search}["backbone"]
    data = yaml.safe_load(path.read_text())
    data["profiles"]["quick"]["search"] = {"lr": {"type": "float", "low": 0.01, "high": 1.0}}
    with pytest.raises(
        NstError, match=r"profiles\.quick\.search\.lr: not searched by the experiment"
    ):
        parse_experiment(data, "x.yaml")


def run(tmp_path: Path, name: str, trials: int = 2, **opts) -> tuple[Path, optuna.Study]:
    spec = load_experiment(EXPERIMENTS[0].parent / f"{name}.yaml").with_profile(
        "smoke", trials=trials
    )
    storage = opts.pop("storage", f"sqlite:///{tmp_path / 'optuna.db'}")
    options = StudyOptions(out=tmp_path / "results", storage=storage, **{"track": False, **opts})
    out = run_study(spec, options)
    return out, optuna.load_study(study_name=spec.name, storage=storage)


def test_loss_weights_smoke_gives_a_pareto_front_outputs_and_mlflow_runs(tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out, study = run(tmp_path, "loss_weights", trials=3, track=True, tracking_uri=uri)
    summary = json.loads((out / "summary.json").read_text())
    assert [o["name"] for o in summary["objectives"]] == ["ssim", "style_gram_dist"]
    assert summary["n_trials"] == 3 and summary["profile"] == "smoke"
    table = rows(out / "trials.csv")
    assert {"params_style_ratio", "params_tv_ratio", "ssim", "metric_ms_ssim"} <= set(table[0])
    # the Pareto front: every listed trial is non-dominated among the complete ones
    points = [
        (float(r["ssim"]), float(r["style_gram_dist"])) for r in table if r["state"] == "COMPLETE"
    ]
    front = summary["best_trials"]
    assert front
    for best in front:
        s, g = best["values"]["ssim"], best["values"]["style_gram_dist"]
        assert not any(ps >= s and pg <= g and (ps, pg) != (s, g) for ps, pg in points)
        assert (out / best["images"][0]).is_file()
        assert best["pairs"][0]["content"] and best["pairs"][0]["style"]
    curves = rows(out / "curves.csv")
    assert {r["trial"] for r in curves} == {"0", "1", "2"} and len(curves) == 3 * 5
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_complete"] == 3 and "best_ssim" in metrics
    assert summary["importances"] or summary["importances_note"]
    # MLflow: one parent run, one nested run per trial with per-pair and objective metrics
    client = mlflow.MlflowClient(uri)
    parent = summary["mlflow"]["parent_run_id"]
    assert client.get_run(parent).data.tags["nst.study"] == "loss_weights"
    children = client.search_runs(
        [client.get_experiment_by_name(summary["mlflow"]["experiment"]).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent}'",
    )
    assert sorted(int(r.data.tags["nst.trial"]) for r in children) == [0, 1, 2]
    assert {"pair0/ssim", "objective/ssim", "objective/style_gram_dist"} <= set(
        children[0].data.metrics
    )
    assert {t.user_attrs["mlflow_run_id"] for t in study.trials} == {
        r.info.run_id for r in children
    }


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_each_shipped_experiment_runs_two_smoke_trials(tmp_path, path):
    out, study = run(tmp_path, path.stem)
    assert len(study.trials) == 2
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials), [
        t.user_attrs for t in study.trials
    ]
    table = rows(out / "trials.csv")
    assert [r["number"] for r in table] == ["0", "1"]
    assert all(r["weights_identity"] for r in table)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    for t in done:
        assert all((out / image).is_file() for image in t.user_attrs["images"])


def test_resume_adds_trials_to_the_same_study(tmp_path):
    out, study = run(tmp_path, "layers", trials=1)
    assert len(study.trials) == 1
    out, study = run(tmp_path, "layers", trials=2)
    assert [t.number for t in study.trials] == [0, 1]
    assert len(rows(out / "trials.csv")) == 2
    _, study = run(tmp_path, "layers", trials=2)  # budget reached: nothing more runs
    assert len(study.trials) == 2


@pytest.mark.parametrize("seed", range(5))
def test_a_studys_pairs_spread_over_the_photos_and_styles(seed):
    """A study's few pairs are as many photos and styles as it can have: no photo or style
    repeats until each has had its turn, the pairs are distinct, and the seed fixes them."""
    contents = [Path(f"c{k}.png") for k in range(6)]
    styles = [Path(f"s{k}.png") for k in range(4)]
    for count in (2, 4, 7, 23):
        pairs = spread_pairs(contents, styles, count, seed)
        assert len(set(pairs)) == count
        first = pairs[: min(count, len(styles))]
        assert len({p.content for p in first}) == len({p.style for p in first}) == len(first)
        assert pairs == spread_pairs(contents, styles, count, seed)
    assert len(spread_pairs(contents, styles, 30, seed)) == 24  # the whole grid, once


@pytest.mark.parametrize(
    "pruner", [{"type": "median", "n_startup_trials": 1}, {"type": "successive_halving"}]
)
def test_pruner_stops_a_trial_with_a_bad_intermediate_value(tmp_path, pruner):
    spec = parse_experiment({**BASE, "pruner": pruner}, "prune.yaml").with_profile("smoke")

    pairs = choose_pairs(spec, None, tmp_path / "cache")
    objective = TransferTrials(spec, pairs, tmp_path / "out", Resources())
    study = optuna.create_study(pruner=make_pruner(spec))
    study.enqueue_trial({"style_ratio": 1.0e2})
    study.enqueue_trial({"style_ratio": 1.0e6})  # a total loss 10^4 times larger at every step
    study.optimize(objective, n_trials=2)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    pruned = study.trials[1]
    assert len(pruned.intermediate_values) < len(study.trials[0].intermediate_values)
    # Optuna's step is the report number, the unit of the pruners' resources
    assert sorted(study.trials[0].intermediate_values) == list(range(1, spec.reports + 1))


@pytest.mark.parametrize("kind", ["median", "successive_halving", "hyperband"])
def test_pruners_do_not_judge_before_a_third_of_the_steps(kind):
    """A trial far worse than its peer at report 1 (of 6 per pair) is not pruned there; the
    same trial at report 2 is (hyperband: in its most aggressive bracket; the others start later)."""
    first = {"median": {"n_startup_trials": 1}, "successive_halving": {"scouts": 0}}
    spec = parse_experiment({**BASE, "pruner": {"type": kind, **first.get(kind, {})}}, "warm.yaml")
    spec = replace(spec, reports=6)
    assert warmup_reports(spec.reports) == 2
    study = optuna.create_study(pruner=make_pruner(spec))
    good = study.ask()
    for step in range(1, 13):
        good.report(1.0 / step, step)
        assert not good.should_prune()  # as TransferTrials asks after each report
    study.tell(good, 1.0 / 12)
    bad = study.ask()
    bad.report(100.0, 1)
    assert not bad.should_prune()
    bad.report(100.0, 2)
    if kind != "hyperband":
        assert bad.should_prune()


def test_halving_stops_its_scouts_at_the_first_rung_and_ranks_later_trials_against_them():
    """The first `scouts` trials stop at the first rung however good they are; their values
    are the first rung's competition, so a later trial must beat them to go on."""
    study = optuna.create_study(pruner=ScoutedHalvingPruner(scouts=2, min_resource=1))

    def first_rung(value: float) -> tuple[optuna.Trial, bool]:
        trial = study.ask()
        trial.report(value, 1)
        return trial, trial.should_prune()

    for value in (0.5, 0.6):  # the scouts: pruned, the first one although alone and best
        trial, pruned = first_rung(value)
        assert pruned
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    best, pruned = first_rung(0.4)  # beats both scouts: runs on to the end
    assert not pruned
    for step in range(2, 13):
        best.report(0.4 / step, step)
        assert not best.should_prune()
    study.tell(best, 0.4 / 12)
    worse, pruned = first_rung(0.45)  # better than the scouts, not in the best third
    assert pruned
    assert study.best_trial.number == 2


def test_halving_scouts_by_default_the_samplers_random_start_of_a_large_budget():
    spec = parse_experiment({**BASE, "pruner": "successive_halving"}, "scouts.yaml")
    assert make_pruner(replace(spec, budget={"trials": 20})).scouts == 5  # type: ignore[attr-defined]
    assert make_pruner(replace(spec, budget={"trials": 2})).scouts == 0  # type: ignore[attr-defined]
    plain = replace(spec, pruner={"type": "successive_halving", "scouts": 0})
    study = optuna.create_study(pruner=make_pruner(plain))
    trial = study.ask()
    trial.report(1.0, 1)
    assert not trial.should_prune()  # Optuna's own halving: the first trial runs on
    with pytest.raises(NstError, match="scouts must be >= 0"):
        make_pruner(replace(spec, pruner={"type": "successive_halving", "scouts": -1}))


def test_pruner_sees_the_held_out_metric_itself(tmp_path):
    """With a held-out network metric as the objective, the last report of a one-pair trial
    is the trial's value: the pruner ranks trials by what the study optimises."""
    spec = parse_experiment(
        {
            **BASE,
            "objectives": [{"metric": "style_gram_dist"}],
            "pruner": {"type": "median", "n_startup_trials": 100},
        },
        "exact.yaml",
    ).with_profile("smoke")
    pairs = choose_pairs(spec, None, tmp_path / "cache")[:1]
    objective = TransferTrials(
        replace(spec, pairs={**spec.pairs, "count": 1}), pairs, tmp_path / "out", Resources()
    )
    study = optuna.create_study()
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    last = trial.intermediate_values[max(trial.intermediate_values)]
    assert last == pytest.approx(trial.value, rel=1e-5)


def test_reports_are_spread_evenly_over_the_steps():
    from nst.study.objective import report_marks

    assert report_marks(60, 6) == {10: 1, 20: 2, 30: 3, 40: 4, 50: 5, 60: 6}
    assert report_marks(100, 3) == {33: 1, 67: 2, 100: 3}
    assert report_marks(3, 5) == {1: 1, 2: 2, 3: 3}  # fewer steps than reports


def _postgres_available() -> bool:
    try:
        import psycopg

        psycopg.connect(POSTGRES, connect_timeout=2).close()
    except Exception:
        return False
    return True


@pytest.mark.postgres
@pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL on 127.0.0.1:5432")
def test_two_workers_share_one_postgres_study_without_duplicates_or_losses(tmp_path):
    base = load_experiment(EXPERIMENTS[0].parent / "layers.yaml").with_profile("smoke", trials=4)
    spec = replace(base, name=f"test_workers_{uuid.uuid4().hex[:8]}")
    try:
        run_study(spec, StudyOptions(out=tmp_path, storage=POSTGRES, track=False, workers=2))
        study = optuna.load_study(study_name=spec.name, storage=POSTGRES)
        numbers = [t.number for t in study.trials]
        assert sorted(numbers) == [0, 1, 2, 3]
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
        assert len({t._trial_id for t in study.trials}) == 4
        assert len(rows(tmp_path / spec.name / "trials.csv")) == 4
    finally:
        optuna.delete_study(study_name=spec.name, storage=POSTGRES)
