#!/usr/bin/env bash
# A fully-connected layer dense against its neuron-clustered (shared-column) form, in the executor, batch 64,
# at column reduction 0.5 and 0.9; prints milliseconds per batch, the speed ratio, the multiply-add ratio and
# peak RSS. Default layer: AlexNet's 4096×4096 /classifier/classifier.5/Gemm (random weights without ../shared).
#   Scripts/bench-neurons.sh [MODEL] [--layer NAME] [--batch B] [--repeats N] [--avx512]
# --avx512 unsets OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for this run, so OpenBLAS picks its own kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
args=()
for a in "$@"; do
  if [ "$a" = --avx512 ]; then unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; else args+=("$a"); fi
done
swift build -c release --product wc-neuron-bench >/dev/null
exec .build/release/wc-neuron-bench "${args[@]}"
