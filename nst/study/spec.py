"""Experiment files (experiments/*.yaml): what a study searches, holds fixed and optimises.

    name: loss_weights                  # the study name; outputs go to results/<name>/
    description: ...
    method: gatys                       # gatys (default) | a trained method (johnson, ...)
    fixed: {steps: 80, ...}             # config fields held constant
    search:                             # one entry per searched field (nst.study.params)
      style_ratio: {type: float, low: 1.0e+2, high: 1.0e+7, log: true}
      lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
      steps: {type: int, low: 10, high: 100, step: 10}
      style_layers: {type: categorical, choices: [[relu1_1, relu2_1], [relu3_1]]}
      backbone:
        type: categorical
        choices: [vgg19, deit_small]
        presets: {deit_small: {content_layers: [block8], style_layers: [block2, block5]}}
    objectives: [{metric: ssim, direction: maximize}, {metric: style_gram_dist}]
    pairs: {count: 2, seed: 0}          # training studies: {content: 1, styles: 1}
    budget: {trials: 20, timeout_s: 600}
    sampler: nsga2                      # tpe | random | grid | nsga2 | nsga3 | cmaes
    pruner: none                        # median | successive_halving | hyperband | none (or {type: median, ...})
    profiles: {smoke: {fixed: {...}, pairs: {...}, budget: {...}, search: {...}}}

`method` picks what a trial is (nst.study.fields): gatys optimises images, so `fixed`, `search`
and `profiles.<name>.fixed` name TransferConfig fields; johnson, adain and stytr train a network
(nst.study.training), so they name TrainConfig fields, and `pairs` says how many held-out
photos (`content`) and styles (`styles`, adain and stytr) the validation uses.

The total loss alpha*L_c + beta*L_s + gamma*L_tv is invariant (up to scale, which the
optimiser's step size absorbs for Adam) under multiplying all three weights, so only the
ratios matter: `style_ratio` = beta/alpha and `tv_ratio` = gamma/alpha are searched on a log
scale and mapped to alpha = 1, beta = style_ratio, gamma = tv_ratio.

A searched field with `when: {<field searched above it>: <choice or [choices]>}` is suggested
only in trials that drew one of those choices; the other trials have no such parameter (and
keep the field's default), so the sampler never spends trials on a value that changes nothing.

Every mistake is reported as one line: "<file>: <key>: <problem>; <fix>".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from nst import NstError
from nst.study.fields import GATYS_TERMS, RATIOS, Config, Fields, studied_methods
from nst.study.params import Param, choice_label, param_dict, parse_param
from nst.study.profiles import get_profile

LOSS_TERMS = GATYS_TERMS  # of an optimisation study (gatys)
SAMPLERS = ("tpe", "random", "grid", "nsga2", "nsga3", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
TOP_KEYS = (
    "name",
    "description",
    "method",
    "fixed",
    "search",
    "objectives",
    "pairs",
    "budget",
    "sampler",
    "pruner",
    "profiles",
)
#: `pairs` keys and defaults: optimisation studies draw content x style pairs; training
#: studies validate on the first `content` held-out photos (x the first `styles` styles)
PAIR_KEYS = {False: {"count": 2, "seed": 0}, True: {"content": 1, "styles": 1}}


class SpecError(NstError):
    """An experiment file is invalid."""


@dataclass(frozen=True)
class Objective:
    metric: str
    direction: Literal["minimize", "maximize"]


@dataclass(frozen=True)
class ExperimentSpec:
    name: str
    description: str
    fixed: dict[str, Any]
    search: tuple[Param, ...]
    objectives: tuple[Objective, ...]
    pairs: dict[str, int]  # {count, seed}; training studies {content, styles}
    budget: dict[str, float]  # {trials, timeout_s}
    sampler: str
    pruner: dict[str, Any]  # {type, **options}
    profiles: dict[str, dict[str, Any]]
    path: str = "<spec>"
    profile: str | None = None  # the profile applied, if any
    reports: int = 5  # intermediate values per pair (set by the profile)
    method: str = "gatys"  # gatys: trials optimise images; johnson, adain, stytr: they train

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def fields(self) -> Fields:
        return Fields(self.method)

    @property
    def trained(self) -> bool:
        """Trials train a feed-forward network (nst.study.training)."""
        return self.fields.trained

    @property
    def resources(self) -> int:
        """Reports per trial, the pruners' max resource: `reports` per pair of an optimisation
        study; `reports` validations of the one training run of a training study."""
        return self.reports if self.trained else self.reports * int(self.pairs["count"])

    def build(self, values: dict[str, Any]) -> Config:
        """A trial's config from plain values (TransferConfig, or TrainConfig of `method`)."""
        return self.fields.build(values)

    def with_profile(self, name: str, trials: int | None = None) -> ExperimentSpec:
        """This spec with a profile's sizes and budget and its own `profiles.<name>` overrides."""
        prof = get_profile(name, trained=self.trained)
        own = self.profiles.get(name, {})
        fixed = {**self.fixed, **prof.config, **own.get("fixed", {})}
        pairs = {**self.pairs, **prof.pairs, **own.get("pairs", {})}
        budget = {**self.budget, **prof.budget, **own.get("budget", {})}
        if trials is not None:
            if trials < 1:
                raise SpecError(f"--trials must be at least 1, got {trials}")
            budget["trials"] = trials
        fail = _failer(self.path)
        search = _profile_search(
            self.search, own.get("search", {}), f"profiles.{name}.search", fail, self.fields
        )
        spec = replace(
            self,
            fixed=fixed,
            pairs=pairs,
            budget=budget,
            search=search,
            profile=name,
            reports=prof.reports,
        )
        _check_fixed(spec.path, "profiles." + name, fixed, self.fields)
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain values for summaries and MLflow params."""
        return {
            "name": self.name,
            "description": self.description,
            "method": self.method,
            "fixed": self.fixed,
            "search": {p.name: param_dict(p) for p in self.search},
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "pairs": self.pairs,
            "budget": self.budget,
            "sampler": self.sampler,
            "pruner": self.pruner,
            "profile": self.profile,
            "reports": self.reports,
        }


def metric_directions(method: str = "gatys") -> dict[str, str]:
    """Objective names: the evaluation metrics (nst.metrics) and the method's loss terms (the
    final losses of an optimisation, the validation losses of a training run)."""
    from nst.metrics import METRICS  # imports torch: loaded when a spec is checked, not on import

    directions = {t: "minimize" for t in Fields(method).loss_terms()}
    directions.update({k: v.direction for k, v in METRICS.items()})
    return directions


def load_experiment(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}; check the path") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
    return parse_experiment(data, str(path))


def _failer(where: str) -> Any:
    """The error of a spec's key: `<file>: <key>: <what is wrong>`."""

    def fail(key: str, msg: str) -> SpecError:
        return SpecError(f"{where}: {key}: {msg}")

    return fail


def parse_experiment(data: Any, where: str = "<spec>") -> ExperimentSpec:
    fail = _failer(where)

    if not isinstance(data, dict):
        raise SpecError(f"{where}: an experiment must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise fail("name", "required: letters, digits, - and _ (it names results/<name>/)")
    method = data.get("method", "gatys")
    if method not in studied_methods():
        raise fail("method", f"{method!r} unknown; use one of {', '.join(studied_methods())}")
    kind = Fields(method)
    fixed = _mapping(data.get("fixed", {}), "fixed", fail)
    _check_fixed(where, "fixed", fixed, kind)
    search: tuple[Param, ...] = ()
    for key, raw in _mapping(data.get("search", {}), "search", fail).items():
        search += (parse_param(key, raw, search, fail, kind),)
    if not search:
        raise fail(
            "search", "empty; name at least one field to search, e.g. lr: {type: float, ...}"
        )
    searched = {p.name for p in search}
    if searched & set(RATIOS) and searched & {"alpha", "beta", "gamma"}:
        raise fail("search", "search either the ratios (style_ratio, tv_ratio) or alpha/beta/gamma")
    objectives = _objectives(data.get("objectives"), fail, method)
    keys = PAIR_KEYS[kind.trained]
    pairs = _ints(data.get("pairs", {}), "pairs", tuple(keys), keys, fail)
    budget = _ints(
        data.get("budget", {}),
        "budget",
        ("trials", "timeout_s"),
        {"trials": 20, "timeout_s": 0},
        fail,
    )
    small = [f"pairs.{k}" for k, v in pairs.items() if k != "seed" and v < 1]
    if small or budget["trials"] < 1:
        raise fail((small or ["budget.trials"])[0], "must be at least 1")
    sampler = data.get("sampler", "tpe" if len(objectives) == 1 else "nsga2")
    if sampler not in SAMPLERS:
        raise fail("sampler", f"{sampler!r} unknown; use one of {', '.join(SAMPLERS)}")
    if sampler == "cmaes" and len(objectives) > 1:
        raise fail("sampler", "cmaes optimises one objective; use nsga2 for several")
    if sampler == "grid":
        for p in search:
            if p.when:
                raise fail(
                    f"search.{p.name}.when",
                    "the grid sampler cannot skip a field; remove when or use another sampler",
                )
            if p.type == "float":
                raise fail(
                    f"search.{p.name}", "the grid sampler needs finite choices; use categorical"
                )
    pruner = data.get("pruner", "median" if len(objectives) == 1 else "none")
    pruner = {"type": pruner} if isinstance(pruner, str) else _mapping(pruner, "pruner", fail)
    if pruner.get("type") not in PRUNERS:
        raise fail("pruner", f"{pruner.get('type')!r} unknown; use one of {', '.join(PRUNERS)}")
    if pruner["type"] != "none" and len(objectives) > 1:
        raise fail("pruner", "Optuna cannot prune multi-objective trials; set pruner: none")
    profiles = _mapping(data.get("profiles", {}), "profiles", fail)
    for pname, over in profiles.items():
        get_profile(pname)
        over = _mapping(over, f"profiles.{pname}", fail)
        bad = sorted(set(over) - {"fixed", "pairs", "budget", "search"})
        if bad:
            raise fail(
                f"profiles.{pname}.{bad[0]}",
                "unknown key; valid keys: fixed, pairs, budget, search",
            )
        _profile_search(search, over.get("search", {}), f"profiles.{pname}.search", fail, kind)
        own = _mapping(over.get("fixed", {}), f"profiles.{pname}.fixed", fail)
        _check_fixed(where, f"profiles.{pname}.fixed", {**fixed, **own}, kind)
        _ints(over.get("pairs", {}), f"profiles.{pname}.pairs", tuple(keys), {}, fail)
    return ExperimentSpec(
        name=name,
        description=str(data.get("description", "")),
        fixed=fixed,
        search=search,
        objectives=objectives,
        pairs=pairs,
        budget=budget,
        sampler=sampler,
        pruner=pruner,
        profiles=profiles,
        path=where,
        method=method,
    )


def _profile_search(
    search: tuple[Param, ...], over: Any, where: str, fail: Any, kind: Fields
) -> tuple[Param, ...]:
    """`search` with the params a profile redefines (`profiles.<name>.search`): a profile may
    narrow what the experiment searches (e.g. to the networks pretrained offline), never add."""
    redefined = _mapping(over, where, fail)
    extra = sorted(set(redefined) - {p.name for p in search})
    if extra:
        raise fail(
            f"{where}.{extra[0]}",
            "not searched by the experiment; a profile can only redefine a searched field",
        )
    return tuple(
        parse_param(p.name, redefined[p.name], search[:i], fail, kind) if p.name in redefined else p
        for i, p in enumerate(search)
    )


def _mapping(value: Any, key: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_fixed(where: str, key: str, fixed: dict[str, Any], kind: Fields) -> None:
    try:
        kind.check(fixed)
    except NstError as err:
        raise SpecError(f"{where}: {key}: {err}") from None


def _objectives(raw: Any, fail: Any, method: str) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("objectives", "required: a list of {metric, direction}, e.g. [{metric: ssim}]")
    known = metric_directions(method)
    out = []
    for i, item in enumerate(raw):
        item = (
            {"metric": item} if isinstance(item, str) else _mapping(item, f"objectives[{i}]", fail)
        )
        bad = sorted(set(item) - {"metric", "direction"})
        if bad:
            raise fail(f"objectives[{i}].{bad[0]}", "unknown key; use metric and direction")
        metric = item.get("metric")
        if metric not in known:
            raise fail(
                f"objectives[{i}].metric",
                f"unknown metric {metric!r}; known: {', '.join(sorted(known))}",
            )
        direction = item.get("direction", known[metric])
        if direction != known[metric]:
            raise fail(
                f"objectives[{i}].direction",
                f"{metric} is to {known[metric]}; remove direction or use {known[metric]}",
            )
        out.append(Objective(metric, direction))
    if len({o.metric for o in out}) != len(out):
        raise fail("objectives", "a metric is listed twice")
    return tuple(out)


def _ints(
    raw: Any, key: str, keys: tuple[str, ...], defaults: dict[str, int], fail: Any
) -> dict[str, Any]:
    raw = _mapping(raw, key, fail)
    bad = sorted(set(raw) - set(keys))
    if bad:
        raise fail(f"{key}.{bad[0]}", f"unknown key; valid keys: {', '.join(keys)}")
    out = dict(defaults)
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise fail(f"{key}.{k}", f"must be a whole number, got {v!r}")
        out[k] = v
    return out


__all__ = [
    "RATIOS",
    "ExperimentSpec",
    "Objective",
    "Param",
    "SpecError",
    "choice_label",
    "load_experiment",
    "parse_experiment",
]
