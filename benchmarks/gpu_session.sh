#!/usr/bin/env bash
# Everything that needs a GPU, as one prepared run (about 9 minutes on one H200):
#   1. the CUDA-only tests (python -m pytest -m cuda),
#   2. benchmarks/gpu.py (steps/s and points/s, time to 18/24 dB test PSNR on MNIST,
#      render and mesh throughput),
# with the GPU's name, the logs and gpu.json written into $OUT (default: gpu_out/).
#
#   bash benchmarks/gpu_session.sh
#
# On a machine without the project's dependencies, two git-ignored folders can travel with the
# working tree: .whl/ (wheels of missing packages, e.g. trimesh; installed into /tmp/site) and
# .gpu_data/mnist/ (MNIST's four IDX .gz files; used as INR_GON_DATA). Variables:
# TEST_SECONDS (150) and BENCH_SECONDS (450) cap the two parts, SCALE (0.9) scales gpu.py's
# section limits, GPU_ARGS adds gpu.py options (e.g. "--quick --device cpu" for a dry run).
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -d .gpu_data/mnist ]; then export INR_GON_DATA=$PWD/.gpu_data; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
{
    date -u +%Y-%m-%dT%H:%M:%SZ
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
} 2>&1 | tee "$OUT/machine.txt"
echo "== CUDA tests"
timeout "${TEST_SECONDS:-150}" "$PY" -m pytest -q -m cuda -p no:cacheprovider tests 2>&1 | tee "$OUT/cuda_tests.txt"
tests_rc=$?
echo "== benchmarks/gpu.py"
# shellcheck disable=SC2086
timeout "${BENCH_SECONDS:-450}" "$PY" benchmarks/gpu.py --json "$OUT/gpu.json" --scale-limits "${SCALE:-0.9}" ${GPU_ARGS:-} \
    2>&1 | tee "$OUT/gpu.txt"
bench_rc=$?
echo "tests rc=$tests_rc  benchmark rc=$bench_rc"
exit $(( tests_rc != 0 || bench_rc != 0 ))
