#!/usr/bin/env bash
# The CUDA paths, run for real on this machine's GPU(s), sized for under 5 minutes (not yet timed
# on a GPU: none has been lent so far): tiny-config training,
# sampling and forecasting (bf16 autocast, with and without torch.compile), loader workers into
# pinned memory, NCCL data-parallel training where there are 2 or more GPUs, then training
# throughput at 256 x 256 with a 35 M-parameter U-Net. PASS / FAIL / SKIP per path, samples/s and
# peak GPU memory. Without a CUDA GPU: one line, exit 0.
#
#   bash benchmarks/gpu_check.sh            # after the README's install command
#   bash benchmarks/gpu_check.sh --cpu      # the same script on the CPU (a smoke run)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import htweather.training" 2>/dev/null; then
    echo "gpu_check: htweather is not importable with $PYTHON; install it first (see docs/getting-started.md)"
    exit 1
fi
exec "$PYTHON" benchmarks/gpu_check.py "$@"
