#!/usr/bin/env bash
# Training throughput: our engine against PyTorch on the CPU (Debian's python3-torch), the same model (VGG-16 by
# default; any graph of Conv/Relu/Clip/Add/MaxPool/GlobalAveragePool/Flatten/Gemm, e.g. the MobileNetV2-style
# .build/models/small-mobilenetv2-fmnist.onnx of Scripts/train_small_nets.py, made on first use), batch 64, SGD with
# Nesterov momentum, in one run: three rounds that alternate a fresh process of each engine, as
# Scripts/bench-architectures.sh does (a shared host moves single runs by tens of percent); prints each round, then
# each engine's best round (images/s), the ratio of those and peak RSS.
#   Scripts/bench-training.sh [MODEL] [--steps N] [--avx512]
# --avx512 sets OPENBLAS_CORETYPE=SkylakeX (and unsets OPENBLAS_L2_SIZE) for this run: OpenBLAS's AVX-512 kernels.
# (Left to itself, OpenBLAS 0.3.21 takes this machine's processor for a Prescott and runs SSE3 kernels.)
set -euo pipefail
cd "$(dirname "$0")/.."
model=../shared/models/vgg16-fmnist.onnx
steps=10
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --avx512) export OPENBLAS_CORETYPE=SkylakeX; unset OPENBLAS_L2_SIZE; shift ;;
    *) model=$1; shift ;;
  esac
done
mobilenetv2=.build/models/small-mobilenetv2-fmnist.onnx
[ -f "$model" ] || [ "$model" = "$mobilenetv2" ] || { echo "error: model not found: $model" >&2; exit 1; }
if ! /usr/bin/python3 -c "import torch, onnx, numpy" 2>/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch python3-onnx python3-numpy >/dev/null
fi
if [ ! -f "$model" ]; then
  # The MobileNetV2-style net, made here on first use (one epoch: the speed does not depend on its accuracy); it needs
  # Fashion-MNIST (Debian's dataset-fashion-mnist, which Scripts/setup.sh installs).
  [ -d /usr/share/datasets/fashion-mnist ] || Scripts/setup.sh >/dev/null
  echo "making $model (Scripts/train_small_nets.py --arch mobilenetv2 --epochs 1)"
  /usr/bin/python3 Scripts/train_small_nets.py --arch mobilenetv2 --epochs 1 --out "$model" >/dev/null
fi
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
swift build -c release --product wc-train-bench >/dev/null
rounds=()
for round in 1 2 3; do
  rounds+=("$(.build/release/wc-train-bench "$model" --steps "$steps" --batch 64)")
  rounds+=("$(/usr/bin/python3 Benchmarks/torch_training.py "$model" "$steps" 64)")
done
/usr/bin/python3 - "${rounds[@]}" <<'PY'
import json, sys
runs = [json.loads(a) for a in sys.argv[1:]]
def line(r):
    return (f"{r['engine']:>16}: {r['images_per_second']:7.1f} images/s ({r['steps']} steps of {r['batch']}, "
            f"{r['seconds']:.2f} s, {r['threads']} threads), peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB")
for i in range(0, len(runs), 2):
    print(f"round {i // 2 + 1}: ours {runs[i]['images_per_second']:.1f}, PyTorch {runs[i + 1]['images_per_second']:.1f} images/s")
ours = max(runs[0::2], key=lambda r: r['images_per_second'])
theirs = max(runs[1::2], key=lambda r: r['images_per_second'])
print("best round of each:")
for r in (ours, theirs):
    print(line(r))
print(f"ratio (ours / PyTorch): {ours['images_per_second'] / theirs['images_per_second']:.2f}")
PY
