"""Which networks a study used, as the report shows them: the optimised backbone(s), how
the backbone was chosen (`nst study --backbone auto`), and the judge (the held-out network
of nst.metrics that scored the trials). All read from summary.json (nst.study.outputs);
a summary from before these were recorded falls back to its weights list, or says so.

The random-weights banner keeps two facts apart: which studies *optimised* a backbone with
seeded random weights and which methods of the comparison (results/methods/) *ran* a loss
network or encoder with them (their images check the harness, not the method), and whether
the *judge* was pretrained (its held-out metrics are then real measurements either way).
The methods comparison's network table (`network_table`) lists every network a method
involved, each trained network's checkpoint and the judge.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nst.provenance import sha256_file
from nst.report.data import MethodsResults, StudyResults
from nst.report.figures import nice
from nst.report.page import Cell, Table


def yes_no(pretrained: object) -> str:
    return "yes" if str(pretrained).lower() == "true" else "no"


def networks_text(study: StudyResults) -> str:
    """The optimised network(s): "efficientnet_lite0 (pretrained)", "vgg19 (random), ..."."""
    found = study.backbones
    if found:
        parts = dict.fromkeys(
            f"{b['backbone']} ({'pretrained' if yes_no(b.get('pretrained')) == 'yes' else 'random'})"
            for b in found
        )
        return ", ".join(parts)
    if study.weights:  # a summary from before per-backbone records
        return ", ".join(study.weights)
    return "–"


def judge_text(study: StudyResults) -> str:
    """ "efficientnet_lite2 imagenet:efficientnet-lite2-9656183e.pth (pretrained)", or why not."""
    found = study.judges
    if not found:
        return "– (not recorded: no trial was judged, or a summary from before judges were)"
    return "; ".join(
        f"{j['backbone']} {j.get('weights', '')} "
        f"({'pretrained' if yes_no(j.get('pretrained')) == 'yes' else 'random weights'}"
        + (
            f"; {j['shared_family']} family, like the network it judged"
            if j.get("shared_family")
            else ""
        )
        + ")"
        for j in found
    )


def family_note(study: StudyResults) -> str:
    """A caption's sentences when trials had different judges, or a judge shares a family with
    a network a trial optimised (nst.metrics.features.shared_family_note); else ""."""
    text = ""
    networks = sorted({str(j["backbone"]) for j in study.judges})
    if len(networks) > 1:  # a trial is never judged by a network it optimised
        text += (
            f" Trials were judged by different networks ({', '.join(networks)}, each "
            "excluding the trial's own): compare their feature metrics only within one "
            "judge, the network-free ones across all."
        )
    shared = [j for j in study.judges if j.get("shared_family")]
    if shared:
        j = shared[0]
        text += (
            f" The judge {j['backbone']} is of the {j['shared_family']} family, like the "
            f"optimised {j.get('excluded')}: its feature metrics favour that family; read "
            "them beside ssim, edge_f1 and the colour distances."
        )
    return text


def network_rows(study: StudyResults) -> list[list[Cell]]:
    """Provenance rows: how the backbone was chosen, the optimised network(s), the judge."""
    sha = "; ".join(f"{j['backbone']} {j.get('sha256') or '–'}" for j in study.judges) or "–"
    return [
        ["backbone", study.backbone_choice or "– (not recorded)"],
        ["optimised network", networks_text(study)],
        ["judge (held-out network)", judge_text(study)],
        ["judge sha256", sha],
    ]


def backbone_table(study: StudyResults) -> Table | None:
    """One row per optimised backbone: its weights identity, pretrained yes/no, trials."""
    found = study.backbones
    if not found:
        return None
    rows: list[list[Cell]] = [
        [
            str(b["backbone"]),
            str(b.get("weights") or "–"),
            yes_no(b.get("pretrained")),
            str(b.get("trials", "–")),
        ]
        for b in found
    ]
    caption = (
        "Which arms ran with pretrained weights: each backbone's weights identity "
        "(imagenet:<file> or random:seed=<s>) and the number of trials that built it."
    )
    return Table(["backbone", "weights", "pretrained", "trials"], rows, caption)


def random_weights_banner(
    studies: Iterable[StudyResults],
    reconstructions: bool = False,
    methods: MethodsResults | None = None,
) -> str:
    """The warning on every page when a run used random weights: which studies optimised
    random backbone weights, which methods of the comparison ran a network with random weights
    and, separately, whether their judges were pretrained."""
    studies = list(studies)
    methods = methods if methods is not None and not methods.error else None
    optimised = [f"study {s.name}" for s in studies if s.random_weights]
    optimised += ["the layer reconstructions"] if reconstructions else []
    random_nets = methods.random_networks_text() if methods else ""
    random_judge = [s for s in studies if s.judge_pretrained is False]
    methods_judge = methods.judge_pretrained if methods else None
    if not optimised and not random_nets and not random_judge and methods_judge is not False:
        return ""
    parts = []
    if optimised:
        parts.append(
            f"Random weights: {', '.join(optimised)} optimised seeded random backbone weights, "
            "not pretrained ImageNet weights: those images check the harness, not the method."
        )
    if random_nets:
        parts.append(
            f"Random weights in the methods comparison: {random_nets} ran with seeded random weights, "
            "not pretrained ImageNet weights: those images check the harness, not the method."
        )
    pretrained = [s.name for s in studies if s.judge_pretrained]
    if pretrained or methods_judge:
        judged = [s for s in studies if s.judge_pretrained]
        nets = {f"`{j['backbone']}`" for s in judged for j in s.judges}
        nets |= {f"`{methods.judge['backbone']}`"} if methods and methods_judge else set()
        where = [_studies(pretrained, len(studies))] if pretrained else []
        where += ["the methods comparison"] if methods_judge else []
        their = "their" if len(pretrained) + bool(methods_judge) > 1 else "its"
        parts.append(
            f"The judge was pretrained ({', '.join(sorted(nets))}, ImageNet weights) in "
            f"{' and '.join(where)}: {their} held-out metrics are real measurements."
        )
    names = [f"{s.name} ({'; '.join(j['weights'] for j in s.judges)})" for s in random_judge]
    if methods and methods_judge is False:
        names.append(f"the methods comparison ({methods.judge.get('weights')})")
    if names:
        parts.append(
            f"Judge with random weights: {', '.join(names)}: those held-out metrics mean little."
        )
    unknown = [s.name for s in studies if s.judge_pretrained is None]
    where = [_studies(unknown, len(studies))] if unknown else []
    where += ["the methods comparison"] if methods and methods_judge is None else []
    if where:
        parts.append(
            f"No judge recorded for {' and '.join(where)} (loss terms only, "
            "or a summary from before judges were recorded)."
        )
    return " ".join(parts)


def _studies(names: list[str], total: int) -> str:
    if len(names) == total and total > 1:
        return f"all {total} studies"
    return ("study " if len(names) == 1 else "studies ") + ", ".join(names)


def network_table(found: MethodsResults) -> Table:
    """Every network involved: each method's loss network and encoder (weights identity),
    each trained network (its checkpoint, one per style for johnson) and the judge."""
    body: list[list[Cell]] = []
    for name, info in found.methods.items():
        for n in info.get("networks") or []:
            if isinstance(n, dict):
                body.append(
                    [
                        name,
                        str(n.get("role")),
                        str(n.get("backbone")),
                        str(n.get("weights")),
                        yes_no(n.get("pretrained")),
                    ]
                )
        steps = (info.get("config") or {}).get("steps", "?")
        for run in info.get("runs") or []:
            if not isinstance(run, dict):
                continue
            style = str(run.get("style") or "*")
            role = "trained network, " + ("every style" if style == "*" else f"style {style}")
            how = (
                f"trained here ({nice(float(run.get('seconds') or 0))} s)"
                if run.get("trained")
                else "reused (trained before)"
            )
            body.append(
                [
                    name,
                    role,
                    str(info.get("method", name)),
                    _checkpoint(found.root, run.get("model")),
                    f"no: {steps} training steps, {how}",
                ]
            )
    judge = found.judge
    if judge:
        body.append(
            [
                "(all)",
                "judge (held-out)",
                str(judge.get("backbone")),
                f"{judge.get('weights')} sha256 {str(judge.get('sha256', ''))[:12]}",
                yes_no(judge.get("pretrained")),
            ]
        )
    caption = (
        "Every network involved: loss networks, encoders, each trained network (its "
        "checkpoint under results/methods/ with the file's sha256; johnson: one per "
        "style) and the judge, with their weights."
    )
    return Table(["method", "role", "network", "weights", "pretrained"], body, caption)


def _checkpoint(root: Path, model: object) -> str:
    """A trained network's identity: its checkpoint's path and the file's sha256 (12 digits)."""
    if not model:
        return "– (no checkpoint recorded)"
    try:
        digest = sha256_file(root / str(model))
    except OSError:
        return f"{model} (missing)"
    return f"{model} sha256 {digest[:12]}"
