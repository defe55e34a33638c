#!/usr/bin/env bash
# `make repro`: run the DVC pipeline (dvc.yaml, params.yaml): fetch -> study@<name> and
# methods-plan -> train@<method> -> methods -> report.
# Works as the first command on a fresh clone (make runs setup first) and offline (the fetch
# stage falls back to the embedded sample with a loud warning). Re-running re-does only what
# changed. One `dvc repro` (extra arguments go to it, e.g. scripts/repro.sh study@layers), its
# output through scripts/repro_progress.py: each stage that runs is announced as
# "== [i/N] <stage> ==", the unchanged ones are counted in one line ("pipeline up to date: 13 stages
# unchanged"), DVC's errors show as they are. DVC=<path> overrides the dvc used.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=1
export PATH="$PWD/.venv/bin:$PATH" # the stages call `nst`
DVC=${DVC:-.venv/bin/dvc}

if [ ! -d .dvc ]; then # a copy without .dvc/ (e.g. an exported tarball): make it a DVC repo
  "$DVC" init -q $([ -d .git ] || echo --no-scm)
  "$DVC" config core.analytics false
fi

start=$(date +%s)
lock_before=$(cksum dvc.lock 2>/dev/null || true)
# one `dvc repro` for the whole pipeline: one per stage started DVC 13 times and re-checked each
# stage's upstream every time (18 s and 42 "didn't change" lines for a no-op, 2 s for one).
# N of "[i/N]": the number of stages, known when the whole pipeline is reproduced
total=$([ $# -eq 0 ] && "$DVC" stage list --name-only | wc -l || true)
# the stages' output (nst, DVC itself) goes through the pipe: unbuffered, so it shows as it comes
PYTHONUNBUFFERED=1 "$DVC" repro "$@" | .venv/bin/python scripts/repro_progress.py $total
secs=$(($(date +%s) - start))
profile=$(.venv/bin/python -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["profile"])')
if [ "$(cksum dvc.lock 2>/dev/null || true)" = "$lock_before" ]; then # nothing was reproduced
  echo "== make repro: done in $secs s (profile: $profile); compare the results: make exps =="
  exit 0
fi
cat <<MSG

== make repro: done in $((secs / 60)) min $((secs % 60)) s (profile: $profile) ==
  data/                  the images, data/lock.json (sha256 per file), data/ATTRIBUTION.md
  results/<study>/       trials.csv, curves.csv, images/, summary.json, metrics.json, optuna.db
  results/methods/       the methods compared: results.csv, summary.json, metrics.json, images/,
                         runs/<method>/ (the trained networks: model.pt, losses.jsonl)
  reports/index.html     the report (open it in a browser; reports/README.md in Markdown)

Browse:
  make ui                                   MLflow UI on http://127.0.0.1:5000 (every trial's run)
  .venv/bin/optuna-dashboard sqlite:///results/<study>/optuna.db   Optuna dashboard, 127.0.0.1:8080
  make exps                                 per study and experiment: best values; methods' means
  .venv/bin/dvc exp run -S study.trials=20  more trials; compare: make exps / dvc params diff
MSG
