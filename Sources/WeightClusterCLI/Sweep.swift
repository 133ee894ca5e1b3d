import ArgumentParser
import Compression
import Datasets
import Evaluation
import Execution
import FileOutput
import Foundation

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Cluster at several kernel reductions (and modes), evaluate each, and chart accuracy against size.")

    @OptionGroup var model: ModelArgument

    @Option(help: "Comma-separated kernel reductions, each in [0, 1).")
    var kernelReduction: String = "0.5,0.75,0.856,0.9,0.95,0.99"

    @Option(help: "Comma-separated modes to run at each reduction (plain, scaled).")
    var kernelModes: String?

    @OptionGroup var kernels: KernelOptions
    @OptionGroup var dataOptions: DataOptions

    @Option(help: "Evaluate only the first N test images.")
    var limit: Int?

    @Option(help: "Folder for sweep.csv, sweep.json, sweep.md and sweep.svg.")
    var out: String?

    func run() throws {
        let reductions = try kernelReduction.split(separator: ",").map { text -> Double in
            guard let r = Double(text.trimmingCharacters(in: .whitespaces)), r >= 0, r < 1 else {
                throw ValidationError("--kernel-reduction values must be numbers in [0, 1), got '\(text)'")
            }
            return r
        }
        let modes = try (kernelModes ?? kernels.kernelMode.rawValue).split(separator: ",").map { text in
            guard let mode = KernelClusteringConfiguration.Mode(rawValue: String(text)) else {
                throw ValidationError("unknown kernel mode '\(text)' (plain, scaled)")
            }
            return mode
        }
        let graph = try model.load()
        var dataset = try dataOptions.source.load(split: .test, preprocessing: dataOptions.preprocessing)
        if let limit { dataset = dataset.prefix(limit) }
        let energy = try kernels.channelEnergy(graph, data: dataOptions)
        let baseline = try Evaluator.evaluate(try Executor(graph: graph), on: dataset) { Terminal.progress("baseline", $0, $1) }
        var rows: [SweepRow] = []
        let total = reductions.count * modes.count
        for mode in modes {
            for r in reductions {
                var options = kernels
                options.kernelMode = mode
                let result = try clusterKernels(in: graph, configuration: try options.configuration(.reduction(r)), channelEnergy: energy)
                let label = "\(mode.rawValue) R=\(r) (\(rows.count + 1)/\(total))"
                let report = try Evaluator.evaluate(try Executor(graph: result.graph), on: dataset) { Terminal.progress(label, $0, $1) }
                let f = result.footprint
                rows.append(SweepRow(mode: mode.rawValue, scope: options.kernelScope.rawValue, kernelReduction: f.kernelReduction,
                                     clusters: f.clusters, kernels: f.kernels, footprintBytes: f.totalBytes, denseBytes: f.denseBytes,
                                     compressionRatio: f.compressionRatio, top1: report.top1, deltaTop1: report.top1 - baseline.top1,
                                     clusteringSeconds: result.clusteringSeconds, inertia: result.inertia))
                FileHandle.standardError.write(Data("\(label): top-1 \(Terminal.percent(report.top1))\n".utf8))
            }
        }
        let sweep = SweepReport(model: try model.path, images: dataset.count, baselineTop1: baseline.top1, rows: rows)
        print(sweep.table())
        if let out {
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            for (name, text) in [("sweep.csv", sweep.csv()), ("sweep.json", try sweep.json()), ("sweep.md", sweep.markdown()),
                                 ("sweep.svg", sweep.svg())] {
                try writeAtomically(Data(text.utf8), to: (out as NSString).appendingPathComponent(name))
            }
            print("wrote \(out)/sweep.{csv,json,md,svg}")
        }
    }
}
