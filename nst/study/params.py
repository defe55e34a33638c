"""One searched field of an experiment: a float or int range, or categorical choices (with
presets), and the `when` condition that says in which trials it is searched.

    lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
    steps: {type: int, low: 10, high: 100, step: 10}
    style_layers: {type: categorical, choices: [[relu1_1, relu2_1], [relu3_1]]}
    init_blend: {type: float, low: 0.1, high: 0.9, when: {init: blend}}

Every field is checked against the config class of the experiment's method
(nst.study.fields): its name, its type, and that both bounds and every choice build a config.
Errors go through the spec's `fail(key, message)`, so they read like every other spec error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_origin

from nst import NstError
from nst.parts import coerce
from nst.study.fields import Fields

Fail = Callable[[str, str], Exception]


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


def choice_label(value: Any) -> Any:
    """Optuna stores categorical choices as scalars: a list of layers becomes 'a,b,c'."""
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return value


def mapping(value: Any, key: str, fail: Fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(key, f"must be a mapping, got {type(value).__name__}")
    return value


def parse_param(key: str, raw: Any, above: tuple[Param, ...], fail: Fail, kind_of: Fields) -> Param:
    """The Param of `search.<key>` (module docstring); `above` are the fields searched before."""
    ratios = kind_of.ratios
    valid = [*kind_of.names(), *ratios]
    if key not in valid:
        raise fail(f"search.{key}", f"unknown {kind_of.what} field; valid: {', '.join(valid)}")
    raw = mapping(raw, f"search.{key}", fail)
    kind = raw.get("type")
    allowed = {
        "float": {"low", "high", "log"},
        "int": {"low", "high", "step", "log"},
        "categorical": {"choices", "presets"},
    }
    if kind not in allowed:
        raise fail(f"search.{key}.type", "required: float, int or categorical")
    extra = sorted(set(raw) - allowed[kind] - {"type", "when"})
    if extra:
        raise fail(
            f"search.{key}.{extra[0]}",
            f"not a {kind} option; use {', '.join(sorted(allowed[kind]))}",
        )
    when = parse_when(key, raw.get("when", {}), above, fail)
    hint = kind_of.type_of(key)
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"search.{key}.choices", "must be a non-empty list")
        for c in choices:
            try:
                coerce(key, c, hint)
                if kind_of.trained:  # e.g. a LoRA rank for johnson: the method's own fields
                    kind_of.check({key: c})
            except NstError as err:
                raise fail(f"search.{key}.choices", str(err)) from None
        labels = [choice_label(c) for c in choices]
        if len(set(labels)) != len(labels):
            raise fail(f"search.{key}.choices", "repeated choice")
        presets = mapping(raw.get("presets", {}), f"search.{key}.presets", fail)
        for label, fields_ in presets.items():
            if label not in labels:
                raise fail(f"search.{key}.presets.{label}", f"not one of the choices {labels}")
            mapping(fields_, f"search.{key}.presets.{label}", fail)
            try:
                kind_of.check(fields_)
            except NstError as err:
                raise fail(f"search.{key}.presets.{label}", str(err)) from None
        return Param(
            key, "categorical", choices=tuple(map(_freeze, choices)), presets=presets, when=when
        )
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
    log = raw.get("log", key in ratios)
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
            kind_of.check({ratios.get(key, key): int(bound) if hint is int else bound})
        except NstError as err:
            raise fail(f"search.{key}", str(err)) from None
    return Param(key, kind, low=low, high=high, log=log, step=step, when=when)


def parse_when(
    key: str, raw: Any, above: tuple[Param, ...], fail: Fail
) -> dict[str, tuple[Any, ...]]:
    """Conditions name categorical fields searched above this one (drawn first, so a trial
    knows them) and some of their choices."""
    earlier = {q.name: q for q in above if q.type == "categorical"}
    out = {}
    for other, value in mapping(raw, f"search.{key}.when", fail).items():
        if other not in earlier:
            raise fail(
                f"search.{key}.when.{other}",
                "not a categorical field searched above "
                f"{key}; use one of {list(earlier) or 'none (move it above)'}",
            )
        labels = [choice_label(v) for v in (value if isinstance(value, list) else [value])]
        choices = [choice_label(c) for c in earlier[other].choices]
        bad = [v for v in labels if v not in choices] or ([] if labels else ["(none)"])
        if bad:
            raise fail(f"search.{key}.when.{other}", f"{bad[0]!r} is not one of {choices}")
        out[str(other)] = tuple(labels)
    return out


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def param_dict(p: Param) -> dict[str, Any]:
    """A Param as plain values (summaries, MLflow)."""
    when = {"when": {k: list(v) for k, v in p.when.items()}} if p.when else {}
    if p.type == "categorical":
        d: dict[str, Any] = {"type": p.type, "choices": [choice_label(c) for c in p.choices]}
        return {**d, "presets": p.presets, **when} if p.presets else {**d, **when}
    return {"type": p.type, "low": p.low, "high": p.high, "log": p.log, "step": p.step, **when}
