#!/usr/bin/env bash
# The main job on the built-in default: set up, build, then compress the bundled small VGG in every form — scalar
# palettization at 4, 3 and 2 bits (per tensor and per group of 16 output channels), vector palettization (pairs of
# weights at 1 and 2 bits per weight), the seed's kernel clustering (plain and scaled at −85.6% and −95%), and the
# data-aware forms: LUTs weighted by each weight's sensitivity on 128 training images, bits allocated per layer
# to 2 and 1.5 bits per weight, and both with GPTQ-style error compensation — and measure each on the 10,000 Fashion-MNIST test images: one table and one chart of accuracy against footprint,
# the frontier. Writes the table, CSV, JSON, Markdown and SVG chart to .build/demo-sweep/.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product weightcluster
.build/release/weightcluster inspect
echo
.build/release/weightcluster sweep --bits 4,3,2 --granularity per-tensor,per-grouped-channel --cluster-dim 1 \
  --out .build/demo-palettization "$@"
.build/release/weightcluster sweep --bits 3,2 --granularity per-grouped-channel --calibration 128 --bits-per-weight 2,1.5 \
  --out .build/demo-sensitivity "$@"
.build/release/weightcluster sweep --bits 3,2 --granularity per-grouped-channel --calibration 128 --compensate \
  --bits-per-weight 2,1.5 --out .build/demo-compensated "$@"
.build/release/weightcluster sweep --cluster-dim 2 --vector-bits-per-weight 1,2 --granularity per-tensor \
  --kernel-reduction 0.856,0.95 --kernel-modes plain,scaled --include .build/demo-palettization/sweep.json \
  --include .build/demo-sensitivity/sweep.json --include .build/demo-compensated/sweep.json --out .build/demo-sweep "$@"
