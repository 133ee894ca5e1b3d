#!/usr/bin/env bash
# Installs the system packages WeightCluster builds and runs with, if they are missing (Debian/Ubuntu).
# The Swift 6 toolchain itself must already be on PATH (https://www.swift.org/install/linux/).
set -euo pipefail
packages=(libopenblas-dev zlib1g-dev libzstd-dev libxxhash-dev libjpeg-dev libpng-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: swift is not on PATH; install a Swift 6 toolchain first" >&2; exit 1; }
