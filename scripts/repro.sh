#!/usr/bin/env bash
# `make repro`: until the DVC pipeline lands, stylise a demonstration pair that needs no download.
set -euo pipefail
mkdir -p out
.venv/bin/python -m nst demo --out out/demo.png
