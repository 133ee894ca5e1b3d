import Compute
import Datasets
import Execution
import Foundation
import ONNXFormat
import _TestSupport

/// Paths of the committed fixtures (copied into the test bundle).
enum Fixtures {
    static let root: URL = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func names(in folder: String) -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: path(folder))) ?? []
        return files.filter { $0.hasSuffix(".onnx") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Runs fixture `folder/name` and returns (ours, expected).
    static func run(_ folder: String, _ name: String, options: Executor.Options = .init()) throws -> (Tensor<Float>, Tensor<Float>) {
        let base = path("\(folder)/\(name)")
        let executor = try Executor(graph: try ONNXModelFile.load(base + ".onnx"), options: options)
        let input = try TestSupport.readFloat(base + ".input.npy")
        let expected = try TestSupport.readFloat(base + ".output.npy")
        return (try executor(input), expected)
    }
}
