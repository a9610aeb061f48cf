#!/usr/bin/env bash
# The GPU checks as one script, for a machine with a CUDA GPU, PyTorch and Triton but no registry:
# install cffi/pycparser from wheels in .whl/ (if there), build lowprec, run the CUDA tests and
# bench/gpu.py (its arguments are this script's). TESTS="affine or nvfp4" narrows the CUDA tests; OVERHEAD=1
# adds bench/gpu_overhead.py. Output also goes to $OUT/log when OUT is set.
set -uo pipefail
cd "$(dirname "$0")/.."
log=${OUT:-/tmp}/log
{
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site
  fi
  nvidia-smi -L
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -m pip install -q --no-build-isolation --no-deps -e . || exit 1
  PYTHONUNBUFFERED=1 timeout 240 python3 -m pytest -q -x -p no:cacheprovider -k "cuda${TESTS:+ and ($TESTS)}" \
    tests/test_triton.py tests/test_torch_quantize.py
  PYTHONUNBUFFERED=1 timeout 330 python3 bench/gpu.py "$@"
  if [ -n "${OVERHEAD:-}" ]; then PYTHONUNBUFFERED=1 timeout 120 python3 bench/gpu_overhead.py; fi
} 2>&1 | tee "$log"
