#!/usr/bin/env bash
# VGG-16 inference throughput (batch 64): weightcluster against onnxruntime's CPU provider, same model, same machine,
# same run; plus our sgemm path against OpenBLAS called directly. Prints ratios and peak RSS.
#   Scripts/bench-inference.sh [MODEL] [--avx512]
# By default OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE stay as the machine sets them (Haswell kernels here);
# --avx512 unsets both for this command only, so OpenBLAS picks its AVX-512 kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
model=../shared/models/vgg16-fmnist.onnx
avx512=0
for a in "$@"; do case "$a" in --avx512) avx512=1 ;; *) model=$a ;; esac; done
[ -f "$model" ] || { echo "error: model not found: $model" >&2; exit 1; }
if [ "$avx512" -eq 1 ]; then unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-<unset>}"

# onnxruntime in a virtualenv of its own (PyPI).
venv=.build/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q onnxruntime numpy
fi
swift build -c release --product wc-inference-bench >/dev/null
ours=$(.build/release/wc-inference-bench "$model" --batch 64 --iterations 10)
ort=$("$venv/bin/python" Benchmarks/ort_inference.py "$model" 64 10 "$(nproc)")
python3 - "$ours" "$ort" <<'PY'
import json, sys
ours, ort = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"model: {ours['model']}, batch {ours['batch']}, {ours['threads']} threads")
print(f"weightcluster : {ours['images_per_second']:8.1f} images/s  peak RSS {ours['peak_rss_bytes'] / 2**20:6.0f} MiB")
print(f"onnxruntime {ort['onnxruntime']}: {ort['images_per_second']:8.1f} images/s  peak RSS {ort['peak_rss_bytes'] / 2**20:6.0f} MiB")
print(f"ratio weightcluster / onnxruntime: {ours['images_per_second'] / ort['images_per_second']:.2f}")
print("time by operator (one batch): " + ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(ours["seconds_by_op"].items(), key=lambda kv: -kv[1])))
print("sgemm (m, n, k): ours (threads split by us, BLAS single-threaded) vs OpenBLAS threaded, GFLOP/s")
for row in ours["sgemm"]:
    print(f"  {row['m']:5d} {row['n']:5d} {row['k']:5d}: {row['ours_gflops']:7.1f} vs {row['openblas_gflops']:7.1f}  ratio {row['ratio']:.2f}")
PY
