#!/usr/bin/env bash
# The GPU check (issue 16): at most 8 minutes on one GPU. Trains configs/base.yaml for a few hundred steps on a
# generated world from streamed shards (tokens/s and MFU), exports the bundle (fp32 + fp16 trunks), embeds with
# onnxruntime's TensorRT / CUDA providers and searches with faiss-gpu, writing bench/results/gpu_check.md (and
# .json). A stage whose library or provider the host lacks is reported as such, never skipped silently.
#
#   bash bench/gpu_check.sh            # on a GPU host, from the repository root
#   bash bench/gpu_check.sh --smoke    # anywhere: the same stages on CPU with the tiny config (writes /tmp/)
#
# Python: $PYTHON, else .venv/bin/python, else python3. Wheels the host lacks (PyPI unreachable there) can be
# put in $WHEELS (default .wheels/): they are installed from there first, without an index.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
WHEELS=${WHEELS:-.wheels}
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install --quiet --no-index --find-links "$WHEELS" "$WHEELS"/*.whl || echo "gpu_check: some wheels did not install"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_WAIT_POLICY=PASSIVE
if [ "${1:-}" = "--smoke" ]; then
  shift
  exec timeout 900 "$PY" -m bench.gpu_check --smoke --out /tmp/gpu_check_smoke.md "$@"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
exec timeout 480 "$PY" -m bench.gpu_check "$@"
