"""Experiment files (experiments/*.yaml): what a study searches, holds fixed and optimises.

    name: loss_weights                  # the study name; outputs go to results/<name>/
    description: ...
    fixed: {steps: 80, ...}             # TransferConfig fields held constant
    search:                             # one entry per searched field
      style_ratio: {type: float, low: 1.0e+2, high: 1.0e+7, log: true}
      lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
      steps: {type: int, low: 10, high: 100, step: 10}
      style_layers: {type: categorical, choices: [[relu1_1, relu2_1], [relu3_1]]}
      backbone:
        type: categorical
        choices: [vgg19, deit_small]
        presets: {deit_small: {content_layers: [block8], style_layers: [block2, block5]}}
    objectives: [{metric: ssim, direction: maximize}, {metric: style_gram_dist}]
    pairs: {count: 2, seed: 0}
    budget: {trials: 20, timeout_s: 600}
    sampler: nsga2                      # tpe | random | grid | nsga2 | nsga3 | cmaes
    pruner: none                        # median | successive_halving | hyperband | none (or {type: median, ...})
    profiles: {smoke: {fixed: {...}, pairs: {...}, budget: {...}}}

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

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml

from nst import NstError
from nst.config import TransferConfig, coerce, field_names, field_type
from nst.study.profiles import get_profile

RATIOS = {"style_ratio": "beta", "tv_ratio": "gamma"}  # searched ratio -> weight it sets
LOSS_TERMS = ("content", "style", "tv", "total")
SAMPLERS = ("tpe", "random", "grid", "nsga2", "nsga3", "cmaes")
PRUNERS = ("median", "successive_halving", "hyperband", "none")
TOP_KEYS = ("name", "description", "fixed", "search", "objectives", "pairs", "budget",
            "sampler", "pruner", "profiles")  # fmt: skip


class SpecError(NstError):
    """An experiment file is invalid."""


@dataclass(frozen=True)
class Param:
    """One searched field: float/int range or categorical choices (lists become tuples)."""

    name: str
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # choice label -> fields
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # param -> choice labels

    def applies(self, drawn: dict[str, Any]) -> bool:
        """Whether this field is searched, given the choice labels drawn so far."""
        return all(drawn.get(k) in labels for k, labels in self.when.items())


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
    pairs: dict[str, int]  # {count, seed}
    budget: dict[str, float]  # {trials, timeout_s}
    sampler: str
    pruner: dict[str, Any]  # {type, **options}
    profiles: dict[str, dict[str, Any]]
    path: str = "<spec>"
    profile: str | None = None  # the profile applied, if any
    reports: int = 5  # intermediate values per pair (set by the profile)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def with_profile(self, name: str, trials: int | None = None) -> ExperimentSpec:
        """This spec with a profile's sizes and budget and its own `profiles.<name>` overrides."""
        prof = get_profile(name)
        own = self.profiles.get(name, {})
        fixed = {**self.fixed, **prof.config, **own.get("fixed", {})}
        pairs = {**self.pairs, **prof.pairs, **own.get("pairs", {})}
        budget = {**self.budget, **prof.budget, **own.get("budget", {})}
        if trials is not None:
            if trials < 1:
                raise SpecError(f"--trials must be at least 1, got {trials}")
            budget["trials"] = trials
        spec = replace(
            self, fixed=fixed, pairs=pairs, budget=budget, profile=name, reports=prof.reports
        )
        _check_fixed(spec.path, "profiles." + name, fixed)
        return spec

    def to_dict(self) -> dict[str, Any]:
        """Plain values for summaries and MLflow params."""
        return {
            "name": self.name, "description": self.description, "fixed": self.fixed,
            "search": {p.name: _param_dict(p) for p in self.search},
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in self.objectives],
            "pairs": self.pairs, "budget": self.budget, "sampler": self.sampler,
            "pruner": self.pruner, "profile": self.profile, "reports": self.reports,
        }  # fmt: skip


def metric_directions() -> dict[str, str]:
    """Objective names: the evaluation metrics (nst.metrics) and the final loss terms."""
    from nst.metrics import METRICS  # imports torch: loaded when a spec is checked, not on import

    directions = {t: "minimize" for t in LOSS_TERMS}
    directions.update({k: v.direction for k, v in METRICS.items()})
    return directions


def choice_label(value: Any) -> Any:
    """Optuna stores categorical choices as scalars: a list of layers becomes 'a,b,c'."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return value


def load_experiment(path: str | Path) -> ExperimentSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise SpecError(f"{path}: cannot read: {err.strerror}; check the path") from None
    except yaml.YAMLError as err:
        raise SpecError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from None
    return parse_experiment(data, str(path))


def parse_experiment(data: Any, where: str = "<spec>") -> ExperimentSpec:
    def fail(key: str, msg: str) -> SpecError:
        return SpecError(f"{where}: {key}: {msg}")

    if not isinstance(data, dict):
        raise SpecError(f"{where}: an experiment must be a mapping with keys {', '.join(TOP_KEYS)}")
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise fail(unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise fail("name", "required: letters, digits, - and _ (it names results/<name>/)")
    fixed = _mapping(data.get("fixed", {}), "fixed", fail)
    _check_fixed(where, "fixed", fixed)
    search: tuple[Param, ...] = ()
    for key, raw in _mapping(data.get("search", {}), "search", fail).items():
        search += (_param(key, raw, search, fail),)
    if not search:
        raise fail(
            "search", "empty; name at least one field to search, e.g. lr: {type: float, ...}"
        )
    searched = {p.name for p in search}
    if searched & set(RATIOS) and searched & {"alpha", "beta", "gamma"}:
        raise fail("search", "search either the ratios (style_ratio, tv_ratio) or alpha/beta/gamma")
    objectives = _objectives(data.get("objectives"), fail)
    pairs = _ints(data.get("pairs", {}), "pairs", ("count", "seed"), {"count": 2, "seed": 0}, fail)
    budget = _ints(data.get("budget", {}), "budget", ("trials", "timeout_s"),
                   {"trials": 20, "timeout_s": 0}, fail)  # fmt: skip
    if pairs["count"] < 1 or budget["trials"] < 1:
        raise fail("pairs.count/budget.trials", "must be at least 1")
    sampler = data.get("sampler", "tpe" if len(objectives) == 1 else "nsga2")
    if sampler not in SAMPLERS:
        raise fail("sampler", f"{sampler!r} unknown; use one of {', '.join(SAMPLERS)}")
    if sampler == "cmaes" and len(objectives) > 1:
        raise fail("sampler", "cmaes optimises one objective; use nsga2 for several")
    if sampler == "grid":
        for p in search:
            if p.when:
                raise fail(f"search.{p.name}.when", "the grid sampler cannot skip a field; "
                           "remove when or use another sampler")  # fmt: skip
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
        bad = sorted(set(over) - {"fixed", "pairs", "budget"})
        if bad:
            raise fail(
                f"profiles.{pname}.{bad[0]}", "unknown key; valid keys: fixed, pairs, budget"
            )
    return ExperimentSpec(
        name=name, description=str(data.get("description", "")), fixed=fixed, search=search,
        objectives=objectives, pairs=pairs, budget=budget, sampler=sampler, pruner=pruner,
        profiles=profiles, path=where,
    )  # fmt: skip


def _mapping(value: Any, key: str, fail: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_fixed(where: str, key: str, fixed: dict[str, Any]) -> None:
    try:
        TransferConfig.from_dict(fixed)
    except NstError as err:
        raise SpecError(f"{where}: {key}: {err}") from None


def _param(key: str, raw: Any, above: tuple[Param, ...], fail: Any) -> Param:
    valid = [*field_names(), *RATIOS]
    if key not in valid:
        raise fail(f"search.{key}", f"unknown field; valid: {', '.join(valid)}")
    raw = _mapping(raw, f"search.{key}", fail)
    kind = raw.get("type")
    allowed = {"float": {"low", "high", "log"}, "int": {"low", "high", "step", "log"},
               "categorical": {"choices", "presets"}}  # fmt: skip
    if kind not in allowed:
        raise fail(f"search.{key}.type", "required: float, int or categorical")
    extra = sorted(set(raw) - allowed[kind] - {"type", "when"})
    if extra:
        raise fail(
            f"search.{key}.{extra[0]}",
            f"not a {kind} option; use {', '.join(sorted(allowed[kind]))}",
        )
    when = _when(key, raw.get("when", {}), above, fail)
    hint = float if key in RATIOS else field_type(key)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"search.{key}.choices", "must be a non-empty list")
        for c in choices:
            try:
                coerce(key, c, hint)
            except NstError as err:
                raise fail(f"search.{key}.choices", str(err)) from None
        labels = [choice_label(c) for c in choices]
        if len(set(labels)) != len(labels):
            raise fail(f"search.{key}.choices", "repeated choice")
        presets = _mapping(raw.get("presets", {}), f"search.{key}.presets", fail)
        for label, fields_ in presets.items():
            if label not in labels:
                raise fail(f"search.{key}.presets.{label}", f"not one of the choices {labels}")
            _mapping(fields_, f"search.{key}.presets.{label}", fail)
            try:
                TransferConfig.from_dict(fields_)
            except NstError as err:
                raise fail(f"search.{key}.presets.{label}", str(err)) from None
        return Param(key, "categorical", choices=tuple(map(_freeze, choices)), presets=presets,
                     when=when)  # fmt: skip
    if get_origin(hint) is not None or hint not in (int, float):
        raise fail(f"search.{key}.type", f"{key} is not numeric; use type: categorical")
    if kind == "float" and hint is int:
        raise fail(f"search.{key}.type", f"{key} is an integer field; use type: int")
    try:
        low, high = float(raw["low"]), float(raw["high"])
    except KeyError as err:
        raise fail(f"search.{key}.{err.args[0]}", "required") from None
    except (TypeError, ValueError):
        raise fail(
            f"search.{key}", "low and high must be numbers (write 1.0e+4, not 1e4)"
        ) from None
    log = raw.get("log", key in RATIOS)
    if not isinstance(log, bool):
        raise fail(f"search.{key}.log", "must be true or false")
    if not low < high:
        raise fail(f"search.{key}", f"low ({low:g}) must be below high ({high:g})")
    if log and low <= 0:
        raise fail(f"search.{key}.low", "a log-scale range must start above 0")
    if kind == "int" and not (low.is_integer() and high.is_integer()):
        raise fail(f"search.{key}", "int bounds must be whole numbers")
    step = raw.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0 or log):
        raise fail(f"search.{key}.step", "must be a positive number and not combined with log")
    for bound in (low, high):
        try:
            TransferConfig.from_dict({RATIOS.get(key, key): bound})
        except NstError as err:
            raise fail(f"search.{key}", str(err)) from None
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def _when(key: str, raw: Any, above: tuple[Param, ...], fail: Any) -> dict[str, tuple[Any, ...]]:
    """Conditions name categorical fields searched above this one (drawn first, so a trial
    knows them) and some of their choices."""
    earlier = {q.name: q for q in above if q.type == "categorical"}
    out = {}
    for other, value in _mapping(raw, f"search.{key}.when", fail).items():
        if other not in earlier:
            raise fail(f"search.{key}.when.{other}", "not a categorical field searched above "
                       f"{key}; use one of {list(earlier) or 'none (move it above)'}")  # fmt: skip
        labels = [choice_label(v) for v in (value if isinstance(value, list) else [value])]
        choices = [choice_label(c) for c in earlier[other].choices]
        bad = [v for v in labels if v not in choices] or ([] if labels else ["(none)"])
        if bad:
            raise fail(f"search.{key}.when.{other}", f"{bad[0]!r} is not one of {choices}")
        out[str(other)] = tuple(labels)
    return out


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _objectives(raw: Any, fail: Any) -> tuple[Objective, ...]:
    if not isinstance(raw, list) or not raw:
        raise fail("objectives", "required: a list of {metric, direction}, e.g. [{metric: ssim}]")
    known = metric_directions()
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


def _param_dict(p: Param) -> dict[str, Any]:
    when = {"when": {k: list(v) for k, v in p.when.items()}} if p.when else {}
    if p.type == "categorical":
        d: dict[str, Any] = {"type": p.type, "choices": [choice_label(c) for c in p.choices]}
        return {**d, "presets": p.presets, **when} if p.presets else {**d, **when}
    return {"type": p.type, "low": p.low, "high": p.high, "log": p.log, "step": p.step, **when}


__all__ = [
    "ExperimentSpec",
    "Objective",
    "Param",
    "SpecError",
    "load_experiment",
    "parse_experiment",
]
