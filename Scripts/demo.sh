#!/usr/bin/env bash
# The main job on the built-in default: set up, build, and evaluate the bundled small VGG on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product weightcluster
.build/release/weightcluster inspect
echo
.build/release/weightcluster evaluate "$@"
