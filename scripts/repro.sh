#!/usr/bin/env bash
# `make repro`: run the DVC pipeline (dvc.yaml, params.yaml): fetch -> study@<name> and
# methods-plan -> train@<method> -> methods -> report.
# Works as the first command on a fresh clone (make runs setup first) and offline (the fetch
# stage falls back to the embedded sample with a loud warning). Re-running re-does only what
# changed. Each stage is announced as "== [i/N] <stage> ==". Extra arguments go to one plain
# `dvc repro` (e.g. scripts/repro.sh study@layers). DVC=<path> overrides the dvc used.
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
if [ $# -eq 0 ]; then
  # one `dvc repro <stage>` per stage, so the terminal says where the pipeline is; each also
  # re-checks the stages upstream of it, so the order of dvc.yaml cannot break the DAG's
  mapfile -t stages < <("$DVC" stage list --name-only)
  for i in "${!stages[@]}"; do
    echo "== [$((i + 1))/${#stages[@]}] ${stages[$i]} =="
    "$DVC" repro "${stages[$i]}"
  done
else
  "$DVC" repro "$@"
fi
secs=$(($(date +%s) - start))

profile=$(.venv/bin/python -c 'import yaml; print(yaml.safe_load(open("params.yaml"))["profile"])')
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
  .venv/bin/dvc metrics show                best value per objective per study, each method's means
  .venv/bin/dvc exp run -S study.trials=20  more trials; compare: make exps / dvc params diff
MSG
