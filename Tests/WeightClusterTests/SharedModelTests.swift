import Execution
import Foundation
import ONNXFormat
import Testing
import _TestSupport

/// ../shared/models (the real PyTorch exports) against onnxruntime's logits on 64 test images.
/// Skipped when ../shared is absent; the full 10,000-image accuracy check is Scripts/check-reference-accuracy.sh.
@Suite struct SharedModelTests {
    static let models = ["vgg16-fmnist", "alexnet-fmnist"]

    @Test(.enabled(if: TestSupport.sharedModels != nil, "../shared/models is absent"), arguments: models)
    func logitsMatchOnnxRuntime(_ name: String) throws {
        let dir = try #require(TestSupport.sharedModels)
        let executor = try Executor(graph: try ONNXModelFile.load("\(dir)/\(name).onnx"))
        let input = try TestSupport.readFloat(Fixtures.path("shared/input64.npy"))
        let expected = try TestSupport.readFloat(Fixtures.path("shared/\(name).logits64.npy"))
        let logits = try executor(input)
        #expect(logits.shape == [64, 10])
        #expect(TestSupport.maxAbsDifference(logits.scalars, expected.scalars) <= 1e-4)
    }
}
