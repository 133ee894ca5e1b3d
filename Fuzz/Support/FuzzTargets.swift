import Compute
import Datasets
import Execution
import Foundation
import ModelGraph
import ONNXFormat
import PackedFormat

/// The fuzzing entry points, shared by `wc-fuzz` (libFuzzer or its own mutation loop) and the test suite.
/// Each takes arbitrary bytes and must return normally: an error thrown for bad input is the expected outcome;
/// a trap, a sanitizer report, a hang or an allocation past the limit is a finding. Not API.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// ONNX bytes → graph (external data confined to a scratch folder) → validation (attributes, shapes, a dry run).
    case onnx
    /// .npy bytes → array.
    case npy
    /// Uncompressed IDX bytes → contents.
    case idx
    /// The first 2 bytes choose a length L; the next L bytes are an ONNX model, the rest fill its inputs; the model
    /// is validated leniently and, when it can run, run on those inputs (as `weightcluster run` does).
    case run
    /// Packed model bytes → loader (as they are, and again with every checksum recomputed, so that mutations reach the
    /// section parsers) → when they load, every weight expanded and the codebook graph rebuilt.
    case packed

    /// Lowers the per-tensor cap for fuzzing (2²⁰ elements, 4 MiB of float32: a fuzzed model that is merely large
    /// would only slow the instrumented build) and makes the scratch folder.
    public static func prepare() {
        ShapeLimits.maxElements = 1 << 20
        _ = folder
    }

    /// A model folder with one 64-byte regular file, `w.bin`, so external-data locations have something to find.
    static let folder: URL = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try? Data((0..<64).map { UInt8($0) }).write(to: dir.appendingPathComponent("w.bin"))
        return dir
    }()

    public func callAsFunction(_ data: Data) {
        switch self {
        case .onnx:
            guard let graph = try? ONNXModelFile.decode(data, baseDirectory: FuzzTarget.folder) else { return }
            _ = try? ModelValidation.validate(graph, strictness: .lenient)
        case .npy:
            _ = try? NPYFile.decode(data)
        case .idx:
            _ = try? IDXFile.decode(data)
        case .run:
            guard data.count >= 2 else { return }
            let length = min(data.count - 2, Int(data[data.startIndex]) << 8 | Int(data[data.startIndex + 1]))
            let model = data.dropFirst(2).prefix(length), rest = data.dropFirst(2 + length)
            guard let graph = try? ONNXModelFile.decode(Data(model), baseDirectory: FuzzTarget.folder),
                  (try? ModelValidation.validate(graph, strictness: .runnable)) != nil,
                  let executor = try? Executor(graph: graph) else { return }
            var feeds: [String: AnyTensor] = [:]
            var bytes = rest.makeIterator()
            for input in graph.inputs {
                let shape = (input.shape ?? [.fixed(1)]).map { dim -> Int in
                    if case .fixed(let n) = dim, n > 0 { return n }
                    return 1
                }
                guard let count = checkedElementCount(shape), count <= 1 << 16 else { return }
                if input.elementType == 1 {
                    feeds[input.name] = .float(Tensor(shape: shape, scalars: (0..<count).map { _ in
                        Float(bitPattern: UInt32(bytes.next() ?? 0) << 24 | UInt32(bytes.next() ?? 0x3f) << 16) }))
                } else {
                    feeds[input.name] = .int64(Tensor(shape: shape, scalars: (0..<count).map { _ in Int64(Int8(bitPattern: bytes.next() ?? 0)) }))
                }
            }
            _ = try? executor.run(feeds, checkingFinite: true)
        case .packed:
            for bytes in [data, PackedModelFile._resealed(data)] {
                guard let model = try? PackedModel.decode(bytes) else { continue }
                for weight in model.graph.deferredWeights.values { _ = weight.expanded() }
                _ = try? model.codebookGraph()
            }
        }
    }
}

/// libFuzzer-style mutations with a seeded generator, for machines and test runs without libFuzzer.
public struct MutationFuzzer {
    public var seeds: [Data]
    private var state: UInt64

    public init(seeds: [Data], seed: UInt64) {
        self.seeds = seeds.isEmpty ? [Data()] : seeds
        self.state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }

    /// Integers that break size arithmetic, little-endian as they sit in protobuf fixed fields and raw data.
    static let interesting: [Int64] = [0, 1, -1, 2, 255, 256, 65535, 1 << 31, (1 << 31) - 1, 1 << 32, 1 << 40, 1 << 62,
                                       .max, .min, -(1 << 31)]

    /// One mutated input: 1–4 mutations of a seed.
    public mutating func mutated() -> Data {
        var bytes = [UInt8](seeds[below(seeds.count)])
        for _ in 0..<(1 + below(4)) {
            switch below(8) {
            case 0 where !bytes.isEmpty:  // flip a bit
                bytes[below(bytes.count)] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty:  // set a byte to an edge value
                bytes[below(bytes.count)] = [0, 1, 0x7f, 0x80, 0xff, 0x3f][below(6)]
            case 2 where bytes.count >= 8:  // overwrite 8 bytes with an edge integer
                let at = below(bytes.count - 7)
                withUnsafeBytes(of: MutationFuzzer.interesting[below(MutationFuzzer.interesting.count)].littleEndian) {
                    for i in 0..<8 { bytes[at + i] = $0[i] }
                }
            case 3:  // a varint edge value (protobuf lengths, dims and attributes are varints)
                let at = below(bytes.count + 1)
                let varint: [UInt8] = [[0xff, 0xff, 0xff, 0xff, 0x0f], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                                       [0x80, 0x80, 0x80, 0x80, 0x08], [0x00]][below(4)]
                bytes.insert(contentsOf: varint, at: at)
            case 4 where !bytes.isEmpty:  // truncate
                bytes.removeLast(below(bytes.count) + 1)
            case 5 where !bytes.isEmpty:  // delete a run
                let at = below(bytes.count), n = min(bytes.count - at, 1 + below(16))
                bytes.removeSubrange(at..<at + n)
            case 6:  // splice a piece of another seed
                let other = [UInt8](seeds[below(seeds.count)])
                guard !other.isEmpty else { break }
                let from = below(other.count), n = min(other.count - from, 1 + below(64))
                bytes.insert(contentsOf: other[from..<from + n], at: below(bytes.count + 1))
            default:  // duplicate a run
                guard !bytes.isEmpty else { break }
                let at = below(bytes.count), n = min(bytes.count - at, 1 + below(32))
                bytes.insert(contentsOf: bytes[at..<at + n], at: below(bytes.count + 1))
            }
        }
        return Data(bytes)
    }
}
