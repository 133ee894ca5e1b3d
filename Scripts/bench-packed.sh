#!/usr/bin/env bash
# The packed file against the dense model, in the same run: `weightcluster evaluate` on the dense ONNX model, on the
# codebook ONNX file and on the packed file (same compression, batch 64), each under /usr/bin/time: peak RSS,
# throughput, and the ratios packed / dense (targets: RSS ≤ 0.5, throughput ≥ 0.9); then whether the packed file
# predicts exactly what the codebook ONNX file predicts, image by image, and file size against footprint.
#   Scripts/bench-packed.sh [MODEL] [--limit N] [--repeats R] [COMPRESS FLAGS…]
# Defaults: ../shared/models/vgg16-fmnist.onnx (the bundled small VGG when absent), all 10,000 test images,
# 3 repeats (median throughput, largest RSS), `--bits 4 --granularity per-grouped-channel`.
set -euo pipefail
cd "$(dirname "$0")/.."
model=../shared/models/vgg16-fmnist.onnx
[ -f "$model" ] || model=Sources/WeightClusterCLI/Resources/small-vgg-fmnist.onnx
limit=() repeats=3 flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --limit) limit=(--limit "$2"); shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --*) flags+=("$1" "$2"); shift 2 ;;
    *) model=$1; shift ;;
  esac
done
[ ${#flags[@]} -eq 0 ] && flags=(--bits 4 --granularity per-grouped-channel)
[ -f "$model" ] || { echo "error: model not found: $model" >&2; exit 1; }
swift build -c release --product weightcluster >/dev/null
bin=.build/release/weightcluster
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
$bin compress "$model" -o "$out/c.onnx" "${flags[@]}" --format codebook --json > "$out/c.json"
$bin compress "$model" -o "$out/p.wcm" "${flags[@]}" --format packed --json > "$out/p.json"
echo "model: $model; compression: ${flags[*]}; batch 64; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for i in $(seq "$repeats"); do
  for name in dense c p; do
    file=$([ $name = dense ] && echo "$model" || ([ $name = c ] && echo "$out/c.onnx" || echo "$out/p.wcm"))
    /usr/bin/time -f "%M" -o "$out/$name-rss-$i" $bin evaluate "$file" "${limit[@]}" --batch 64 --json \
      --predictions "$out/$name-pred" > "$out/$name-$i.json"
  done
done
python3 - "$out" "$repeats" <<'PY'
import json, os, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
def stats(name):
    runs = [json.load(open(f"{out}/{name}-{i}.json")) for i in range(1, repeats + 1)]
    rss = max(int(open(f"{out}/{name}-rss-{i}").read().split()[-1]) for i in range(1, repeats + 1)) / 1024
    return runs[0]["top1"], statistics.median(r["images_per_second"] for r in runs), rss, runs[0]["images"]
c, p = json.load(open(f"{out}/c.json")), json.load(open(f"{out}/p.json"))
rows = {"dense ONNX": stats("dense"), "codebook ONNX": stats("c"), "packed": stats("p")}
sizes = {"dense ONNX": None, "codebook ONNX": c["file_bytes"], "packed": p["file_bytes"]}
print(f"{'model file':<14} {'file bytes':>11} {'top-1':>7} {'images/s':>9} {'peak RSS':>10}")
for k, (top1, ips, rss, n) in rows.items():
    print(f"{k:<14} {sizes[k] if sizes[k] else '-':>11} {100*top1:6.2f}% {ips:9.1f} {rss:8.1f} MiB")
d, q = rows["dense ONNX"], rows["packed"]
print(f"images: {d[3]}; footprint {p['footprint_bytes']} bytes, packed file {p['file_bytes']} bytes "
      f"(file − footprint = {p['file_bytes'] - p['footprint_bytes']} bytes), "
      f"{p.get('bits_per_index', 0):.3f} bits per index stored, entropy {p.get('index_entropy', 0):.3f}")
print(f"packed / dense: peak RSS ratio {q[2] / d[2]:.3f} (target ≤ 0.5), throughput ratio {q[1] / d[1]:.3f} (target ≥ 0.9)")
same = open(f"{out}/c-pred").read() == open(f"{out}/p-pred").read()
print(f"packed predictions {'equal' if same else 'DIFFER FROM'} the codebook ONNX file's on all {d[3]} images")
PY
