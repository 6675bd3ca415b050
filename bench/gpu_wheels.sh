#!/usr/bin/env bash
# Run HERE (not on the GPU machine) before a device run: downloads into .whl/ (git-ignored)
# the wheels of the Python packages that repops and bench.gpu_check import and that the
# lent GPU machine's image lacks (pydantic and its parts, eth-hash with pycryptodome), at
# the versions of this checkout's venv, for the image's CPython 3.12 on x86-64.
# bench/gpu_run.sh installs them there.  About 5 MB; the working tree that travels to the
# device must stay under 64 MiB.
#   bench/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
pins=()
for p in pydantic pydantic_core annotated-types typing-inspection eth-hash pycryptodome; do
  v=$("$PY" -m pip show "$p" 2>/dev/null | sed -n 's/^Version: //p')
  [ -n "$v" ] || { echo "gpu_wheels: $p is not installed in $PY's environment" >&2; exit 1; }
  pins+=("$p==$v")
done
rm -rf .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
ls -1 .whl
echo "gpu_wheels: $(du -sh .whl | cut -f1) in .whl/; carry .whl to the device and run bench/gpu_run.sh"
