"""Command-line options generated from TransferConfig: one --flag per config field."""

from __future__ import annotations

import argparse
import typing
from typing import Any, Literal, get_args, get_origin

from nst.config import TransferConfig, field_names, field_type


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
        kwargs: dict[str, Any] = {
            "default": None,
            "dest": f"cfg_{name}",
            "help": f"(default: {shown})",
        }
        if get_origin(hint) is Literal:
            kwargs["choices"] = get_args(hint)
        elif get_origin(hint) is tuple:
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["metavar"] = typing.cast(type, hint).__name__.upper()
        group.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def config_from_args(args: argparse.Namespace) -> TransferConfig:
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        values.update(TransferConfig.from_yaml(args.config).to_dict())
    for name in field_names():
        value = getattr(args, f"cfg_{name}", None)
        if value is not None:
            values[name] = value
    return TransferConfig.from_dict(values)
