"""Command-line options generated from TransferConfig: one --flag per config field."""

from __future__ import annotations

import argparse
import typing
from typing import Any, Literal, get_args, get_origin

from nst.backbones.registry import list_backbones
from nst.config import LAYER_KEYS, TransferConfig, field_help, field_names, field_type

#: free-form fields whose usual values the usage line should show
METAVARS = {"backbone": "NAME", "weights": "imagenet|random|auto|PATH", "device": "cpu|cuda|auto"}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """Add --<field> for every config field (underscores become dashes); lists are comma-separated.
    Options default to None so that only what the user typed overrides the config/file."""
    group = parser.add_argument_group("transfer configuration (defaults from TransferConfig)")
    group.add_argument("--config", help="YAML file with config fields; options below override it")
    defaults = TransferConfig()
    for name in field_names():
        hint = field_type(name)
        default = getattr(defaults, name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        if name in LAYER_KEYS:
            shown = f"the backbone's preset, for {defaults.backbone} {shown}"
        kwargs: dict[str, Any] = {
            "default": None,
            "dest": f"cfg_{name}",
            "help": f"{field_help(name)} (default: {shown})",
        }
        if name in METAVARS:
            kwargs["metavar"] = METAVARS[name]
        if name == "backbone":  # the registry's names, listed without importing torch (an
            # unknown name is the registry's one-line error, which names them again)
            kwargs["help"] += f"; one of {', '.join(list_backbones())}"
        elif name in METAVARS:
            pass
        elif get_origin(hint) is Literal:
            kwargs["choices"] = get_args(hint)
        elif get_origin(hint) is tuple:
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["metavar"] = typing.cast(type, hint).__name__.upper()
        group.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def config_from_args(args: argparse.Namespace) -> TransferConfig:
    values: dict[str, Any] = {}
    for name in field_names():
        value = getattr(args, f"cfg_{name}", None)
        if value is not None:
            values[name] = value
    if getattr(args, "config", None):
        # replace(): a --backbone that overrides the file's gets its own preset layers
        return TransferConfig.from_yaml(args.config).replace(**values)
    return TransferConfig.from_dict(values)
