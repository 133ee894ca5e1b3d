#!/usr/bin/env bash
# The main job on the built-in default: set up, build, then cluster the bundled small VGG's kernels at three
# reductions in both modes and measure each on the 10,000 Fashion-MNIST test images (a short sweep).
# Writes the table, CSV, JSON, Markdown and SVG chart to .build/demo-sweep/.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product weightcluster
.build/release/weightcluster inspect
echo
.build/release/weightcluster sweep --kernel-reduction 0.5,0.856,0.95 --kernel-modes plain,scaled --out .build/demo-sweep "$@"
