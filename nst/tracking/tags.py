"""What a run records about itself: config as params, provenance and weights identity as tags."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nst import NstError
from nst.config import OptimisationConfig
from nst.optimize.loop import Result
from nst.provenance import (
    command_line,
    device_description,
    git_state,
    package_versions,
    sha256_file,
)

#: the code whose git commit a run records: nst's own checkout, wherever the run is started from
CODE_DIR = Path(__file__).resolve().parent


def flatten_config(config: OptimisationConfig) -> dict[str, str]:
    """Every config field as an MLflow param: the field name as key, tuples comma-joined,
    nested mappings (if a field ever holds one) as parent.child."""

    def flat(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
        if isinstance(value, dict):
            for k, v in value.items():
                yield from flat(f"{prefix}.{k}", v)
        elif isinstance(value, list | tuple):
            yield prefix, ",".join(map(str, value))
        else:
            yield prefix, str(value)

    return dict(kv for name, value in config.to_dict().items() for kv in flat(name, value))


def provenance_tags(config: OptimisationConfig) -> dict[str, str]:
    """Tags that say where and how a run ran (the weights come later, from the Result)."""
    from mlflow.tracking.context import registry

    git = git_state(CODE_DIR)
    tags = dict(registry.resolve_tags({}))  # mlflow.user, mlflow.source.*
    tags.update(
        {
            "mlflow.source.git.commit": git["commit"],
            "nst.git.commit": git["commit"],
            "nst.git.dirty": git["dirty"],
            "nst.seed": str(config.seed),
            "nst.command": command_line()[:5000],
            "nst.host": platform.node(),
            "nst.device": config.device,
        }
    )
    try:
        from nst.runtime import resolve_device

        tags["nst.device.name"] = device_description(resolve_device(config.device))
    except NstError:
        pass  # stylize will say what is wrong with the device
    tags.update({f"nst.version.{k}": v for k, v in package_versions().items()})
    return tags


def hash_files(paths: dict[str, str | Path]) -> dict[str, str]:
    """sha256 of each input file, for the nst.data.<name> tags."""

    return {name: sha256_file(Path(p)) for name, p in paths.items()}


def weights_tags(result: Result) -> dict[str, str]:
    w = result.weights
    tags = {
        "nst.weights": w.kind,
        "nst.weights.identity": w.identity,
        "nst.weights.sha256": w.sha256,
        "nst.weights.pretrained": str(w.pretrained).lower(),
    }
    if not w.pretrained:
        tags["nst.warning"] = (
            f"RANDOM backbone weights ({w.identity}): features are not ImageNet ones, so results "
            "are not comparable with pretrained-feature NST"
        )
    return tags
