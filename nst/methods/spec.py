"""experiments/methods.yaml: which methods are compared, on which held-out pairs, how big.

    name         the comparison's name (default methods): its results go to <out>/<name>/ and
                 its MLflow experiment is <name> (experiments/style_losses.yaml: style_losses)
    description  one line
    pairs        {content: k, styles: n}: the first k photos and n styles of the test part of
                 the data's split (nst.data.split): never trained on, never selected on
    size         long side of every content and style image, and of the results, px
    device       cpu | cuda | auto, for training and stylising alike
    seed         every method's seed
    judge        nst.metrics' judge: efficientnet (pretrained Lite2, the default) | vgg
    methods      name -> {method: M, config: {...}}, M a method of nst.models.registry: an
                 optimisation (gatys: a TransferConfig; strotss: a StrotssConfig, both
                 nst.config), a trained network (johnson, adain, stytr, plug-ins: a
                 TrainConfig; data, style and styles are set by the split, size and device by
                 the spec) or onnx (an external model: nst.models.external.ExternalConfig)
    train_size   side of the square training crops of the trained methods, px (default:
                 `size`); a fully convolutional network trained on smaller crops stylises any
                 size, so a small budget trains at 128 px and is evaluated at 256
    profiles     smoke | quick | full -> {pairs, size, train_size, device, train, methods,
                 leave_out}: `train` updates every trained method's config, `methods.<name>`
                 one method's config; `leave_out: {name: why}` drops a method from this profile
                 (it is neither trained nor evaluated, and the report prints `why`)

Each method's `methods.<name>.config` is its paper's setting; the steps and batch size it
names there are the reference a profile's training budget is reported against ("300 of
40,000 steps").

A plan file (`nst methods SPEC --step plan`: <out>/methods/plan/<name>.json) is one method's
resolved Plan as JSON; load_plan reads it like a spec, so the DVC stage train@<name> depends on
that method's settings only and an edit to another method does not retrain it.

Precedence, lowest first: config defaults < methods.<name>.config < profile train (trained
methods only) < profile methods.<name>. Unknown keys are one-line errors naming the valid ones;
every resolved config is built (TransferConfig / TrainConfig.from_dict) when the file is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from nst import NstError
from nst.models.external import ExternalConfig
from nst.models.registry import Method, get_method, list_methods
from nst.train.config import TrainConfig

PROFILE_NAMES = ("smoke", "quick", "full")
TOP_KEYS = (
    "description",
    "pairs",
    "size",
    "train_size",
    "device",
    "seed",
    "judge",
    "methods",
    "profiles",
    "name",
)
METHOD_KEYS = ("method", "config")
PROFILE_KEYS = ("pairs", "size", "train_size", "device", "train", "methods", "leave_out")
#: what the budget of a trained method is reported against (methods.<name>.config's values)
REFERENCE_KEYS = ("steps", "batch_size")
PAIR_KEYS = ("content", "styles")
#: TrainConfig fields the runner sets (the split, the spec): not for the file
RUNNER_KEYS = ("data", "style", "styles", "size", "device", "seed")
GATYS_RUNNER_KEYS = ("size", "device", "seed")


@dataclass(frozen=True)
class MethodPlan:
    name: str
    method: str  # a method of nst.models.registry
    config: dict[str, Any]  # resolved (without the runner's keys)
    reference: dict[str, Any] = field(default_factory=dict)  # the paper's REFERENCE_KEYS

    @property
    def entry(self) -> Method:
        return get_method(self.method)

    @property
    def trained(self) -> bool:
        return self.entry.trained


@dataclass(frozen=True)
class Plan:
    """A spec resolved for one profile."""

    path: str
    profile: str
    description: str
    contents: int
    styles: int
    size: int
    device: str
    seed: int
    judge: str
    methods: tuple[MethodPlan, ...]
    train_size: int = 0  # side of the training crops; 0 = size
    left_out: dict[str, str] = field(default_factory=dict)  # name -> why (profile leave_out)
    name: str = "methods"  # the comparison: its folder under --out, its MLflow experiment

    def only(self, name: str) -> Plan:
        """This plan with one method (a plan file's content), or with none and the reason
        when the profile leaves `name` out."""
        left = {name: self.left_out[name]} if name in self.left_out else {}
        return replace(
            self, methods=tuple(m for m in self.methods if m.name == name), left_out=left
        )

    @property
    def who(self) -> str:
        """The comparison, as a too-small-data error names it."""
        return f"the {self.profile} profile of {self.path} (pairs)"

    @property
    def crop(self) -> int:
        """Side of the trained methods' square training crops (train_size, else size)."""
        return self.train_size or self.size

    @property
    def names(self) -> list[str]:
        """Every method of the spec, the left-out ones too (one plan file each)."""
        return [m.name for m in self.methods] + list(self.left_out)

    def method(self, name: str) -> MethodPlan:
        for m in self.methods:
            if m.name == name:
                return m
        raise NstError(
            f"{self.path}: no method {name!r}; defined: {', '.join(m.name for m in self.methods)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def optimisation_config(self, m: MethodPlan) -> Any:
        """An optimisation method's config (gatys: a TransferConfig; strotss: a StrotssConfig)."""
        return m.entry.config_class().from_dict(
            {**m.config, "size": self.size, "device": self.device, "seed": self.seed}
        )

    def external_config(self, m: MethodPlan) -> ExternalConfig:
        return ExternalConfig.from_dict(m.config)

    def train_config(self, m: MethodPlan, data: Path, style: Path) -> TrainConfig:
        """A per-style network: `style` is the style image; one taking the style as an input
        (adain, stytr): the folder of training styles; a style bank (cin): its styles' folder."""
        folder = m.entry.takes_style or m.entry.style_bank
        where = {"styles": str(style)} if folder else {"style": str(style)}
        return TrainConfig.from_dict(
            {
                **m.config,
                "method": m.method,
                "data": str(data),
                "size": self.crop,
                "device": self.device,
                "seed": self.seed,
                **where,
            }
        )


def _keys(where: str, value: Any, valid: tuple[str, ...]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NstError(f"{where} must be a mapping, got {type(value).__name__}")
    unknown = sorted(set(map(str, value)) - set(valid))
    if unknown:
        raise NstError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return dict(value)


def _positive_int(where: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NstError(f"{where} must be a positive integer, got {value!r}")
    return value


def load_plan(path: str | Path, profile: str) -> Plan:
    """Read, check and resolve `path` for `profile` (module docstring); NstError in one line.
    A plan file (.json) is read as written; its profile must be `profile`."""
    try:
        data = yaml.safe_load(Path(path).read_text())  # a plan file's JSON is YAML too
    except (OSError, yaml.YAMLError) as err:
        raise NstError(f"cannot read {path}: {err}".splitlines()[0]) from None
    if str(path).endswith(".json"):
        plan = plan_from_dict(data, str(path))
        if plan.profile != profile:
            raise NstError(
                f"{path} is a plan of the {plan.profile} profile, not {profile}: "
                f"re-run `nst methods SPEC --profile {profile} --step plan`"
            )
        return plan
    try:
        return resolve(data, profile, str(path))
    except NstError as err:
        raise NstError(f"{path}: {err}") from None


def resolve(data: Any, profile: str, path: str = "<spec>") -> Plan:
    top = _keys("the file", data, TOP_KEYS)
    if profile not in PROFILE_NAMES:
        raise NstError(f"unknown profile {profile!r}; use one of {', '.join(PROFILE_NAMES)}")
    profiles = _keys("profiles", top.get("profiles"), PROFILE_NAMES)
    prof = _keys(f"profiles.{profile}", profiles.get(profile), PROFILE_KEYS)
    pairs = {
        **_keys("pairs", top.get("pairs"), PAIR_KEYS),
        **_keys(f"profiles.{profile}.pairs", prof.get("pairs"), PAIR_KEYS),
    }
    size = _positive_int("size", prof.get("size", top.get("size", 256)))
    train_size = prof.get("train_size", top.get("train_size"))
    train_size = size if train_size is None else _positive_int("train_size", train_size)
    device = str(prof.get("device", top.get("device", "cpu")))
    seed = top.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise NstError(f"seed must be an integer, got {seed!r}")
    judge = str(top.get("judge", "efficientnet"))
    if judge not in ("efficientnet", "vgg"):
        raise NstError(f"judge {judge!r}: use efficientnet or vgg")
    entries = top.get("methods")
    if not isinstance(entries, dict) or not entries:
        raise NstError("methods: name at least one method (a mapping name -> {method, config})")
    overrides = prof.get("methods") or {}
    if not isinstance(overrides, dict):
        raise NstError(f"profiles.{profile}.methods must be a mapping")
    unknown = sorted(set(overrides) - set(entries))
    if unknown:
        raise NstError(
            f"profiles.{profile}.methods: unknown method(s) {', '.join(map(str, unknown))}; "
            f"defined: {', '.join(map(str, entries))}"
        )
    train = _dict(f"profiles.{profile}.train", prof.get("train"))
    left_out = {
        str(k): str(v)
        for k, v in _dict(f"profiles.{profile}.leave_out", prof.get("leave_out")).items()
    }
    unknown = sorted(set(left_out) - set(map(str, entries)))
    if unknown:
        raise NstError(
            f"profiles.{profile}.leave_out: unknown method(s) {', '.join(unknown)}; "
            f"defined: {', '.join(map(str, entries))}"
        )
    plans = []
    for name, entry in entries.items():
        e = _keys(f"methods.{name}", entry, METHOD_KEYS)
        method = str(e.get("method", name))
        if method not in list_methods():
            raise NstError(
                f"methods.{name}.method {method!r}: use one of {', '.join(list_methods())}"
            )
        if str(name) in left_out:
            continue
        base = _dict(f"methods.{name}.config", e.get("config"))
        trained = get_method(method).trained
        config = {
            **base,
            **(train if trained else {}),
            **_dict(f"profiles.{profile}.methods.{name}", overrides.get(name)),
        }
        reference = {k: base[k] for k in REFERENCE_KEYS if k in base and trained}
        plans.append(
            MethodPlan(str(name), method, _check_config(str(name), method, config), reference)
        )
    if not plans:
        raise NstError(f"profiles.{profile}.leave_out leaves no method to compare")
    plan = Plan(
        path,
        profile,
        str(top.get("description") or ""),
        _positive_int("pairs.content", pairs.get("content", 1)),
        _positive_int("pairs.styles", pairs.get("styles", 1)),
        size,
        device,
        seed,
        judge,
        tuple(plans),
        train_size,
        left_out,
        _comparison_name(top.get("name", "methods")),
    )
    _build_all(plan)
    return plan


def _comparison_name(value: Any) -> str:
    name = str(value)
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise NstError(f"name {value!r}: letters, digits, _ and - only (it names a folder)")
    return name


def plan_from_dict(data: Any, path: str) -> Plan:
    """A Plan from Plan.to_dict() (a plan file), its configs built again to check them."""
    try:
        methods = tuple(MethodPlan(**m) for m in data.pop("methods"))
        plan = Plan(**{**data, "methods": methods})
    except (AttributeError, KeyError, TypeError) as err:
        raise NstError(f"{path} is not a plan file ({err}): write it with --step plan") from None
    _build_all(plan)
    return plan


def _build_all(plan: Plan) -> None:
    for m in plan.methods:  # every resolved config is built now: errors before any work
        try:
            if m.trained:
                plan.train_config(m, Path("data/content"), Path("data/style"))
            elif m.entry.kind == "onnx":
                plan.external_config(m)
            else:
                plan.optimisation_config(m)
        except NstError as err:
            raise NstError(f"methods.{m.name} ({m.method}): {err}") from None


def _dict(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NstError(f"{where} must be a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _check_config(name: str, method: str, config: dict[str, Any]) -> dict[str, Any]:
    fixed = (*RUNNER_KEYS, "method") if get_method(method).trained else GATYS_RUNNER_KEYS
    given = sorted(set(config) & set(fixed))
    if given:
        raise NstError(
            f"methods.{name}: {', '.join(given)} are set by the comparison (size, device, seed "
            "from the spec; data, style, styles from the held-out split): remove them"
        )
    return config
