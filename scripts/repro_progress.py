"""`make repro`'s view of `dvc repro`: stage headers and one summary line for the unchanged ones.

Usage: dvc repro | python scripts/repro_progress.py [TOTAL]

Reads DVC's standard output (the stages' own output passes through the same pipe) and writes it
back line by line, except that
  "Running stage 'X':"               becomes "== [i/TOTAL] X ==" (i counts the stages DVC has
                                     reached in its order, run or skipped; without TOTAL "== [i] X =="),
                                     a stage restored from the run cache "== [i/TOTAL] X (restored ...) =="
  "Stage 'X' didn't change, skipping" and "Data and pipelines are up to date." are counted, not
                                     printed, and end as one line: "pipeline up to date: N stages
                                     unchanged", or "== k stages run, N unchanged ==".
Everything else, the stages' output and DVC's hints, passes through unchanged; DVC's errors go to
standard error and never reach this filter.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator

RUNNING = re.compile(r"^Running stage '(?P<stage>.+)':$")
# a stage whose outputs DVC's run cache restores instead of running it (dvc/stage/cache.py)
RESTORED = re.compile(r"^Stage '(?P<stage>.+)' is cached - skipping run, checking out outputs$")
UNCHANGED = re.compile(
    r"^(?:Stage )?'(?P<stage>.+)' didn't change, skipping$"
)  # .dvc files: no "Stage"
UP_TO_DATE = "Data and pipelines are up to date."  # DVC's last line when it ran nothing


def summarise(lines: Iterable[str], total: int | None = None) -> Iterator[str]:
    """DVC's output lines (without newlines) as `make repro` shows them (see the module doc)."""
    run = unchanged = 0
    up_to_date = False
    of = f"/{total}" if total else ""
    for line in lines:
        if UNCHANGED.match(line):
            unchanged += 1
        elif line == UP_TO_DATE:
            up_to_date = True
        elif m := RUNNING.match(line) or RESTORED.match(line):
            run += 1
            note = " (restored from the run cache)" if m.re is RESTORED else ""
            yield f"== [{run + unchanged}{of}] {m['stage']}{note} =="
        else:
            yield line
    if up_to_date and not run:
        yield f"pipeline up to date: {unchanged} stage{'' if unchanged == 1 else 's'} unchanged"
    elif run or unchanged:
        yield f"== {run} stage{'' if run == 1 else 's'} run, {unchanged} unchanged =="


def main(argv: list[str]) -> int:
    total = int(argv[0]) if argv else None
    for line in summarise((raw.rstrip("\n") for raw in sys.stdin), total):
        print(line, flush=True)  # at once: the stages run for minutes between lines
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
