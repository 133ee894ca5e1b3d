import ArgumentParser
import Compression
import Datasets
import Evaluation
import FileOutput
import Foundation
import ModelGraph
import Training

/// Sensitivity from calibration images and bit allocation to a size target, shared by `compress` and `sweep`.
struct SensitivityOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Weight every clustered weight by its sensitivity on N training images.",
                               discussion: "The diagonal Fisher information (squared per-image gradients of the loss) weights each weight's error in the k-means of palettization and kernel clustering."))
    var calibration: Int?

    @Option(help: ArgumentHelp("Palettization: choose each weight's bits so that all palettized weights take B bits per weight (needs --calibration).",
                               discussion: "Every candidate form (scalar LUTs of 1–8 bits; with --allocation-forms scalar+vector also pairs of weights) is fitted to every weight and costed by the divergence of the outputs on the calibration images with only that weight changed (with --compensate: compensated, and costed on the next N training images); the forms whose costs sum to the least within the budget are chosen."))
    var bitsPerWeight: Double?

    @Option(help: ArgumentHelp("Palettization: choose each weight's bits so that the whole model's footprint is at most SIZE (bytes, or with KiB, MiB, KB, MB; needs --calibration).",
                               discussion: "Like --bits-per-weight, with the budget counted over the whole model: what stays dense (biases, layers left out) and what other passes compress is charged first."))
    var targetSize: String?

    @Option(help: ArgumentHelp("With --bits-per-weight or --target-size: the forms each weight may take: scalar (the default) or scalar+vector.",
                               discussion: "scalar: LUTs of 1–8 bits. scalar+vector adds LUTs of pairs of weights (cluster_dim 2) at 1, 2, 3 and 5 bits: 0.5, 1, 1.5 and 2.5 bits per weight."))
    var allocationForms: AllocationForms?

    @Option(help: ArgumentHelp("With --bits-per-weight or --target-size: what a candidate costs, measured on the calibration images with only its weight changed: kl or logits.",
                               discussion: "kl: the KL divergence of the softmax outputs from the dense model's. logits: the squared change of the centred logits, which does not vanish where the model is confident (as it is on its own training images)."))
    var allocationCost: OutputDivergence.Measure = .kl

    @Option(help: "With --bits-per-weight or --target-size: write the chosen per-layer bits (and cluster_dim) as a --config plan file.")
    var writePlan: String?

    /// --target-size in bytes.
    var targetBytes: Int? {
        get throws { try targetSize.map(Self.bytes) }
    }

    /// "7654296", "7.5MiB", "800 KiB", "3MB" → bytes.
    static func bytes(_ text: String) throws -> Int {
        let t = text.replacingOccurrences(of: " ", with: "")
        let units: [(String, Double)] = [("KiB", 1024), ("MiB", 1_048_576), ("GiB", 1_073_741_824), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("B", 1)]
        let (number, scale) = units.first { t.hasSuffix($0.0) }.map { (String(t.dropLast($0.0.count)), $0.1) } ?? (t, 1)
        guard let value = Double(number), value > 0, value.isFinite, value * scale < Double(Int.max / 2) else {
            throw ValidationError("--target-size must be a positive size in bytes, KiB, MiB, KB or MB (e.g. 7.5MiB), got '\(text)'")
        }
        return Int((value * scale).rounded(.down))
    }

    @Flag(help: ArgumentHelp("Palettization: GPTQ-style error compensation on the --calibration images.",
                             discussion: "Each layer's columns are assigned to LUT entries in turn, every error spread over the columns not yet assigned through the inverse Gram matrix of the layer's inputs, so the layer's output changes least. Conv (one group), Gemm and MatMul; other layers, pruned weights and network-wide codebooks keep nearest assignment (a note says so)."))
    var compensate = false

    @Flag(help: ArgumentHelp("With --calibration: leave the k-means unweighted (no Fisher information).",
                             discussion: "The calibration images then serve only --compensate and the allocation's measured cost: for measuring what each component adds on its own."))
    var unweighted = false

    /// The candidate forms of an allocation, as `--allocation-forms` names them.
    enum AllocationForms: String, CaseIterable, ExpressibleByArgument {
        case scalar
        case scalarAndVector = "scalar+vector"

        var candidates: [AllocationCandidate] {
            self == .scalar ? AllocationCandidate.scalar : AllocationCandidate.scalar + AllocationCandidate.pairs
        }
    }

    func validate() throws {
        if bitsPerWeight != nil && targetSize != nil { throw ValidationError("give --bits-per-weight or --target-size, not both") }
        _ = try targetBytes
        if targetSize != nil && calibration == nil {
            throw ValidationError("--target-size needs --calibration N: the allocation minimises the measured cost of each candidate")
        }
        try Self.validate(calibration: calibration, allocating: bitsPerWeight != nil)
        if let bitsPerWeight, !(bitsPerWeight > 0 && bitsPerWeight.isFinite) {
            throw ValidationError("--bits-per-weight must be a positive number, got \(bitsPerWeight)")
        }
        if writePlan != nil && bitsPerWeight == nil && targetSize == nil { throw ValidationError("--write-plan needs --bits-per-weight or --target-size") }
        if allocationForms != nil && bitsPerWeight == nil && targetSize == nil { throw ValidationError("--allocation-forms needs --bits-per-weight or --target-size") }
        try Self.validate(compensate: compensate, calibration: calibration)
        if unweighted && calibration == nil { throw ValidationError("--unweighted needs --calibration N (without it nothing is weighted)") }
    }

    static func validate(compensate: Bool, calibration: Int?) throws {
        if compensate && calibration == nil {
            throw ValidationError("--compensate needs --calibration N: the compensation uses the inputs each layer sees on N training images")
        }
    }

    /// The rules `compress` and `sweep` share: at least one calibration image, and none allocated without them.
    static func validate(calibration: Int?, allocating: Bool) throws {
        if let calibration, calibration < 1 { throw ValidationError("--calibration must be at least 1 image, got \(calibration)") }
        if allocating && calibration == nil {
            throw ValidationError("--bits-per-weight needs --calibration N: the allocation minimises the measured cost of each candidate")
        }
    }

    /// What the calibration images give the compression: the Fisher sensitivity of every weight (none without
    /// --calibration), with --bits-per-weight/--target-size the measured cost of each candidate (the divergence of
    /// the outputs on the same images), and with --compensate each layer's input Gram matrix on them.
    struct Measures {
        var importance: [String: [Float]] = [:]
        var cost: AllocationCost?
        var compensation: (@Sendable (Graph, Node) throws -> [Float]?)?
    }

    func measures(_ graph: Graph, data: DataOptions) throws -> Measures {
        if let bitsPerWeight, bitsPerWeight >= 32 {
            FileHandle.standardError.write(Data("warning: --bits-per-weight \(bitsPerWeight) is not below the dense size (32 bits per weight): every weight gets the largest candidate, 8 bits\n".utf8))
        }
        if let bytes = try targetBytes, bytes >= graph.parameterCount * 4 {
            FileHandle.standardError.write(Data("warning: --target-size \(bytes) bytes is not below the dense size (\(graph.parameterCount * 4) bytes): every weight gets the largest candidate, 8 bits\n".utf8))
        }
        return try Self.measures(graph, calibration: calibration, allocating: bitsPerWeight != nil || targetSize != nil,
                                 compensating: compensate, data: data, fisher: !unweighted, cost: allocationCost)
    }

    /// The same for `sweep`: the calibration images are loaded once for all three.
    static func measures(_ graph: Graph, calibration: Int?, allocating: Bool, compensating: Bool, data: DataOptions,
                         fisher: Bool = true, cost measure: OutputDivergence.Measure = .kl) throws -> Measures {
        guard let calibration else { return Measures() }
        let train = try trainingImages(calibration, data: data)
        let images = train.prefix(calibration)
        // Unweighted: the same weight for every element (the allocation still fits its candidates through the
        // weighted path, which equal weights leave unweighted).
        let uniform = { graph.initializers.compactMapValues { $0.floatTensor.map { [Float](repeating: 1, count: $0.count) } } }
        var m = Measures(importance: fisher ? try Sensitivity.fisher(graph, images: images) { Terminal.progress("sensitivity", $0, $1) } : uniform())
        if allocating {
            // Compensation fits each candidate's indices to the calibration images' inputs (a Gemm with more inputs
            // than there are images can match them almost exactly), so a compensated candidate is costed on the next
            // N training images: costed on its own images, 2-bit fully-connected layers of AlexNet looked free.
            let next = Array(calibration..<min(train.count, 2 * calibration))
            if compensating && next.isEmpty {
                FileHandle.standardError.write(Data("warning: the allocation's costs are measured on the calibration images themselves: the training split has no other images\n".utf8))
            }
            let costImages = compensating && !next.isEmpty ? train.subset(next) : images
            let divergence = try OutputDivergence(reference: graph, images: costImages, measure: measure)
            m.cost = { try divergence.replacing($0, with: $1) }
        }
        if compensating { m.compensation = { graph, node in try Sensitivity.inputGram(of: node, in: graph, images: images) } }
        return m
    }

    /// The training split (the test split is for evaluation only); the first `calibration` images are the calibration
    /// images. Fails when it holds fewer.
    static func trainingImages(_ calibration: Int, data: DataOptions) throws -> ImageDataset {
        let train = try data.source.load(split: .train, preprocessing: data.preprocessing)
        guard calibration <= train.count else {
            throw ValidationError("--calibration \(calibration) is more than the \(train.count) images of the training split")
        }
        return train
    }

    /// Writes the allocation's plan where --write-plan asks.
    func savePlan(_ allocation: BitAllocation?) throws {
        guard let writePlan, let allocation else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(allocation.configuration), to: writePlan)
    }
}

extension OutputDivergence.Measure: ExpressibleByArgument {}
