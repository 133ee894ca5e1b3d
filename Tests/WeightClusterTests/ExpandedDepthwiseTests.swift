import CKernels
@testable import Compute
import Execution
import ModelGraph
import Testing

/// A 1×1 expansion, a depthwise layer and a 1×1 projection run together in bands of rows (`ExpandedDepthwise`)
/// against the same layers one after another: the same bits, whatever the bands.
@Suite struct ExpandedDepthwiseTests {
    struct Case: Sendable, CustomStringConvertible {
        var n, h, w, k, stride: Int
        var pads: (top: Int, left: Int, bottom: Int, right: Int)
        /// Rows a band holds (sets `bandBytes`), projecting (with a residual where the output has the input's shape).
        var bandRows: Int, projecting: Bool
        var description: String { "n\(n) \(h)×\(w) k\(k) s\(stride) pads \(pads) bands of \(bandRows) rows\(projecting ? ", projected" : "")" }
    }

    static let cases: [Case] = [
        Case(n: 1, h: 20, w: 18, k: 3, stride: 1, pads: (1, 1, 1, 1), bandRows: 5, projecting: true),
        Case(n: 1, h: 21, w: 19, k: 5, stride: 2, pads: (2, 2, 2, 2), bandRows: 6, projecting: false),
        Case(n: 1, h: 20, w: 20, k: 3, stride: 2, pads: (0, 0, 1, 1), bandRows: 4, projecting: true),
        Case(n: 2, h: 17, w: 16, k: 5, stride: 1, pads: (2, 2, 2, 2), bandRows: 7, projecting: true),
        Case(n: 1, h: 24, w: 16, k: 3, stride: 1, pads: (1, 1, 1, 1), bandRows: 64, projecting: true),
    ]

    @Test(arguments: cases)
    func bandsGiveTheLayersValues(_ t: Case) throws {
        let (ic, c, oc) = (6, 24, 6)
        let x = Tensor(shape: [t.n, ic, t.h, t.w], scalars: ConvolutionTests.random(t.n * ic * t.h * t.w, seed: 41).map { $0 * 3 })
        let expand = Tensor(shape: [c, ic, 1, 1], scalars: ConvolutionTests.random(c * ic, seed: 42))
        let expandBias = ConvolutionTests.random(c, seed: 43)
        let dw = Tensor(shape: [c, 1, t.k, t.k], scalars: ConvolutionTests.random(c * t.k * t.k, seed: 44))
        let dwBias = ConvolutionTests.random(c, seed: 45)
        let project = Tensor(shape: [oc, c, 1, 1], scalars: ConvolutionTests.random(oc * c, seed: 46))
        let window = Window2D(kernel: (t.k, t.k), strides: (t.stride, t.stride), pads: t.pads)
        let (six, relu) = (Activation.clip(low: 0, high: 6), Activation.relu)
        let expanded = try conv2d(x, weight: expand, bias: expandBias, window: Window2D(kernel: (1, 1)), activation: six)
        let filtered = try conv2d(expanded, weight: dw, bias: dwBias, window: window, group: c, activation: six)
        let size = window.outputSize(h: t.h, w: t.w)!
        let residual = t.stride == 1 ? x : nil
        var expected = filtered
        var projection: ExpandedDepthwise.Projection?
        if t.projecting {
            expected = try conv2d(filtered, weight: project, bias: nil, window: Window2D(kernel: (1, 1)), activation: relu,
                                  residual: residual)
            projection = .init(weights: PackedWeights(project, group: 1), bias: nil, activation: relu, residual: residual)
        }
        let banded = ExpandedDepthwise.convolve(x, expand: PackedWeights(expand, group: 1), expandBias: expandBias,
                                                expandActivation: six, weight: dw, bias: dwBias, window: window,
                                                activation: six, projection: projection,
                                                bandBytes: c * t.w * 4 * ((t.bandRows - 1) * t.stride + t.k))
        #expect(banded.shape == [t.n, t.projecting ? oc : c, size.h, size.w])
        #expect(ExpandedDepthwiseTests.agree(banded, expected))
        let one = ComputeThreads.limited(to: 1) {
            ExpandedDepthwise.convolve(x, expand: PackedWeights(expand, group: 1), expandBias: expandBias,
                                       expandActivation: six, weight: dw, bias: dwBias, window: window, activation: six,
                                       projection: projection, bandBytes: 1)
        }
        #expect(ExpandedDepthwiseTests.agree(one, expected))
    }

    /// Whether `a` equals `b` bit for bit where our own product kernels run (AVX-512, AVX2: each sum in one order
    /// however the rows are banded or split), and within 1e-5 of each value (at least 1) with the generic ones, whose
    /// products go to BLAS, where the order of a sum depends on the shape of the call.
    static func agree(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Bool {
        guard wc_kernels_isa() == Int32(WC_ISA_GENERIC) else { return differing(a, b) == 0 }
        return a.shape == b.shape && zip(a.scalars, b.scalars).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
    }

    /// How many values of `a` differ from `b`'s in any bit.
    static func differing(_ a: Tensor<Float>, _ b: Tensor<Float>) -> Int {
        zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count + abs(a.count - b.count)
    }

    /// x → 1×1 Conv → Clip → depthwise 3×3 Conv → Clip → 1×1 Conv → Add x, then a stride-2 block without a projection
    /// after it: on a map large enough (512 KB expanded) the executor runs each block in bands — the profile names the
    /// banded steps — with outputs equal, bit for bit, to the layers run one by one; on a small map (below the bands'
    /// threshold) the same executor runs them one by one.
    @Test func executorRunsBlocksInBands() throws {
        let (ic, c) = (8, 32)
        func weight(_ shape: [Int], _ seed: UInt64) -> AnyTensor {
            .float(Tensor(shape: shape, scalars: ConvolutionTests.random(shape.reduce(1, *), seed: seed)))
        }
        let initializers: [String: AnyTensor] = [
            "e": weight([c, ic, 1, 1], 51), "eb": weight([c], 52), "d": weight([c, 1, 3, 3], 53), "db": weight([c], 54),
            "p": weight([ic, c, 1, 1], 55), "pb": weight([ic], 56), "e2": weight([c, ic, 1, 1], 57),
            "d2": weight([c, 1, 3, 3], 58), "lo": .float(Tensor(shape: [], scalars: [0])), "hi": .float(Tensor(shape: [], scalars: [6])),
        ]
        let nodes = [
            Node(name: "expand", opType: "Conv", inputs: ["x", "e", "eb"], outputs: ["a"]),
            Node(name: "clip1", opType: "Clip", inputs: ["a", "lo", "hi"], outputs: ["a6"]),
            Node(name: "dw", opType: "Conv", inputs: ["a6", "d", "db"], outputs: ["b"],
                 attributes: ["group": .int(c), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "clip2", opType: "Clip", inputs: ["b", "lo", "hi"], outputs: ["b6"]),
            Node(name: "project", opType: "Conv", inputs: ["b6", "p", "pb"], outputs: ["q"]),
            Node(name: "add", opType: "Add", inputs: ["q", "x"], outputs: ["y"]),
            Node(name: "expand2", opType: "Conv", inputs: ["y", "e2"], outputs: ["f"]),
            Node(name: "relu", opType: "Relu", inputs: ["f"], outputs: ["f1"]),
            Node(name: "dw2", opType: "Conv", inputs: ["f1", "d2"], outputs: ["z"],
                 attributes: ["group": .int(c), "strides": .ints([2, 2]), "pads": .ints([0, 0, 1, 1])]),
        ]
        let graph = Graph(nodes: nodes, initializers: initializers, inputs: [ValueInfo(name: "x", shape: nil)],
                          outputs: [ValueInfo(name: "z", shape: nil)])
        var apart = Executor.Options()
        apart.expandInBands = false
        let banded = try Executor(graph: graph), separate = try Executor(graph: graph, options: apart)
        for side in [64, 12] {
            let x = AnyTensor.float(Tensor(shape: [1, ic, side, side], scalars: ConvolutionTests.random(ic * side * side, seed: 59)))
            banded.profiling = true
            let ours = try banded.run(["x": x])["z"]?.floatTensor
            banded.profiling = false
            let expected = try separate.run(["x": x])["z"]?.floatTensor
            #expect(ours != nil && ours?.shape == expected?.shape)
            if let ours, let expected { #expect(ExpandedDepthwiseTests.differing(ours, expected) == 0) }
            let inBands = banded.nodeProfile.keys.filter { $0.contains("in bands") }.sorted()
            if side == 64 && wc_kernels_isa() == Int32(WC_ISA_AVX512) {
                #expect(inBands == ["dw2 (Conv, in bands with the 1 before it)", "project (Conv, in bands with the 2 before it)"])
            } else if side == 12 {
                #expect(banded.nodeProfile.keys.contains("dw2 (Conv)"))
            }
        }
    }
}
