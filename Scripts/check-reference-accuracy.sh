#!/usr/bin/env bash
# Evaluates ../shared/models/*.onnx on all 10,000 Fashion-MNIST test images (release build) and checks that
# top-1 equals the PyTorch figure in each model's JSON to within 0.05 points.
set -euo pipefail
cd "$(dirname "$0")/.."
models=../shared/models
[ -d "$models" ] || { echo "skipped: $models is absent"; exit 0; }
swift build -c release --product weightcluster >/dev/null
ok=1
for json in "$models"/*.json; do
  name=$(basename "$json" .json)
  expected=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['test_top1_fp32'])" "$json")
  result=$(.build/release/weightcluster evaluate "$models/$name.onnx" --json)
  top1=$(python3 -c "import json,sys; print(json.loads(sys.stdin.read())['top1'])" <<<"$result")
  speed=$(python3 -c "import json,sys; print(round(json.loads(sys.stdin.read())['images_per_second']))" <<<"$result")
  if python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) <= 0.0005 else 1)" "$top1" "$expected"; then
    echo "reference accuracy: $name top-1 $top1 (PyTorch $expected) ok, $speed images/s"
  else
    echo "reference accuracy: $name top-1 $top1 differs from PyTorch $expected by more than 0.05 points" >&2
    ok=0
  fi
done
[ "$ok" -eq 1 ]
