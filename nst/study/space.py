"""The search space: a trial's suggestions -> its config (a TransferConfig, or the TrainConfig
of a training study), and the sampler that makes them."""

from __future__ import annotations

import math
from typing import Any

import optuna

from nst.study.fields import Config
from nst.study.pruners import startup_trials
from nst.study.spec import RATIOS, ExperimentSpec, Param, choice_label


def suggest(
    trial: optuna.Trial, spec: ExperimentSpec, base: dict[str, Any] | None = None
) -> Config:
    """Draw one config: fixed fields, then each searched field that applies (its `when`
    holds; ratios mapped to weights, categorical presets applied, lists of layers decoded from
    their 'a,b' labels), then `base` (what the study sets itself: a training study's data)."""
    values: dict[str, Any] = dict(spec.fixed)
    drawn: dict[str, Any] = {}  # the stored labels, which `when` conditions name
    for p in spec.search:
        if not p.applies(drawn):
            continue  # no such parameter in this trial: the field keeps its fixed/default value
        value = drawn[p.name] = _suggest_one(trial, p)
        if p.name in RATIOS:
            values.update({"alpha": 1.0, RATIOS[p.name]: value})
            continue
        if p.type == "categorical":  # decode the stored label back to the choice (a layer list)
            value = next(c for c in p.choices if choice_label(c) == value)
            values.update(p.presets.get(choice_label(value), {}))
            value = list(value) if isinstance(value, tuple) else value
        values[p.name] = value
    return spec.build({**values, **(base or {})})


def _suggest_one(trial: optuna.Trial, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(p.name, [choice_label(c) for c in p.choices])
    assert p.low is not None and p.high is not None
    if p.type == "int":
        return trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)


def grid_space(spec: ExperimentSpec) -> dict[str, list[Any]]:
    """The grid sampler's values per searched field (a grid has no `when`: spec.py checks)."""
    return {
        p.name: [choice_label(c) for c in p.choices]
        if p.type == "categorical"
        else list(range(int(p.low or 0), int(p.high or 0) + 1, int(p.step or 1)))
        for p in spec.search
    }


def grid_cells(spec: ExperimentSpec) -> int | None:
    """How many trials a grid study can run (then Optuna stops it, whatever the trial
    budget); None for the other samplers."""
    if spec.sampler != "grid":
        return None
    return math.prod(len(values) for values in grid_space(spec).values())


def make_sampler(spec: ExperimentSpec, seed: int) -> optuna.samplers.BaseSampler:
    s = optuna.samplers
    if spec.sampler == "grid":
        return s.GridSampler(grid_space(spec), seed=seed)
    startup = startup_trials(int(spec.budget["trials"]))
    return {
        "tpe": lambda: s.TPESampler(seed=seed, n_startup_trials=startup),
        "random": lambda: s.RandomSampler(seed=seed),
        "nsga2": lambda: s.NSGAIISampler(seed=seed, population_size=max(4, startup)),
        "nsga3": lambda: s.NSGAIIISampler(seed=seed, population_size=max(4, startup)),
        "cmaes": lambda: s.CmaEsSampler(seed=seed, n_startup_trials=startup),
    }[spec.sampler]()
