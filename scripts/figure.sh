#!/usr/bin/env bash
# `make figure`: the README's figure, docs/assets/methods-grid.png, drawn from the pipeline's
# own results: `scripts/repro.sh methods` reproduces the methods comparison's stages (fetch,
# methods-plan, train@<method>, methods; those `make repro` already ran are cached and skip),
# then the report's content x style x method grid (nst.report.methods) is built into a
# temporary folder and copied over the figure. The profile is params.yaml's (quick: 2 photos x
# 2 styles, about 10 minutes on 2 cores from nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/repro.sh methods
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/results"
ln -s "$PWD/results/methods" "$tmp/results/methods" # the comparison alone: no study sections
.venv/bin/nst report --results "$tmp/results" --out "$tmp/report" --reconstruction-steps 0 >/dev/null
mkdir -p docs/assets
# a 256-colour palette: a third of the RGB file's size (git keeps every version of it)
.venv/bin/python -c 'import sys; from PIL import Image; Image.open(sys.argv[1]).convert("RGB").quantize(256).save(sys.argv[2], "PNG", optimize=True)' \
  "$tmp/report/assets/index-methods-grid.png" docs/assets/methods-grid.png.tmp
mv docs/assets/methods-grid.png.tmp docs/assets/methods-grid.png
echo "figure: wrote docs/assets/methods-grid.png from results/methods ($(.venv/bin/python -c \
  'import yaml; print(yaml.safe_load(open("params.yaml"))["profile"])') profile)"
