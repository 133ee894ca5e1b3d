#!/usr/bin/env bash
# Regenerates Sources/ONNXProto/onnx.pb.swift from Scripts/proto/onnx.proto.
# onnx.proto is the official file shipped in the `onnx` wheel (onnx 1.23.2, IR version 14):
#   pip download --no-deps onnx==1.23.2 && unzip -p onnx-*.whl onnx/onnx.proto > Scripts/proto/onnx.proto
# Needs protoc (Debian: protobuf-compiler) and protoc-gen-swift from apple/swift-protobuf 1.39.0:
#   git clone --branch 1.39.0 https://github.com/apple/swift-protobuf && cd swift-protobuf &&
#   swift build -c release --product protoc-gen-swift
# then: PROTOC_GEN_SWIFT=/path/to/.build/release/protoc-gen-swift Scripts/generate-onnx-proto.sh
set -euo pipefail
cd "$(dirname "$0")/.."
plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
[ -x "$plugin" ] || { echo "error: protoc-gen-swift not found; set PROTOC_GEN_SWIFT (see the comment at the top of this script)" >&2; exit 1; }
command -v protoc >/dev/null || { echo "error: protoc not found; apt-get install protobuf-compiler" >&2; exit 1; }
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
  --proto_path=Scripts/proto --swift_out=Sources/ONNXProto Scripts/proto/onnx.proto
echo "wrote Sources/ONNXProto/onnx.pb.swift"
