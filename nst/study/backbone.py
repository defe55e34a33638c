"""Which network a study optimises, and which network judged it: the records of both.

`nst study --backbone auto|NAME` (params.yaml `backbone: auto` in the pipeline) sets the
backbone of a study whose question is not the backbone, by the rule of `auto` that `nst
transfer` uses too (nst.backbones.auto: vgg19 when its ImageNet file is
present, else efficientnet_lite0). The override replaces the spec's fixed backbone (or the config default, vgg19), and
the layers become the new backbone's preset. It leaves two kinds of spec alone:

- a spec that searches `backbone` (the question is the backbone: backbones.yaml);
- a spec that names layers, searched or fixed (layers.yaml): layer names belong to one
  family (relu4_2 is VGG's), so `auto` keeps that spec on its own backbone, and an explicit
  NAME is an error.

A training study (`method: johnson | adain | stytr`): the backbone is its loss network.
`auto` keeps the experiment's own (its loss weights, beta above all, are tuned to that
network, and a study compares settings, not networks); an explicit NAME replaces it, with
that network's preset layers, under the same two rules.

The choice is recorded as `auto -> efficientnet_lite0 (no ImageNet vgg19 file)` in
summary.json ("backbone") and on the study's MLflow parent run (param `backbone`, tags
`nst.backbone` and `nst.backbone.rule`). The judge (nst.metrics' held-out network) that
scored each trial is recorded per trial (attrs.JUDGE; MLflow tags nst.judge, nst.judge.*)
and summarised in summary.json's provenance ("judges", "judge_pretrained"), beside the
optimised backbones ("backbones": each one's weights identity and whether pretrained).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna

from nst.backbones.auto import AUTO, PREFERRED, resolve
from nst.study.attrs import (
    CONFIG,
    ENCODER_PRETRAINED,
    ENCODER_WEIGHTS,
    JUDGE,
    WEIGHTS_IDENTITY,
    WEIGHTS_PRETRAINED,
)
from nst.study.spec import ExperimentSpec, SpecError, choice_label

LAYER_FIELDS = ("content_layers", "style_layers", "content_layer_weights", "style_layer_weights")


@dataclass(frozen=True)
class BackboneChoice:
    """How a study's backbone was chosen: requested ("" = the spec's own, "auto", a name),
    the backbone used ("" when the spec searches it) and why."""

    requested: str
    backbone: str
    reason: str

    @property
    def text(self) -> str:
        """e.g. "auto -> efficientnet_lite0 (no ImageNet vgg19 file)"."""
        return f"{self.requested or 'spec'} -> {self.backbone or 'searched'} ({self.reason})"

    def to_dict(self) -> dict[str, str]:
        return {
            "requested": self.requested,
            "backbone": self.backbone,
            "reason": self.reason,
            "text": self.text,
        }


def named_layers(spec: ExperimentSpec) -> list[str]:
    """The layer fields a spec fixes or searches (their names belong to one backbone family)."""
    return [k for k in LAYER_FIELDS if k in spec.fixed or any(p.name == k for p in spec.search)]


def choose_backbone(
    spec: ExperimentSpec, requested: str | None, vgg19_file: Path | None = None
) -> tuple[ExperimentSpec, BackboneChoice]:
    """The spec with its backbone set as `requested` says (None/"": the spec's own; "auto":
    the rule above; a registered name), and the record of the choice. Apply it after
    `with_profile`, so that it wins over the profile's fixed fields."""
    from nst.backbones.registry import list_backbones

    requested = requested or ""
    own = str(
        spec.build(spec.fixed).backbone if spec.trained else spec.fixed.get("backbone", PREFERRED)
    )
    searched = next((p for p in spec.search if p.name == "backbone"), None)
    if searched is not None:
        choices = ", ".join(str(choice_label(c)) for c in searched.choices)
        return spec, BackboneChoice(requested, "", f"the spec searches backbone: {choices}")
    if not requested:
        return spec, BackboneChoice("", own, "the spec's own")
    if requested != AUTO and requested not in list_backbones():
        raise SpecError(
            f"--backbone {requested}: unknown; use auto or one of {', '.join(list_backbones())}"
        )
    if spec.trained and requested == AUTO:  # its weights (beta) are tuned to its loss network
        return spec, BackboneChoice(
            requested, own, f"kept: a {spec.method} training study keeps its loss network {own}"
        )
    layers = named_layers(spec)
    if layers and requested == AUTO:
        return spec, BackboneChoice(
            requested, own, f"kept: {Path(spec.path).name} names {', '.join(layers)} of {own}"
        )
    if layers and requested != own:
        raise SpecError(
            f"{spec.path}: names {', '.join(layers)} of {own}; --backbone "
            f"{requested} cannot apply (use auto, or a spec without layers)"
        )
    backbone, reason = resolve(requested, vgg19_file)
    fixed = {**spec.fixed, "backbone": backbone}
    return replace(spec, fixed=fixed), BackboneChoice(requested, backbone, reason)


def judge_tags(held_out: dict[str, Any]) -> dict[str, str]:
    """MLflow tags of a judge (nst.metrics Evaluator.held_out): nst.judge (the network),
    nst.judge.weights, nst.judge.sha256, nst.judge.pretrained, nst.judge.kind,
    nst.judge.excluded (the networks the result depended on), nst.judge.shared_family (set
    when the judge is of one of their families)."""
    keys = {
        "backbone": "nst.judge",
        "weights": "nst.judge.weights",
        "sha256": "nst.judge.sha256",
        "pretrained": "nst.judge.pretrained",
        "judge": "nst.judge.kind",
        "excluded": "nst.judge.excluded",
        "shared_family": "nst.judge.shared_family",
    }
    return {
        tag: str(held_out[k]).lower() if k == "pretrained" else str(held_out[k])
        for k, tag in keys.items()
        if held_out.get(k) not in (None, "")
    }


def judges(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """The distinct judges that scored the trials ({backbone, weights, sha256, pretrained
    (bool), judge, excluded, shared_family}; one entry per network and shared family), in
    order of their network's name."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for t in trials:
        held = t.user_attrs.get(JUDGE)
        if isinstance(held, dict) and held.get("backbone"):
            pretrained = str(held.get("pretrained")).lower() == "true"
            key = (str(held.get("weights")), str(held.get("shared_family", "")))
            seen.setdefault(key, {**held, "pretrained": pretrained})
    return sorted(seen.values(), key=lambda j: (str(j["backbone"]), str(j.get("weights"))))


def judge_pretrained(found: list[dict[str, Any]]) -> bool | None:
    """True when every judge was pretrained, False when one was not, None when no trial was
    judged (a study whose objectives are loss terms only)."""
    return all(j["pretrained"] for j in found) if found else None


def _networks_used(
    trials: list[optuna.trial.FrozenTrial], role: str, identity_key: str, pretrained_key: str
) -> list[dict[str, Any]]:
    """Per network of `role` (a config field): {role, weights (identity), pretrained, trials}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for t in trials:
        if identity_key not in t.user_attrs:
            continue  # the trial never built that network
        name = str((t.user_attrs.get(CONFIG) or {}).get(role, ""))
        identity = str(t.user_attrs[identity_key])
        entry = out.setdefault(
            (name, identity),
            {
                role: name,
                "weights": identity,
                "pretrained": t.user_attrs.get(pretrained_key) is not False,
                "trials": 0,
            },
        )
        entry["trials"] += 1
    return [out[k] for k in sorted(out)]


def backbones_used(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Per optimised backbone: {backbone, weights (identity), pretrained, trials (count)}."""
    return _networks_used(trials, "backbone", WEIGHTS_IDENTITY, WEIGHTS_PRETRAINED)


def encoders_used(trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Per encoder of a training study (adain, stytr): {encoder, weights (identity),
    pretrained, trials (count)}; [] for other studies."""
    return _networks_used(trials, "encoder", ENCODER_WEIGHTS, ENCODER_PRETRAINED)


def parent_backbone_tags(
    choice: BackboneChoice | None, trials: Sequence[optuna.trial.FrozenTrial] = ()
) -> dict[str, str]:
    """The parent run's tags: nst.backbone (the network, or "searched"), nst.backbone.rule
    (how it was chosen) and, once trials were judged, the judge's nst.judge* tags ("; "
    between several)."""
    tags: dict[str, str] = {}
    if choice is not None:
        tags |= {"nst.backbone": choice.backbone or "searched", "nst.backbone.rule": choice.text}
    found = judges(list(trials))
    if found:
        per = [judge_tags(j) for j in found]
        tags |= {k: "; ".join(dict.fromkeys(p[k] for p in per if k in p)) for k in per[0]}
    return tags
