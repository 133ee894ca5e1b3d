import Compute
import Datasets
import Foundation

/// Helpers shared by the tests. Not API.
public enum TestSupport {
    /// ../shared/models relative to the package root, if present.
    public static var sharedModels: String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.deletingLastPathComponent().appendingPathComponent("shared/models").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    public static func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count, "sizes differ: \(a.count) vs \(b.count)")
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    public static func readFloat(_ path: String) throws -> Tensor<Float> {
        switch try NPYFile.read(path) {
        case .float(let t): return t
        case .int64(let t): return Tensor(shape: t.shape, scalars: t.scalars.map { Float($0) })
        case .uint8(let t): return Tensor(shape: t.shape, scalars: t.scalars.map { Float($0) })
        }
    }
}
