"""Command-line options generated from a config class (TransferConfig, TrainConfig): one
--flag per field with its one-line description, by one generator; and the check every command
makes of its output location before any work (check_output)."""

from __future__ import annotations

import argparse
import os
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from nst import NstError
from nst.backbones.auto import AUTO, resolve
from nst.backbones.registry import RECIPES, default_recipe, list_backbones
from nst.config import TransferConfig, field_help, field_names, field_type
from nst.parts import LAYER_KEYS, read_yaml

#: free-form fields whose usual values the usage line should show
METAVARS = {"backbone": "NAME", "weights": "imagenet|random|auto|PATH", "device": "cpu|cuda|auto"}


def add_config_options(
    parser: argparse.ArgumentParser,
    cls: type = TransferConfig,
    title: str = "transfer configuration (defaults: the backbone family's recipe where it has "
    "one, nst.backbones.registry.RECIPES; else TransferConfig's)",
    shown: Callable[[str, Any], Any] | None = None,
) -> None:
    """Add --<field> for every field of the config class `cls` (TransferConfig, TrainConfig;
    underscores become dashes; lists are comma-separated), each with its field's one-line
    description (nst.parts.field_). `shown(name, default)` is the default the help names.
    Options default to None so that only what the user typed overrides the config/file."""
    group = parser.add_argument_group(title)
    group.add_argument("--config", help="YAML file with config fields; options below override it")
    defaults = cls()
    for name in field_names(cls):
        hint = field_type(name, cls)
        default = getattr(defaults, name)
        value = ",".join(map(str, default)) if isinstance(default, tuple) else default
        value = shown(name, value) if shown else value
        kwargs: dict[str, Any] = {
            "default": None,
            "dest": f"cfg_{name}",
            "help": f"{field_help(name, cls)} (default: {value})",
        }
        if name in METAVARS:
            kwargs["metavar"] = METAVARS[name]
        elif hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif get_origin(hint) is Literal:
            kwargs["choices"] = get_args(hint)
        elif get_origin(hint) is tuple:
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["metavar"] = typing.cast(type, hint).__name__.upper()
        group.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def typed_values(args: argparse.Namespace, cls: type = TransferConfig) -> dict[str, Any]:
    """The config fields the user typed on the command line."""
    typed = {name: getattr(args, f"cfg_{name}", None) for name in field_names(cls)}
    return {k: v for k, v in typed.items() if v is not None}


def transfer_default(name: str, value: Any) -> Any:
    """The default `nst transfer --help` names: the recipe's where a family has one."""
    if name in LAYER_KEYS:
        value = f"the backbone's preset, for {TransferConfig.backbone} {value}"
    elif name == "backbone":
        value = f"{AUTO}; one of {', '.join(list_backbones())}"
    families = [f"{m.rsplit('.', 1)[-1]} {r[name]}" for m, r in RECIPES.items() if name in r]
    return f"{value}; recipe: {', '.join(families)}" if families else value


def config_from_args(args: argparse.Namespace) -> tuple[TransferConfig, str]:
    """The config a command runs, and how its backbone was chosen (e.g. "auto ->
    efficientnet_lite0 (no ImageNet vgg19 file)"). Lowest first: the backbone family's default
    recipe (nst.backbones.registry.RECIPES) < the --config file < options typed on the command
    line. No backbone anywhere means auto."""
    typed = typed_values(args)
    from_file = read_yaml(args.config) if getattr(args, "config", None) else {}
    if not isinstance(from_file, dict):
        raise NstError(f"--config {args.config}: a config file must be a mapping of fields")
    requested = str(typed.get("backbone") or from_file.get("backbone") or AUTO)
    backbone, reason = resolve(requested)
    own = str(from_file.get("backbone") or AUTO)
    # the recipe of the backbone that runs, under the file's fields (its backbone first, so that
    # replace() below swaps the layers that were that backbone's preset)
    values = {**default_recipe(backbone), **from_file, "backbone": backbone if own == AUTO else own}
    config = TransferConfig.from_dict(values)
    # replace(): a --backbone that overrides the file's gets its own preset layers
    return config.replace(
        **{**typed, "backbone": backbone}
    ), f"{requested} -> {backbone} ({reason})"


def check_output(path: str | Path, option: str, *, folder: bool = False) -> Path:
    """`path`, a file (or with folder=True a folder) that a command will write, checked before
    any work: an NstError naming `option` unless it can be written. Folders on the way may be
    missing (they are made on writing), but the nearest existing one must be a writable folder,
    not a file: a run must not end in a traceback after its work, its result lost."""
    target = Path(path).expanduser()
    wanted = "folder" if folder else "file"
    if _exists(target) and target.is_dir() != folder:
        kind = "folder" if target.is_dir() else "file"
        raise NstError(f"{option} {path} is a {kind}: name a {wanted}")
    existing = target if folder else target.parent
    while not _exists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise NstError(
            f"{option} {path}: {existing} is a file, so no folder can be made there; "
            f"choose another {option}"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NstError(
            f"{option} {path}: no permission to write in {existing}; choose another {option}"
        )
    return target


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except PermissionError:  # an unsearchable folder above: the access check names it
        return True
