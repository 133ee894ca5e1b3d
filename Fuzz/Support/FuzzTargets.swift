import CKernels
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
    /// The first 7 bytes choose a product on packed weights (`wc_gemm_packed_isa`): rows m ≤ 256, columns n ≤ 768,
    /// depth k ≤ 2,048 (at most 2²² multiply-adds), the epilogue or none, B's row stride padded
    /// or rounded up to 256 floats (rows that pile on few of L1's sets take the copied path) and C's padded. Every
    /// kernel set this processor runs computes it; a value off the BLAS product's, or a write into a row's padding,
    /// traps. Under AddressSanitizer, a read or write past any buffer is a finding too. Seeds: Fixtures/product, named
    /// m×k×n (two reach the copied path's last three-vector chunk deep in one block, where AVX-512 once overflowed).
    case product

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
        case .product:
            FuzzTarget.product(data)
        }
    }

    static func product(_ data: Data) {
        let bytes = [UInt8](data.prefix(7))
        guard bytes.count == 7 else { return }
        let word = { (i: Int) in Int(bytes[i]) << 8 | Int(bytes[i + 1]) }
        let (m, n, k, flags) = (1 + word(0) % 256, 1 + word(2) % 768, 1 + word(4) % 2048, Int(bytes[6]))
        guard m * n * k <= 1 << 22 else { return }
        let ldb = flags & 16 != 0 ? (n + 255) / 256 * 256 : n + (flags >> 1 & 7), ldc = n + (flags >> 5 & 3)
        let value = { (i: Int) in Float(UInt(truncatingIfNeeded: i &* 2_654_435_761) % 2001) / 1000 - 1 }
        let a = (0..<m * k).map(value), b = (0..<k * ldb).map { value($0 &+ 7) }, bias = (0..<m).map { value($0 &+ 3) }
        var packed = [Float](repeating: 0, count: wc_packed_count(Int32(m), Int32(k)))
        var reference = [Float](repeating: 0, count: m * n)
        a.withUnsafeBufferPointer { a in
            packed.withUnsafeMutableBufferPointer { wc_pack_rows(Int32(m), Int32(k), a.baseAddress!, k, $0.baseAddress!) }
            b.withUnsafeBufferPointer { b in
                reference.withUnsafeMutableBufferPointer {
                    sgemm(m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: ldb, c: $0.baseAddress!, ldc: n)
                }
            }
        }
        let finishing = flags & 1 != 0, shape = "\(m)×\(k)·\(k)×\(n) (ldb \(ldb), ldc \(ldc))"
        for isa in [WC_ISA_GENERIC, WC_ISA_AVX2, WC_ISA_AVX512].map(Int32.init) where wc_kernels_supported(isa) != 0 {
            var c = [Float](repeating: .nan, count: m * ldc)
            packed.withUnsafeBufferPointer { packed in
                b.withUnsafeBufferPointer { b in
                    bias.withUnsafeBufferPointer { bias in
                        withUnsafePointer(to: wc_epilogue(bias: bias.baseAddress, low: -0.5, high: 0.7)) { epilogue in
                            c.withUnsafeMutableBufferPointer { c in
                                wc_gemm_packed_isa(isa, Int32(m), Int32(n), Int32(k), packed.baseAddress!, b.baseAddress!,
                                                   ldb, c.baseAddress!, ldc, finishing ? epilogue : nil)
                            }
                        }
                    }
                }
            }
            for i in 0..<m {
                for j in 0..<n {
                    let sum = reference[i * n + j], want = finishing ? min(max(sum + bias[i], -0.5), 0.7) : sum
                    precondition(abs(c[i * ldc + j] - want) <= 1e-5 * Float(k) + 1e-5,
                                 "kernels \(isa): \(shape) at \(i),\(j): \(c[i * ldc + j]), not \(want)")
                }
                for j in n..<ldc { precondition(c[i * ldc + j].isNaN, "kernels \(isa): \(shape) wrote past row \(i)") }
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
