#!/usr/bin/env bash
# The GPU check of one machine, meant to take under 5 minutes on one current GPU: the CUDA
# paths timed and measured (benchmarks/gpu_check.py: gatys fp32 against bf16 per backbone,
# each method's training img/s and peak memory, apply at 1024 and 2048 px, DDP of world size 1
# over NCCL), then the tests marked gpu. Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -m benchmarks.gpu_check --device cuda "$@"
"$PY" -m pytest -m gpu -q -p no:cacheprovider tests/test_gpu.py
