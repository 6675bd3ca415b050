#!/usr/bin/env bash
# The ONE prepared device run for repops-2 on a lent CUDA machine (UNVERIFIED: written
# without a GPU).  Installs the carried wheels of .whl/ (bench/gpu_wheels.sh makes them
# here) into /tmp/site, then runs bench/gpu_check.sh (build, every op's bits CPU vs GPU,
# whole-step state hashes CPU vs GPU, bench ratios vs torch fp32 and TF32) and
# bench/gpu_scale.sh (data-parallel W = 1 / W = 2 on the GPU vs the CPU hashes), each
# under its own limit, so that both fit one 10-minute device command.  Logs go to
# $OUT/ (the device tool's output folder) when it is set, else to ./out/.  Exit 0 only if
# both checks pass.
#   bench/gpu_run.sh [check] [scale]        (default: both; CHECK_S / SCALE_S: limits in s)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
log="${OUT:-$PWD/out}"
mkdir -p "$log"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "FAIL installing the carried wheels"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
which=("$@")
[ ${#which[@]} -gt 0 ] || which=(check scale)
rc=0
for w in "${which[@]}"; do
  case "$w" in
    check) cmd=(bench/gpu_check.sh) lim="${CHECK_S:-330}" ;;
    scale) cmd=(bench/gpu_scale.sh) lim="${SCALE_S:-230}" ;;
    *) echo "gpu_run: unknown check $w (check, scale)"; exit 2 ;;
  esac
  echo "=== $w (limit ${lim} s)"
  t0=$SECONDS
  timeout --kill-after=10 "$lim" "${cmd[@]}" 2>&1 | tee "$log/gpu_$w.log"
  r=${PIPESTATUS[0]}
  echo "=== $w: exit $r after $((SECONDS - t0)) s"
  [ "$r" -eq 0 ] || rc=1
done
exit "$rc"
