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
                               discussion: "Every width from 1 to 8 bits is fitted to every weight; the upgrades that save the most sensitivity-weighted error per byte are taken while the budget allows."))
    var bitsPerWeight: Double?

    @Option(help: "With --bits-per-weight: write the chosen per-layer bits as a --config plan file.")
    var writePlan: String?

    @Flag(help: ArgumentHelp("Palettization: GPTQ-style error compensation on the --calibration images.",
                             discussion: "Each layer's columns are assigned to LUT entries in turn, every error spread over the columns not yet assigned through the inverse Gram matrix of the layer's inputs, so the layer's output changes least. Conv (one group), Gemm and MatMul; other layers, pruned weights and network-wide codebooks keep nearest assignment (a note says so)."))
    var compensate = false

    func validate() throws {
        try Self.validate(calibration: calibration, allocating: bitsPerWeight != nil)
        if let bitsPerWeight, !(bitsPerWeight > 0 && bitsPerWeight.isFinite) {
            throw ValidationError("--bits-per-weight must be a positive number, got \(bitsPerWeight)")
        }
        if writePlan != nil && bitsPerWeight == nil { throw ValidationError("--write-plan needs --bits-per-weight") }
        if compensate && calibration == nil {
            throw ValidationError("--compensate needs --calibration N: the compensation uses the inputs each layer sees on N training images")
        }
    }

    /// With --compensate, the inputs' Gram matrix of a layer on the calibration images.
    func compensation(data: DataOptions) throws -> (@Sendable (Graph, Node) throws -> [Float]?)? {
        guard compensate, let images = try Self.calibrationImages(calibration, data: data) else { return nil }
        return { graph, node in try Sensitivity.inputGram(of: node, in: graph, images: images) }
    }

    /// The rules `compress` and `sweep` share: at least one calibration image, and none allocated without them.
    static func validate(calibration: Int?, allocating: Bool) throws {
        if let calibration, calibration < 1 { throw ValidationError("--calibration must be at least 1 image, got \(calibration)") }
        if allocating && calibration == nil {
            throw ValidationError("--bits-per-weight needs --calibration N: the allocation minimises the sensitivity-weighted error")
        }
    }

    /// The Fisher sensitivity of every weight on the first N training images (none without --calibration), and with
    /// --bits-per-weight the measured cost of each candidate: the divergence of the outputs on the same images.
    func measures(_ graph: Graph, data: DataOptions) throws -> (importance: [String: [Float]], cost: AllocationCost?) {
        if let bitsPerWeight, bitsPerWeight >= 32 {
            FileHandle.standardError.write(Data("warning: --bits-per-weight \(bitsPerWeight) is not below the dense size (32 bits per weight): every weight gets the largest candidate, 8 bits\n".utf8))
        }
        return try Self.measures(graph, calibration: calibration, allocating: bitsPerWeight != nil, data: data)
    }

    static func measures(_ graph: Graph, calibration: Int?, allocating: Bool, data: DataOptions) throws
        -> (importance: [String: [Float]], cost: AllocationCost?) {
        guard let images = try calibrationImages(calibration, data: data) else { return ([:], nil) }
        let importance = try Sensitivity.fisher(graph, images: images) { Terminal.progress("sensitivity", $0, $1) }
        guard allocating else { return (importance, nil) }
        let divergence = try OutputDivergence(reference: graph, images: images)
        return (importance, { try divergence.replacing($0, with: $1) })
    }

    /// The first N images of the training split (the test split is for evaluation only).
    static func calibrationImages(_ calibration: Int?, data: DataOptions) throws -> ImageDataset? {
        guard let calibration else { return nil }
        let train = try data.source.load(split: .train, preprocessing: data.preprocessing)
        guard calibration <= train.count else {
            throw ValidationError("--calibration \(calibration) is more than the \(train.count) images of the training split")
        }
        return train.prefix(calibration)
    }

    /// Writes the allocation's plan where --write-plan asks.
    func savePlan(_ allocation: BitAllocation?) throws {
        guard let writePlan, let allocation else { return }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try writeAtomically(try encoder.encode(allocation.configuration), to: writePlan)
    }
}
