#!/usr/bin/env bash
# Palettizing every weight of VGG-16 (15.2M) at 4 bits per grouped channel (16 output channels per LUT):
# weightcluster against the plain numpy reference (Benchmarks/palettize_reference.py: quantile seeds, Lloyd on
# sorted values with prefix sums, exact assignment) in the same run. Prints clustering seconds, mean squared
# error, peak RSS, and the ratios ours / numpy (targets: time ≤ 0.3, MSE ≤ 1.0). Best of --repeats runs each.
#   Scripts/bench-palettization.sh [MODEL] [--bits B] [--granularity G] [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/.."
model=../shared/models/vgg16-fmnist.onnx bits=4 granularity=per-grouped-channel repeats=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bits) bits=$2; shift 2 ;;
    --granularity) granularity=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    *) model=$1; shift ;;
  esac
done
[ -f "$model" ] || { echo "error: model not found: $model" >&2; exit 1; }
venv=.build/ort-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import onnx, numpy" 2>/dev/null; then
  python3 -m venv "$venv" && "$venv/bin/pip" install -q onnxruntime numpy onnx
fi
swift build -c release --product weightcluster >/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq "$repeats"); do
  /usr/bin/time -f "%M" -o "$out/ours-rss-$i" .build/release/weightcluster compress "$model" -o "$out/p.onnx" --bits "$bits" \
    --granularity "$granularity" --group-size 16 --json > "$out/ours-$i.json"
  /usr/bin/time -f "%M" -o "$out/ref-rss-$i" "$venv/bin/python" Benchmarks/palettize_reference.py "$model" --bits "$bits" \
    --granularity "$granularity" --group-size 16 --time-only --json > "$out/ref-$i.json"
done
python3 - "$out" "$repeats" "$bits" "$granularity" <<'PY'
import json, sys
out, n, bits, granularity = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ours = [json.load(open(f"{out}/ours-{i}.json")) for i in range(1, n + 1)]
ref = [json.load(open(f"{out}/ref-{i}.json")) for i in range(1, n + 1)]
rss = lambda who: max(int(open(f"{out}/{who}-rss-{i}").read().split()[-1]) for i in range(1, n + 1)) / 1024
o = min(r["clustering_seconds"] for r in ours)
t = min(r["seconds"] for r in ref)
mo, mt = ours[0]["palettization_mse"], ref[0]["mse"]
print(f"{ours[0]['palettized_weights']} weights, {bits}-bit {granularity} (best of {n})")
print(f"  weightcluster: {o:6.2f} s  MSE {mo:.6e}  peak RSS {rss('ours'):.0f} MiB (whole command)")
print(f"  numpy        : {t:6.2f} s  MSE {mt:.6e}  peak RSS {rss('ref'):.0f} MiB (whole script)")
print(f"ratio time (ours / numpy): {o / t:.3f}   ratio MSE: {mo / mt:.4f}")
PY
