import Compute
import Execution
import Foundation
import ONNXFormat
import Testing
import _TestSupport

/// Real pretrained models (EfficientNet-Lite0, PP-OCRv4 det/rec, PP-OCR cls) and a seeded ViT-style model, written by
/// `Scripts/fetch-real-models.sh`, against onnxruntime's output for the same seeded input. Too big to commit: the
/// test runs when all of them are in `$WEIGHTCLUSTER_REAL_MODELS` or else in this package's `.build/real-models`,
/// and is skipped otherwise.
///
/// Relative error is max|ours − onnxruntime| / max|onnxruntime| over the whole output, and must be ≤ 1e-4.
@Suite struct RealModelTests {
    static let names = ["efficientnet_lite0", "ppocrv4_det", "ppocrv4_rec", "ppocr_cls_v2", "vit_tiny"]

    static let directory: String = ProcessInfo.processInfo.environment["WEIGHTCLUSTER_REAL_MODELS"]
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/real-models").path

    static let present = names.allSatisfy { name in
        [".onnx", ".input.npy", ".output.npy"].allSatisfy { FileManager.default.fileExists(atPath: "\(directory)/\(name)\($0)") }
    }

    @Test(.enabled(if: present, "real models absent: run Scripts/fetch-real-models.sh (or set WEIGHTCLUSTER_REAL_MODELS)"),
          arguments: names)
    func matchesOnnxRuntime(_ name: String) throws {
        let base = "\(Self.directory)/\(name)"
        let executor = try Executor(graph: try ONNXModelFile.load(base + ".onnx"))
        let ours = try executor(try TestSupport.readFloat(base + ".input.npy"))
        let expected = try TestSupport.readFloat(base + ".output.npy")
        #expect(ours.shape == expected.shape, "\(name)")
        let scale = expected.scalars.map(abs).max() ?? 0
        let relative = TestSupport.maxAbsDifference(ours.scalars, expected.scalars) / max(scale, .leastNormalMagnitude)
        #expect(relative <= 1e-4, "\(name): relative error \(relative)")
    }
}
