#!/usr/bin/env bash
# GPU check for repops-2 (UNVERIFIED: written without a GPU).  On a machine with CUDA and
# nvcc, within 8 minutes: builds the CUDA kernel, checks every op's bits and whole training
# steps CPU vs GPU, and prints the bench ratios vs torch fp32 and TF32.
#   bench/gpu_check.sh            (PYTHON=... to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
command -v nvcc >/dev/null || echo "warning: nvcc not on PATH (torch's extension builder needs it)"
timeout 470 "$PY" -m bench.gpu_check "$@"
