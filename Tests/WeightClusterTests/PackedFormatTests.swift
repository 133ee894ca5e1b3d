import Clustering
import Compression
import Compute
import Execution
import Foundation
import ModelGraph
import ONNXFormat
@testable import PackedFormat
import Testing
import _FuzzSupport
import _TestSupport

@Suite struct PackedFormatTests {
    func tiny(_ name: String) throws -> Graph { try ONNXModelFile.load(Fixtures.path("models/\(name).onnx")) }
    func input(_ name: String) throws -> Tensor<Float> { try TestSupport.readFloat(Fixtures.path("models/\(name).input.npy")) }

    func palettization(_ o: WeightFormOverride) -> PalettizationConfiguration {
        var global = o
        global.form = .palettize
        return PalettizationConfiguration(global: global)
    }

    /// Every form the engine writes, on the tiny models.
    static let forms: [(String, String)] = [
        ("tiny_vgg_opset13", "lut 4-bit per group of 4"), ("tiny_alexnet_opset13", "lut 3-bit int8 entries, channel scales"),
        ("tiny_vgg_opset13", "vectors d=2 network"), ("tiny_vgg_opset13", "kernels plain"), ("tiny_vgg_opset13", "kernels scaled int8 scales"),
        ("tiny_alexnet_opset13", "pruning + spherical columns"), ("tiny_mobilenetv2_opset13", "lut 2-bit per tensor"),
    ]

    func compressed(_ model: String, _ form: String) throws -> CompressionResult {
        let g = try tiny(model)
        var config = CompressionConfiguration(format: .codebook)
        switch form {
        case "lut 4-bit per group of 4": config.palettization = palettization(.init(bits: 4, granularity: .perGroupedChannel, groupSize: 4))
        case "lut 3-bit int8 entries, channel scales":
            config.palettization = palettization(.init(bits: 3, granularity: .perGroupedChannel, groupSize: 3, lut: .int8, perChannelScale: true))
        case "vectors d=2 network": config.palettization = palettization(.init(bits: 4, granularity: .network, clusterDim: 2))
        case "kernels plain": config.kernels = KernelClusteringConfiguration(size: .reduction(0.5))
        case "kernels scaled int8 scales": config.kernels = KernelClusteringConfiguration(size: .reduction(0.5), mode: .scaled, scaleBits: 8)
        case "pruning + spherical columns":
            config.pruning = PruningConfiguration(sparsity: 0.9)
            config.neurons = NeuronClusteringConfiguration(size: .reduction(0.5))
        default: config.palettization = palettization(.init(bits: 2, granularity: .perTensor))
        }
        return try compress(g, configuration: config)
    }

    /// The packed file runs (weights expanded layer by layer) exactly like the codebook graph, converts back to the
    /// same ONNX bytes, packs again to the same bytes, and is no larger than the footprint plus its graph.
    @Test(arguments: forms)
    func packedRunsLikeTheCodebookGraph(_ model: String, _ form: String) throws {
        let r = try compressed(model, form)
        let (data, report) = try PackedModelFile.encode(r.graph)
        let packed = try PackedModel.decode(data)
        #expect(packed.report.streams.map(\.storedBytes) == report.streams.map(\.storedBytes))
        let x = try input(model)
        let expected = try Executor(graph: r.graph)(x)
        #expect(try Executor(graph: packed.graph)(x).scalars == expected.scalars, "\(form)")
        // Also where every 3×3 convolution takes Winograd (expanded a few channels at a time into its transform).
        var winograd = Executor.Options()
        winograd.winograd = .always
        #expect(try Executor(graph: packed.graph, options: winograd)(x).scalars == Executor(graph: r.graph, options: winograd)(x).scalars)
        let onnx = try ONNXModelFile.encode(r.graph)
        let back = try packed.codebookGraph()
        #expect(try ONNXModelFile.encode(back) == onnx, "\(form): packed → ONNX is not the codebook file")
        #expect(try PackedModelFile.encode(back).data == data, "\(form): not the same bytes again")
        // The graph structure (nodes, names, small constants) is what the file adds to the footprint.
        let structure = try ONNXModelFile.encode(Graph(nodes: r.graph.nodes, inputs: r.graph.inputs, outputs: r.graph.outputs)).count
        #expect(data.count <= r.footprintBytes + structure + 4096, "\(form): \(data.count) bytes for a \(r.footprintBytes)-byte footprint")
        if !report.streams.isEmpty {
            #expect(report.streams.allSatisfy { $0.entropy <= Double($0.indexBits) + 1e-9 })
        }
    }

    /// Weights stored transposed (MatMul [in, out]) expand column slices correctly: vectors, channel scales, groups.
    @Test func transposedWeightsExpandLikeTheGraph() throws {
        let g = NeuronFixtures.mlp()
        let r = try compress(g, configuration: .init(palettization: palettization(.init(bits: 3, granularity: .perGroupedChannel, groupSize: 3,
                                                                                          clusterDim: 2, perChannelScale: true)), format: .codebook))
        #expect(WeightLayout.recorded(in: r.graph).contains { $0.transposed })
        let packed = try PackedModel.decode(try PackedModelFile.encode(r.graph).data)
        for (name, deferred) in packed.graph.deferredWeights {
            let expected = try Executor(graph: r.graph).constants[name]?.floatTensor
            #expect(deferred.expanded().scalars == expected?.scalars, "\(name)")
        }
    }

    /// The committed files (written by format version 1, Scripts/make_packed_fixtures.sh) keep loading and run like
    /// their ONNX codebook form.
    @Test(arguments: ["alexnet-lut3-int8", "alexnet-pruned-spherical", "vgg-kernels-scaled8"])
    func committedFilesStillLoad(_ name: String) throws {
        let model = try PackedModel.load(Fixtures.path("packed/\(name).wcm"))
        let x = try input(name.hasPrefix("vgg") ? "tiny_vgg_opset13" : "tiny_alexnet_opset13")
        let codebook = try ONNXModelFile.decode(try ONNXModelFile.encode(try model.codebookGraph()))
        #expect(try Executor(graph: model.graph)(x).scalars == Executor(graph: codebook)(x).scalars)
        #expect(model.report.fileBytes == (try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("packed/\(name).wcm")))).count)
    }

    /// Findings of `Scripts/fuzz.sh … packed`, kept: each must load cleanly or fail with an error, never trap.
    @Test func fuzzFindingsStayFixed() throws {
        // An int8 codebook whose step was rewritten to 0 (checksums recomputed): codes / 0 trapped when the codebook
        // graph was rebuilt.
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("packed/hostile/int8-codebook-zero-step.wcm")))
        FuzzTarget.packed(data)
        let error = try #require(loadError(PackedModelFile._resealed(data)))
        #expect(error.description.contains("step"), "\(error)")
    }

    /// Bit-packed values read back exactly at every width from 1 to 24 bits, from any starting value.
    @Test func bitReaderReadsEveryWidthFromAnyPosition() {
        var rng = SeededGenerator(seed: 3)
        for width in 1...24 {
            let values = (0..<301).map { _ in Int.random(in: 0..<(1 << width), using: &rng) }
            let packed = BitPacking.pack(values, width: width)
            #expect(packed.count == (301 * width + 7) / 8)
            packed.withUnsafeBytes { bytes in
                for start in [0, 1, 7, 150, 299] {
                    var reader = BitReader(bytes, width: width, startingAt: start)
                    let read = (start..<301).map { _ in reader.next() }
                    #expect(read == Array(values[start...]), "width \(width) from \(start)")
                }
            }
        }
    }

    /// The byte-at-a-time look-up (widths 1, 2, 4, 8 from a byte boundary) gives what the bit cursor gives, at every
    /// width, start and count — including starts off a byte boundary and counts that end mid-byte.
    @Test func tableLookUpMatchesTheBitReader() {
        var rng = SeededGenerator(seed: 5)
        for width in 0...9 {
            let k = 1 << width
            let table = (0..<k).map { Float($0) * 0.5 - 3 }
            let values = (0..<203).map { _ in Int.random(in: 0..<k, using: &rng) }
            let packed = BitPacking.pack(values, width: width)
            packed.withUnsafeBytes { bytes in
                for (first, count) in [(0, 203), (0, 7), (1, 100), (8, 195), (16, 3), (24, 179), (40, 0)] {
                    var out = [Float](repeating: .nan, count: count)
                    table.withUnsafeBufferPointer { t in
                        out.withUnsafeMutableBufferPointer { BitPacking.lookUp(bytes, width: width, first: first, count: count, table: t.baseAddress!, into: $0.baseAddress!) }
                    }
                    #expect(out == values[first..<first + count].map { table[$0] }, "width \(width), values \(first)..<\(first + count)")
                }
            }
        }
    }

    /// Bit-packing is exact at every width, and an index stream holds ceil(log2 K) bits per index.
    @Test func indexStreamsAreBitPackedExactly() throws {
        let g = try tiny("tiny_vgg_opset13")
        let r = try compress(g, configuration: .init(palettization: palettization(.init(bits: 3, granularity: .perTensor)), format: .codebook))
        let (data, report) = try PackedModelFile.encode(r.graph)
        for s in report.streams where s.codec == "bit-packed" { #expect(s.storedBytes == (s.indices * 3 + 7) / 8) }
        #expect(report.streams.allSatisfy { $0.indexBits == 3 && $0.storedBytes <= ($0.indices * 3 + 7) / 8 })
        #expect(data.count < (try ONNXModelFile.encode(r.graph)).count)
    }

    func packedFixture() throws -> Data {
        let r = try compressed("tiny_vgg_opset13", "kernels scaled int8 scales")
        return try PackedModelFile.encode(r.graph).data
    }

    func loadError(_ data: Data) -> PackedFormatError? {
        do { _ = try PackedModel.decode(data, path: "m.wcm"); return nil } catch let e as PackedFormatError { return e } catch {
            Issue.record("not a PackedFormatError: \(error)")
            return nil
        }
    }

    /// Cut at every 1/64th of its length, the file gives one clear error each time.
    @Test func everyTruncationIsOneClearError() throws {
        let data = try packedFixture()
        for i in 0..<64 {
            let cut = data.count * i / 64
            let error = try #require(loadError(data.prefix(cut)), "prefix of \(cut) bytes loaded")
            #expect(!error.description.contains("\n"))
            #expect(error.description.contains("m.wcm"))
            if cut >= 8 { #expect(error.description.contains("truncated"), "\(cut): \(error)") }
        }
    }

    /// Random byte changes, insertions and cuts never crash the loader, and whatever loads still runs.
    @Test func mutatedFilesFailCleanly() throws {
        let data = try packedFixture()
        var rng = SeededGenerator(seed: 11)
        let x = try input("tiny_vgg_opset13")
        var loaded = 0
        for _ in 0..<600 {
            var bytes = [UInt8](data)
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                let at = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                default: bytes.removeSubrange(at..<min(bytes.count, at + Int.random(in: 1...64, using: &rng)))
                }
            }
            if let model = try? PackedModel.decode(Data(bytes)) {
                loaded += 1
                _ = try? Executor(graph: model.graph)(x)
            }
        }
        // Checksums catch every change a mutation makes (a mutation may restore a byte it changed, rarely).
        #expect(loaded <= 6)
    }

    /// Fields a checksum cannot catch — a writer that lies — are still checked: a hostile file with valid
    /// checksums but a huge shape, a bomb of a zstd stream, or an index past its codebook is one error line.
    @Test func hostileFieldsWithValidChecksums() throws {
        let r = try compressed("tiny_vgg_opset13", "lut 4-bit per group of 4")
        let (data, _) = try PackedModelFile.encode(r.graph)
        let model = try PackedModel.decode(data)
        #expect(!model.graph.deferredWeights.isEmpty)
        // Not packed at all, and a newer version.
        #expect(loadError(Data("hello, not a model".utf8)) == .notPacked(path: "m.wcm"))
        var newer = [UInt8](data)
        newer[8] = 9
        #expect(loadError(Data(newer))?.description.contains("checksum") == true)
        // A weight section whose rows are rewritten (checksums recomputed): too many for its bytes, or not its shape.
        func patchingRows(_ rows: (UInt64) -> UInt64) throws -> Data {
            try PackedModelFile._rewritingSections(data) { kind, section in
                guard kind == 3 else { return section }
                var s = [UInt8](section)
                var at = 0
                for _ in 0..<2 { let n = Int(s[at]) | Int(s[at + 1]) << 8; at += 4 + n }  // the two names
                at += 4 + 8 * Int(s[at])  // the shape
                let old = s[at..<at + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                s.replaceSubrange(at..<at + 8, with: withUnsafeBytes(of: rows(old).littleEndian) { Array($0) })
                return Data(s)
            }
        }
        let huge = try #require(loadError(try patchingRows { _ in 1 << 27 }))
        #expect(huge.description.contains("claims"), "\(huge)")
        let off = try #require(loadError(try patchingRows { $0 + 1 }))
        #expect(off.description.contains("does not fit"), "\(off)")
    }
}

/// The packed file through the commands: compress writes it with its report, export converts both ways, inspect and
/// run read it, and a damaged file is one error line.
@Suite(.serialized) struct PackedFileCommandTests {
    @Test func compressExportInspectRun() throws {
        let dir = try CLI.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Fixtures.path("models/tiny_vgg_opset13.onnx"), input = Fixtures.path("models/tiny_vgg_opset13.input.npy")
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let packed = try CLI.run(["compress", model, "-o", path("m.wcm"), "--bits", "3", "--granularity", "per-grouped-channel",
                                  "--group-size", "4", "--format", "packed", "--json"])
        #expect(packed.status == 0, "\(packed.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(packed.stdout.utf8)) as? [String: Any])
        #expect(report["format"] as? String == "packed")
        let fileBytes = try #require(report["file_bytes"] as? Int), footprint = try #require(report["footprint_bytes"] as? Int)
        #expect(fileBytes == (try FileManager.default.attributesOfItem(atPath: path("m.wcm"))[.size] as? Int))
        #expect(fileBytes <= footprint + 65_536)
        let streams = try #require(report["index_streams"] as? [[String: Any]])
        #expect(!streams.isEmpty && streams.allSatisfy { $0["index_bits"] as? Int == 3 && ($0["bits_per_index"] as? Double ?? 9) <= 3 })
        // ONNX codebook file and back: same bytes as compress writes directly.
        #expect(try CLI.run(["compress", model, "-o", path("m.onnx"), "--bits", "3", "--granularity", "per-grouped-channel",
                             "--group-size", "4", "--format", "codebook"]).status == 0)
        #expect(try CLI.run(["export", path("m.wcm"), "--to", "onnx", "-o", path("back.onnx")]).status == 0)
        #expect(FileManager.default.contents(atPath: path("back.onnx")) == FileManager.default.contents(atPath: path("m.onnx")))
        #expect(try CLI.run(["export", path("m.onnx"), "--to", "packed", "-o", path("again.wcm")]).status == 0)
        #expect(FileManager.default.contents(atPath: path("again.wcm")) == FileManager.default.contents(atPath: path("m.wcm")))
        #expect(try CLI.run(["export", path("m.wcm"), "--to", "dense", "-o", path("dense.onnx")]).status == 0)
        // run: the same output from all three files.
        let outputs = try ["m.wcm", "m.onnx", "dense.onnx"].map { name -> String in
            let r = try CLI.run(["run", path(name), "--input", input, "--output", path(name + ".npy")])
            #expect(r.status == 0, "\(r.stderr)")
            return path(name + ".npy")
        }
        let a = try TestSupport.readFloat(outputs[0]), b = try TestSupport.readFloat(outputs[1]), c = try TestSupport.readFloat(outputs[2])
        #expect(a.scalars == b.scalars)
        #expect(TestSupport.maxAbsDifference(a.scalars, c.scalars) <= 1e-5)
        let inspect = try CLI.run(["inspect", path("m.wcm")])
        #expect(inspect.stdout.contains("packed file:") && inspect.stdout.contains("bits per index stored"))
        // Damaged: one line, non-zero, naming the file; the input is not touched.
        var bytes = try #require(FileManager.default.contents(atPath: path("m.wcm")))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: path("cut.wcm")))
        bytes[bytes.count - 10] ^= 0xff
        try bytes.write(to: URL(fileURLWithPath: path("flipped.wcm")))
        for (name, text) in [("cut.wcm", "truncated"), ("flipped.wcm", "checksum")] {
            let r = try CLI.run(["evaluate", path(name), "--limit", "10"])
            #expect(r.status != 0)
            #expect(r.stderr.hasPrefix("error: ") && r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(text), "\(r.stderr)")
            #expect(r.stderr.contains(name))
        }
    }
}
