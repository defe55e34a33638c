"""`make exps`: the DVC experiments compared in tables that fit a 100-column terminal.

Usage: dvc exp show --json | python scripts/exps.py

`dvc exp show` puts every metric and parameter of every study in one row, which folds the
useful columns into "…" below about 200 columns. This prints, from its JSON, one table per
metrics file:
  a study's (results/<study>/metrics.json, flat numbers): per experiment the created time,
    `profile`, the trial budget `study.trials` (0 = the profile's), complete/run trials and
    the best value of each objective (its `best_<objective>` keys)
  the methods' (results/methods/metrics.json, per method its means): per experiment and method
    every mean (pairs, seconds, peak memory, the headline metrics)
Rows: the workspace, each baseline commit, its experiments ("└ <name>") below it.
"""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath
from typing import Any

WIDTH = 100  # the widest line printed
CELL = 24  # the widest cell (experiment names are cut with "…")
BEST = "best_"


def revisions(shown: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(row label, data) of every revision of `dvc exp show --json`, in its order: the
    workspace, each commit, then its experiments; revisions without data (queued, failed) left out."""
    out = []
    for entry in shown:
        rev = entry["rev"]  # "workspace" or a commit's sha
        label = entry.get("name") or (rev if rev == "workspace" else rev[:7])
        if entry.get("data"):
            out.append((label, entry["data"]))
        for exp in entry.get("experiments") or []:
            for e in exp.get("revs") or []:
                if e.get("data"):
                    out.append(("└ " + (e.get("name") or e["rev"][:7]), e["data"]))
    return out


def number(value: Any) -> str:
    """4 significant digits (integers whole): the tables compare, they do not archive."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-" if value is None else str(value)
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, each cell cut to CELL characters."""
    cut = [[c if len(c) <= CELL else c[: CELL - 1] + "…" for c in r] for r in [header, *rows]]
    widths = [max(len(r[i]) for r in cut) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cut]


def created(data: dict[str, Any]) -> str:
    stamp = data.get("timestamp")  # ISO 8601; None for the workspace
    return stamp[5:16].replace("T", " ") if stamp else "-"


def params(data: dict[str, Any]) -> dict[str, Any]:
    return (data.get("params") or {}).get("params.yaml", {}).get("data") or {}


def study_table(path: str, revs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The rows of one study's metrics file: best values, complete trials, profile, budget."""
    files = [(label, data, data["metrics"][path]["data"]) for label, data in revs]
    objectives = list(dict.fromkeys(k for *_, m in files for k in m if k.startswith(BEST)))
    header = ["experiment", "created", "profile", "budget", "complete"]
    header += [k.removeprefix(BEST) for k in objectives]
    rows = []
    for label, data, m in files:
        p = params(data)
        trials = (p.get("study") or {}).get("trials")
        budget = "profile" if trials == 0 else number(trials)
        complete = f"{number(m.get('n_complete'))}/{number(m.get('n_trials'))}"
        rows.append(
            [
                label,
                created(data),
                number(p.get("profile")),
                budget,
                complete,
                *(number(m.get(k)) for k in objectives),
            ]
        )
    return table(header, rows)


def nested_table(path: str, revs: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The rows of a file of {name: {key: value}} (the methods' means): one per experiment and name."""
    files = [(label, data["metrics"][path]["data"]) for label, data in revs]
    keys = list(dict.fromkeys(k for _, m in files for v in m.values() for k in v))
    rows = [
        [label if i == 0 else "", name, *(number(v.get(k)) for k in keys)]
        for label, m in files
        for i, (name, v) in enumerate(m.items())
    ]
    return table(["experiment", "name", *keys], rows)


def tables(shown: list[dict[str, Any]]) -> list[str]:
    """The lines `make exps` prints for `dvc exp show --json` output: per metrics file a
    "== <study>" line and its table, in DVC's order of the files."""
    revs = revisions(shown)
    paths = list(dict.fromkeys(p for _, d in revs for p in d.get("metrics") or {}))
    out: list[str] = []
    for path in paths:
        mine = [
            (label, d) for label, d in revs if (d.get("metrics") or {}).get(path, {}).get("data")
        ]
        if not mine:
            continue
        first = mine[0][1]["metrics"][path]["data"]
        nested = all(isinstance(v, dict) for v in first.values())
        out += ["", f"== {PurePosixPath(path).parent.name} ({path})"]
        out += (nested_table if nested else study_table)(path, mine)
    # a last resort: cells are cut to CELL and a study has at most a few objectives
    return [line if len(line) <= WIDTH else line[: WIDTH - 1] + "…" for line in out[1:]]


def main() -> int:
    text = sys.stdin.read()
    try:
        shown = json.loads(text)
    except ValueError:  # dvc failed (it said why above) or the script ran without its input
        print(
            "make exps: no `dvc exp show --json` output to read: run it through `make exps` "
            "in the project's git + DVC repository",
            file=sys.stderr,
        )
        return 2
    lines = tables(shown)
    print("\n".join(lines) if lines else "no metrics yet: run `make repro` first")
    return 0


if __name__ == "__main__":
    sys.exit(main())
