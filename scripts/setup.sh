#!/usr/bin/env bash
# Create the virtual environment and install nst with its pinned dependencies.
# Idempotent: make only re-runs this when pyproject.toml or this script changes.
set -euo pipefail
PY=${PY:-python3.11}
VENV=${VENV:-.venv}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch/torchvision first and exactly: pip takes these versions from the machine's local wheels.
"$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
# every other package at the version in requirements.lock (`make lock` regenerates it), then nst
# itself without resolving anything, so two machines end with the same `pip freeze`
"$VENV/bin/python" -m pip install -q -r requirements.lock
"$VENV/bin/python" -m pip install -q --no-deps -e ".[dev]"
"$VENV/bin/python" -m pip check >/dev/null || { echo "setup: requirements.lock does not satisfy pyproject.toml; run make lock" >&2; exit 1; }
# Headless Chromium for the report's browser tests (Debian package; optional, never fatal).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "setup: could not install chromium; the browser tests will be skipped" >&2
fi
echo "setup: $("$VENV/bin/python" -c 'import torch, nst; print("torch", torch.__version__, "nst", nst.__version__)')"
