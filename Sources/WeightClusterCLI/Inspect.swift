import ArgumentParser
import Foundation
import ModelGraph
import PackedFormat

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a model's layers, operators, weight shapes, parameters and 2D kernels.")

    @OptionGroup var model: ModelArgument

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func run() throws {
        // A packed file is read once: its report, and the graph in codebook form.
        let packed = PackedModelFile.isPacked(try model.path) ? try PackedModel.load(try model.path) : nil
        let graph = try packed.map { try model.validated(try $0.codebookGraph()) } ?? model.load()
        let s = graph.summary()
        if json {
            var object: [String: Any] = [
                "model": try model.path,
                "producer": graph.producer,
                "opset": graph.opsetVersion,
                "inputs": graph.inputs.map { ["name": $0.name, "shape": ($0.shape ?? []).map(\.description)] },
                "outputs": graph.outputs.map { ["name": $0.name, "shape": ($0.shape ?? []).map(\.description)] },
                "nodes": graph.nodes.count,
                "op_counts": s.opCounts,
                "parameters": s.parameterCount,
                "dense_weight_bytes": s.denseWeightBytes,
                "kernels": s.kernelCounts,
                "layers": s.layers.map { ["name": $0.name, "op": $0.opType, "weight_shape": $0.weightShape ?? [], "parameters": $0.parameters] },
            ]
            if let packed {
                object["file_bytes"] = packed.report.fileBytes
                object["index_streams"] = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(packed.report.streams))
            }
            print(try Terminal.json(object))
            return
        }
        print("model: \(try model.path)")
        print("producer: \(graph.producer.isEmpty ? "unknown" : graph.producer), opset \(graph.opsetVersion), \(graph.nodes.count) nodes")
        for input in graph.inputs { print("input  \(input.name): [\((input.shape ?? []).map(\.description).joined(separator: ", "))]") }
        for output in graph.outputs { print("output \(output.name): [\((output.shape ?? []).map(\.description).joined(separator: ", "))]") }
        print("")
        var rows = [["layer", "op", "weight shape", "parameters"]]
        for layer in s.layers {
            rows.append([layer.name, layer.opType, layer.weightShape.map { $0.map(String.init).joined(separator: "×") } ?? "-", "\(layer.parameters)"])
        }
        print(Terminal.table(rows))
        print("")
        print("operators: " + s.opCounts.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", "))
        print("parameters: \(s.parameterCount)")
        print("2D kernels: " + (s.kernelCounts.isEmpty ? "none" : s.kernelCounts.sorted { $0.key < $1.key }.map { "\($0.value) of \($0.key)" }.joined(separator: ", ")))
        print("dense weight bytes (float32): \(s.denseWeightBytes) (\(Terminal.bytes(s.denseWeightBytes)))")
        if let packed {
            print("packed file: \(Terminal.bytes(packed.report.fileBytes)); compressed weights held while running: \(Terminal.bytes(packed.compressedBytes))")
            print(String(format: "index streams: %.3f bits per index stored, entropy %.3f", packed.report.bitsPerIndex, packed.report.entropy))
            for line in packed.report.lines { print(line) }
        }
    }
}
