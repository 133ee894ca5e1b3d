import Clustering
import Compute
import Datasets
import Foundation
import Testing

@Suite struct DatasetTests {
    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-data-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func npyRoundTrip() throws {
        let t = Tensor<Float>(shape: [2, 3], scalars: [1, -2, 3.5, 0, 7, 8])
        guard case .float(let back) = try NPYFile.decode(NPYFile.encode(.float(t))) else { Issue.record("type"); return }
        #expect(back == t)
        let i = Tensor<Int64>(shape: [4], scalars: [1, -2, 3, 1 << 40])
        guard case .int64(let iback) = try NPYFile.decode(NPYFile.encode(.int64(i))) else { Issue.record("type"); return }
        #expect(iback == i)
        let u = Tensor<UInt8>(shape: [1, 2, 2], scalars: [0, 255, 7, 9])
        guard case .uint8(let uback) = try NPYFile.decode(NPYFile.encode(.uint8(u))) else { Issue.record("type"); return }
        #expect(uback == u)
    }

    @Test func npyHeaderIsAlignedAsNumpyWritesIt() {
        let data = NPYFile.encode(.float(Tensor(shape: [3], scalars: [1, 2, 3])))
        #expect((data.count - 12) % 64 == 0)
    }

    @Test func truncatedNpyIsRejected() {
        let data = NPYFile.encode(.float(Tensor(shape: [100], repeating: 1)))
        #expect(throws: DatasetError.self) { try NPYFile.decode(data.prefix(200)) }
        #expect(throws: DatasetError.self) { try NPYFile.decode(Data("not numpy".utf8)) }
    }

    @Test func idxRawAndPreprocessing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // Two 2x2 images and their labels, as raw IDX files.
        var images = Data([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2])
        images.append(contentsOf: [0, 255, 51, 102, 10, 20, 30, 40])
        try images.write(to: dir.appendingPathComponent("t10k-images-idx3-ubyte"))
        try Data([0, 0, 8, 1, 0, 0, 0, 2, 3, 9]).write(to: dir.appendingPathComponent("t10k-labels-idx1-ubyte"))
        let set = try DatasetSource.idx(directory: dir.path).load(preprocessing: Preprocessing(pad: 1, mean: 0.5, std: 0.25))
        #expect(set.images.shape == [2, 1, 4, 4])
        #expect(set.labels == [3, 9])
        // Corner is padding: (0 − 0.5)/0.25 = −2; pixel 255 → (1 − 0.5)/0.25 = 2.
        #expect(set.images.scalars[0] == -2)
        #expect(abs(set.images.scalars[6] - 2) < 1e-6)
    }

    /// Bytes stay bytes: batches, arbitrary rows, subsets and prefixes give exactly the floats the eager
    /// preprocessing gives; preprocessing that overflows is refused at load.
    @Test func byteImagesArePreprocessedBatchByBatch() throws {
        var rng = SeededGenerator(seed: 2)
        let (n, c, h, w) = (7, 3, 5, 4)
        let bytes = (0..<(n * c * h * w)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let p = Preprocessing(pad: 2, mean: 0.3, std: 0.7)
        let lazy = try ImageDataset.preprocessed(bytes: bytes, shape: [n, c, h, w], labels: Array(0..<n), preprocessing: p)
        let eager = try ImageDataset.preprocessed(pixels: bytes.map { Float($0) * (1 / 255 as Float) }, shape: [n, c, h, w],
                                                  labels: Array(0..<n), preprocessing: p)
        #expect(lazy.images.shape == [n, c, h + 4, w + 4])
        #expect(lazy.images.scalars == eager.images.scalars)
        #expect(lazy.batch(2..<5).scalars == eager.batch(2..<5).scalars)
        #expect(lazy.rows([6, 0, 3]).scalars == eager.rows([6, 0, 3]).scalars)
        let subset = lazy.subset([5, 1])
        #expect(subset.labels == [5, 1] && subset.images.scalars == eager.rows([5, 1]).scalars)
        #expect(lazy.prefix(3).images.scalars == eager.batch(0..<3).scalars)
        #expect(throws: DatasetError.self) {
            try ImageDataset.preprocessed(bytes: [0, 255], shape: [1, 1, 2], labels: [0], preprocessing: Preprocessing(pad: 0, mean: 0, std: 1e-40))
        }
    }

    @Test func missingDatasetSaysHowToInstall() {
        let error = #expect(throws: DatasetError.self) { try DatasetSource.idx(directory: "/nonexistent/fmnist").load() }
        #expect(error?.description.contains("apt-get install dataset-fashion-mnist") == true)
    }

    @Test func dataArgumentParsing() {
        #expect(DatasetSource(argument: nil) == .idx(directory: DatasetSource.defaultFashionMNIST))
        #expect(DatasetSource(argument: "a.npy,b.npy") == .npy(images: "a.npy", labels: "b.npy"))
    }
}

@Suite struct AtomicWriteTests {
    @Test func replacesAnExistingFileAndLeavesNoTemporary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-atomic-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("y.npy").path
        try NPYFile.write(.float(Tensor(shape: [1], scalars: [1])), to: path)
        try NPYFile.write(.float(Tensor(shape: [2], scalars: [2, 3])), to: path)
        guard case .float(let t) = try NPYFile.read(path) else { Issue.record("type"); return }
        #expect(t.scalars == [2, 3])
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["y.npy"])
    }

    @Test func unwritableDirectoryIsAnError() {
        #expect(throws: (any Error).self) { try NPYFile.write(.float(Tensor(shape: [1], scalars: [1])), to: "/nonexistent/dir/y.npy") }
    }
}
