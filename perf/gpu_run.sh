#!/usr/bin/env bash
# On a lent GPU machine: unpack the Python packages its image lacks (.gpu_kit/site.tar.xz, made here by
# perf/gpu_kit.sh and carried to the machine), install this package next to them, then run
# perf/gpu_run.py OUT [--dry] [--budget-s S]. Without the kit it uses whatever Python environment is active.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bash perf/gpu_run.sh OUT [--dry] [--budget-s S]}
shift
KIT_PY=$(cat .gpu_kit/python_version 2>/dev/null || echo 3.12)
HERE_PY=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [ -f .gpu_kit/site.tar.xz ] && [ "$KIT_PY" != "$HERE_PY" ]; then
  # its compiled wheels would not import under another Python
  echo "[gpu_run] .gpu_kit is for Python $KIT_PY, this is $HERE_PY: using the active environment" >&2
elif [ -f .gpu_kit/site.tar.xz ]; then
  SITE=${GPU_KIT_SITE:-/tmp/reisoseg_site}
  mkdir -p "$SITE"
  tar -xJf .gpu_kit/site.tar.xz -C "$SITE"
  python3 -m pip install -q --no-deps --no-index --no-build-isolation --no-compile --target "$SITE" . >/dev/null
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PATH="$SITE/bin:$PATH"
fi
exec python3 perf/gpu_run.py "$OUT" "$@"
