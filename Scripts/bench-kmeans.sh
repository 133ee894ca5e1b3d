#!/usr/bin/env bash
# k-means on VGG-16's real 3×3 kernel set (1,634,368 rows × 9): weightcluster against faiss-cpu and scikit-learn
# at K = 4096 (same data, same machine, same run), then weightcluster alone at the paper's point (−85.6%).
#   Scripts/bench-kmeans.sh [MODEL] [--skip-sklearn]
# faiss and scikit-learn run 25 iterations (faiss's default); weightcluster runs with its defaults
# (at most 30 iterations, stopping when an iteration gains less than 0.1%).
set -euo pipefail
cd "$(dirname "$0")/.."
model=../shared/models/vgg16-fmnist.onnx
extra=()
for a in "$@"; do case "$a" in --skip-sklearn) extra+=(--skip-sklearn) ;; *) model=$a ;; esac; done
[ -f "$model" ] || { echo "error: model not found: $model" >&2; exit 1; }
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-<unset>}"
venv=.build/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import faiss, sklearn, numpy" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q faiss-cpu scikit-learn numpy onnxruntime
fi
swift build -c release --product wc-kmeans-bench >/dev/null
kernels=$(mktemp --suffix=.npy)
trap 'rm -f "$kernels"' EXIT
ours=$(.build/release/wc-kmeans-bench "$model" 4096 --tolerance 0.001 --iterations 30 --export "$kernels")
theirs=$("$venv/bin/python" Benchmarks/kmeans_baselines.py "$kernels" 4096 "${extra[@]}")
paper=$(.build/release/wc-kmeans-bench "$model" 235264 --tolerance 0.001 --iterations 30)
python3 - "$ours" "$theirs" "$paper" <<'PY'
import json, sys
ours, theirs, paper = (json.loads(a) for a in sys.argv[1:4])
print(f"VGG-16 3x3 kernels: {ours['rows']} rows x 9, K = 4096")
print(f"  weightcluster : {ours['seconds']:7.2f} s  inertia {ours['inertia']:.2f}  ({ours['iterations']} iterations, {ours['initialization']} init, {ours['assignment']})  peak RSS {ours['peak_rss_bytes'] / 2**20:.0f} MiB")
best = None
for name in ("faiss", "sklearn"):
    if name in theirs:
        t = theirs[name]
        print(f"  {name:13s} : {t['seconds']:7.2f} s  inertia {t['inertia']:.2f}  (version {t['version']})")
        if best is None or t["seconds"] < best[1]["seconds"]:
            best = (name, t)
name, t = best
print(f"  speed-up against the faster ({name}): {t['seconds'] / ours['seconds']:.2f}x;  inertia ratio ours/{name}: {ours['inertia'] / t['inertia']:.4f}")
print(f"paper point, K = {paper['k']} (-85.6% kernels): {paper['seconds']:.2f} s, inertia {paper['inertia']:.2f}, {paper['iterations']} iterations, peak RSS {paper['peak_rss_bytes'] / 2**20:.0f} MiB")
PY
