#!/usr/bin/env bash
# Inference throughput of weightcluster against onnxruntime (CPU provider, the same thread count) on standard
# architectures, batch 64 and batch 1, in the same run: for each model and batch, three rounds that alternate a fresh
# weightcluster process and a fresh onnxruntime process; each side's best round is printed, with the ratio and both
# processes' peak RSS.
#   Scripts/bench-architectures.sh [--seconds S] [--batches "64 1"] [NAME_FILTER...]
# Models: ResNet-18, MobileNetV2, SqueezeNet 1.1 (torchvision architectures, seeded random weights, exported by
# Benchmarks/architectures.py at 3×64×64 and 3×224×224), EfficientNet-Lite0 (real weights; needs
# Scripts/fetch-real-models.sh first) and the shared VGG-16 / AlexNet (FashionMNIST, 1×32×32).
# NAME_FILTER keeps only models whose name contains one of the words. Set OPENBLAS_CORETYPE=Haswell as CI does.
# WC_INFERENCE_BENCH=PATH runs another build of wc-inference-bench (a baseline) instead of building this tree's.
# WEIGHTCLUSTER_KERNELS=avx2 runs the AVX2 kernels, as on a processor without AVX-512 (generic: the baseline ones, with
# the packed-weight product off);
# OPENBLAS_CORETYPE=SkylakeX gives OpenBLAS its AVX-512 kernels (unset, OpenBLAS 0.3.21 takes this processor for a
# Prescott and runs SSE3 kernels). WC_PASS_BYTES=0 runs each batch in one pass (Executor.Options.passBytes; the
# default runs it in passes whose largest intermediate stays under 16 MB).
# "quickest": onnxruntime's quickest single batch over ours, across the three rounds (ours / onnxruntime in speed, as
# "ratio" is): the host's load moves round averages by tens of percent, single batches at their quickest much less.
# "host GF/s" is what this machine gave just before each row: one AVX-512 (else AVX2) multiply-add loop per thread
# (Benchmarks/fma_peak.c), all at once, the slowest copy's GFLOP/s (168 per core on the AVX-512 host of sessions 16–19
# when no other tenant shared it; a low figure means the row was measured on a busy host, for both engines). "trip ns":
# a cache line's round trip between two threads just before each row (Benchmarks/pingpong.c).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=1
batches="64 1"
filters=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    -*) echo "usage: $0 [--seconds S] [--batches \"64 1\"] [NAME_FILTER...]" >&2; exit 2 ;;
    *) filters+=("$1"); shift ;;
  esac
done
threads=$(nproc)
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}, WEIGHTCLUSTER_KERNELS=${WEIGHTCLUSTER_KERNELS:-<unset: the best this processor runs>}, $threads threads each, best of 3 alternating rounds, ≥${seconds}s timed per round"

# torch (CPU wheel under $PIP_FIND_LINKS when there is one), onnx and onnxruntime in a virtualenv of their own.
venv=.build/real-models-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, onnx, onnxruntime, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  torch_wheel=$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-*+cpu-*.whl 2>/dev/null | sort | tail -1 || true)
  "$venv/bin/pip" install -q "${torch_wheel:-torch}" onnx onnxruntime numpy
fi
models=.build/arch-models
"$venv/bin/python" Benchmarks/architectures.py "$models" .build/real-models 2>/dev/null
bench=${WC_INFERENCE_BENCH:-.build/release/wc-inference-bench}
[ -n "${WC_INFERENCE_BENCH:-}" ] || swift build -c release --product wc-inference-bench >/dev/null

candidates=(resnet18-64 resnet18-224 mobilenetv2-64 mobilenetv2-224 squeezenet1_1-64 squeezenet1_1-224 efficientnet_lite0-224)
paths=()
for name in "${candidates[@]}"; do paths+=("$models/$name.onnx"); done
paths+=(../shared/models/vgg16-fmnist.onnx ../shared/models/alexnet-fmnist.onnx)

# The host's multiply-add rate right now: one copy of the loop per thread at once, the slowest one's GFLOP/s.
peak=.build/fma_peak
compiler=$(command -v clang || command -v cc || true)
if grep -qwE 'avx512f|avx2' /proc/cpuinfo && [ -n "$compiler" ] && "$compiler" -O2 -o "$peak" Benchmarks/fma_peak.c 2>/dev/null; then
  host_rate() {
    local outputs=() i
    for ((i = 0; i < threads; i++)); do outputs+=("$(mktemp)"); "$peak" > "${outputs[-1]}" & done
    wait
    cat "${outputs[@]}" | awk 'NR == 1 || $1 < low { low = $1 } END { print low }'
    rm -f "${outputs[@]}"
  }
else
  host_rate() { echo 0; }
fi
# How long the two threads take to hand a cache line back and forth right now, ns (Benchmarks/pingpong.c): about 100
# where the cores share a last-level cache, 400–550 when the hypervisor has placed them apart, where both engines lose
# their second thread at batch 1; 0 where it cannot be built.
pingpong=.build/pingpong
if [ -n "$compiler" ] && "$compiler" -O2 -pthread -o "$pingpong" Benchmarks/pingpong.c 2>/dev/null; then
  round_trip() { "$pingpong"; }
else
  round_trip() { echo 0; }
fi

rows=()
for path in "${paths[@]}"; do
  name=$(basename "$path" .onnx)
  if [ ${#filters[@]} -gt 0 ]; then
    keep=0; for f in "${filters[@]}"; do case "$name" in *"$f"*) keep=1 ;; esac; done
    [ "$keep" -eq 1 ] || continue
  fi
  [ -f "$path" ] || { echo "skipped $name: $path is missing" >&2; continue; }
  for batch in $batches; do
    host=$(host_rate)
    trip=$(round_trip)
    ours=(); ort=()
    for _ in 1 2 3; do
      ours+=("$("$bench" "$path" --batch "$batch" --seconds "$seconds" --throughput-only)")
      ort+=("$("$venv/bin/python" Benchmarks/ort_inference.py "$path" "$batch" 0 "$threads" "$seconds")")
    done
    rows+=("$(python3 - "$name" "$batch" "$host" "$trip" "${ours[@]}" "${ort[@]}" <<'PY'
import json, sys
name, batch, host, trip, runs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), [json.loads(a) for a in sys.argv[5:]]
ours, ort = runs[:3], runs[3:]
best = lambda rs: max(r["images_per_second"] for r in rs)
rss = lambda rs: max(r["peak_rss_bytes"] for r in rs) / 2**20
least = lambda rs: min(r["batch_seconds_least"] for r in rs)
print(json.dumps([name, int(batch), best(ours), best(ort), rss(ours), rss(ort), ours[0].get("kernels", "?"), host,
                  least(ort) / least(ours), trip]))
PY
)")
    echo "${rows[-1]}" >&2
  done
done
python3 - "${rows[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
print(f"{'model':<22} {'batch':>5} {'ours img/s':>11} {'ORT img/s':>10} {'ratio':>6} {'quickest':>8} {'ours RSS':>9} {'ORT RSS':>8} {'kernels':<8} host GF/s  trip ns")
for name, batch, ours, ort, rss_ours, rss_ort, kernels, host, quickest, trip in rows:
    rate = f"{host:.0f}" if host > 0 else "-"
    trips = f"{trip:.0f}" if trip > 0 else "-"
    print(f"{name:<22} {batch:>5} {ours:>11.1f} {ort:>10.1f} {ours / ort:>6.2f} {quickest:>8.2f} {rss_ours:>7.0f}Mi {rss_ort:>6.0f}Mi {kernels:<8} {rate:>9} {trips:>8}")
PY
