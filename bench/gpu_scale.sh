#!/usr/bin/env bash
# GPU scale bench (UNVERIFIED: written without a GPU).  On a machine with CUDA and nvcc,
# within 10 minutes (about 3 once the kernel is built): builds the CUDA kernel once, runs `python -m bench.scale` on CPU
# and on CUDA with the same reps, prints the CUDA numbers, and fails unless every W = 1
# state hash on the GPU equals the CPU one and the W = 2 bits equal W = 1 on the GPU.
# With one GPU the two ranks share cuda:0 over gloo (NCCL refuses two ranks on one GPU),
# so W = 2 there measures sharing, not scaling; with two or more GPUs it uses NCCL.
#   bench/gpu_scale.sh            (PYTHON=... to choose the interpreter, REPS=N)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
REPS="${REPS:-10}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
command -v nvcc >/dev/null || echo "warning: nvcc not on PATH (torch's extension builder needs it)"
timeout 60 "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "FAIL no CUDA device")'
# one build before the workers start (two would queue on the extension builder's lock)
t0=$SECONDS
timeout 300 "$PY" -c 'from repops.cuda_kernels import _module; _module()'
echo "CUDA kernel ready in $((SECONDS - t0)) s"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # run DEVICE LIMIT_S: prints the bench's output; FAIL and exit if it fails or overruns
  local rc=0
  timeout --kill-after=10 "$2" "$PY" -m bench.scale --reps "$REPS" --device "$1" \
    --timeout $(($2 / 2 - 5)) >"$tmp/$1.txt" || rc=$?
  echo "--- $1"
  cat "$tmp/$1.txt"
  if [ "$rc" -ne 0 ]; then
    echo "FAIL bench.scale --device $1 exited $rc"
    exit 1
  fi
}
run cpu 120
run cuda 180
want=$(grep '^state_hash_' "$tmp/cpu.txt" | sort)
got=$(grep '^state_hash_' "$tmp/cuda.txt" | sort)
if [ -z "$want" ] || [ "$want" != "$got" ]; then
  echo "FAIL GPU W=1 state hashes differ from CPU:"
  diff <(echo "$want") <(echo "$got") || true
  exit 1
fi
if grep -q '^bits_equal_.*: False' "$tmp/cuda.txt" || ! grep -q '^bits_equal_' "$tmp/cuda.txt"; then
  echo "FAIL GPU W=2 bits differ from GPU W=1"
  exit 1
fi
echo "PASS GPU W=1 state hashes equal CPU ($(wc -l <<<"$want") models); GPU W=2 bits equal W=1"
