#!/usr/bin/env bash
# Regenerates the packed-file fixtures (Tests/WeightClusterTests/Fixtures/packed): small .wcm files of the tiny
# models in three forms, written by this build. Tests load them (a file written by format version 1 must keep loading)
# and Scripts/fuzz.sh seeds its `packed` target with them.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product weightcluster >/dev/null
bin=.build/debug/weightcluster models=Tests/WeightClusterTests/Fixtures/models out=Tests/WeightClusterTests/Fixtures/packed
mkdir -p $out
$bin compress $models/tiny_alexnet_opset13.onnx -o $out/alexnet-lut3-int8.wcm --bits 3 --granularity per-grouped-channel \
  --group-size 3 --lut int8 --per-channel-scale --format packed >/dev/null
$bin compress $models/tiny_alexnet_opset13.onnx -o $out/alexnet-pruned-spherical.wcm --sparsity 0.9 --neurons spherical \
  --column-reduction 0.5 --format packed >/dev/null
$bin compress $models/tiny_vgg_opset13.onnx -o $out/vgg-kernels-scaled8.wcm --kernel-reduction 0.9 --kernel-mode scaled \
  --scale-bits 8 --bits 4 --format packed >/dev/null
ls -l $out
