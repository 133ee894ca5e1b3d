import Foundation

struct SweepRow: Codable {
    var mode: String
    var footprintBytes: Int
    var denseBytes: Int
    var compressionRatio: Double
    var top1: Double
    var deltaTop1: Double
    var clusteringSeconds: Double
    // Kernel clustering.
    var scope: String?
    var kernelReduction: Double?
    var clusters: Int?
    var kernels: Int?
    var inertia: Double?
    // Neuron clustering (clusters = shared columns over all layers).
    var sparsity: Double?
    var columnReduction: Double?
    var columns: Int?
    var foldedLayers: Int?
    var scaledLayers: Int?
    /// Top-1 after `--finetune-epochs` of fine-tuning.
    var top1Finetuned: Double?
    // Palettization (clusters = entries per codebook).
    var bits: Int?
    var granularity: String?
    var clusterDim: Int?
    /// Over the palettized weights (codebooks, indices and scales included).
    var bitsPerWeight: Double?
    /// ‖W − Ŵ‖² / ‖W‖² over the palettized weights, weighted by size.
    var relativeError: Double?

    enum CodingKeys: String, CodingKey {
        case mode, scope, clusters, kernels, top1, inertia, sparsity, columns
        case kernelReduction = "kernel_reduction", footprintBytes = "footprint_bytes", denseBytes = "dense_bytes"
        case compressionRatio = "compression_ratio", deltaTop1 = "delta_top1", clusteringSeconds = "clustering_seconds"
        case columnReduction = "column_reduction", foldedLayers = "folded_layers", scaledLayers = "scaled_layers"
        case top1Finetuned = "top1_finetuned"
        case bits, granularity, clusterDim = "cluster_dim", bitsPerWeight = "bits_per_weight", relativeError = "relative_error"
    }

    var isNeuron: Bool { columnReduction != nil }
    /// Palettization rows (uniform bits, or bits allocated per layer) carry their bits per palettized weight.
    var isPalettization: Bool { bitsPerWeight != nil }
    /// Bits per weight of the whole model: 32 / compression ratio.
    var modelBitsPerWeight: Double { 32 / max(compressionRatio, 1e-9) }
    /// The line a row belongs to in the chart.
    var series: String { isNeuron ? "\(mode) s=\(sparsity ?? 0)" : mode }
    var reduction: Double { columnReduction ?? kernelReduction ?? 0 }
}

/// One sweep's rows as a terminal table, CSV, JSON, Markdown and an SVG chart.
struct SweepReport: Codable {
    var model: String
    var images: Int
    var baselineTop1: Double
    var rows: [SweepRow]

    enum CodingKeys: String, CodingKey { case model, images, rows; case baselineTop1 = "baseline_top1" }

    private var neuron: Bool { !rows.isEmpty && rows.allSatisfy(\.isNeuron) }
    /// Rows of more than one family (or palettization): the second panel and table use bits per weight.
    private var mixed: Bool { rows.contains(where: \.isPalettization) || (rows.contains(where: \.isNeuron) && !neuron) }

    private var cells: [[String]] {
        let tuned = rows.contains { $0.top1Finetuned != nil }
        func common(_ r: SweepRow) -> [String] {
            [Terminal.bytes(r.footprintBytes), String(format: "%.2f", r.compressionRatio), String(format: "%.2f%%", 100 * r.top1),
             String(format: "%+.2f", 100 * r.deltaTop1), String(format: "%.1f", r.clusteringSeconds)]
                + (tuned ? [r.top1Finetuned.map { String(format: "%.2f%%", 100 * $0) } ?? ""] : [])
        }
        let tail = ["footprint", "ratio", "top-1", "Δtop-1", "clustering s"] + (tuned ? ["top-1 fine-tuned"] : [])
        if neuron {
            return [["mode", "sparsity", "column reduction", "k (all layers)", "folded/scaled"] + tail] + rows.map { r in
                [r.mode, String(format: "%.2f", r.sparsity ?? 0), String(format: "%.2f%%", 100 * r.reduction), "\(r.clusters ?? 0)",
                 "\(r.foldedLayers ?? 0)/\(r.scaledLayers ?? 0)"] + common(r)
            }
        }
        if mixed {
            return [["form", "bits", "K", "reduction", "bits/weight (model)"] + tail] + rows.map { r in
                [r.mode, r.bits.map(String.init) ?? "", r.isPalettization ? r.clusters.map(String.init) ?? "" : "\(r.clusters ?? 0)",
                 r.isPalettization ? "" : String(format: "%.2f%%", 100 * r.reduction),
                 String(format: "%.2f", r.modelBitsPerWeight)] + common(r)
            }
        }
        return [["mode", "K", "kernel reduction"] + tail] + rows.map { r in
            [r.mode, "\(r.clusters ?? 0)", String(format: "%.2f%%", 100 * r.reduction)] + common(r)
        }
    }

    func table() -> String {
        "baseline top-1 \(String(format: "%.2f%%", 100 * baselineTop1)) on \(images) images\n" + Terminal.table(cells)
    }

    func csv() -> String {
        func text<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "" }
        return (["mode,scope,sparsity,column_reduction,kernel_reduction,clusters,kernels,columns,folded_layers,scaled_layers,footprint_bytes,dense_bytes,compression_ratio,top1,delta_top1,clustering_seconds,inertia,bits,granularity,cluster_dim,bits_per_weight,relative_error,top1_finetuned"]
            + rows.map { r in
                [r.mode, text(r.scope), text(r.sparsity), text(r.columnReduction), text(r.kernelReduction), text(r.clusters), text(r.kernels),
                 text(r.columns), text(r.foldedLayers), text(r.scaledLayers), "\(r.footprintBytes)", "\(r.denseBytes)",
                 "\(r.compressionRatio)", "\(r.top1)", "\(r.deltaTop1)", "\(r.clusteringSeconds)", text(r.inertia),
                 text(r.bits), text(r.granularity), text(r.clusterDim), text(r.bitsPerWeight), text(r.relativeError),
                 text(r.top1Finetuned)].joined(separator: ",")
            }).joined(separator: "\n") + "\n"
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    func markdown() -> String {
        var lines = [mixed ? "# Compression sweep" : neuron ? "# Neuron-clustering sweep" : "# Kernel-clustering sweep", "", "Model `\(model)`, \(images) test images, baseline top-1 \(String(format: "%.2f%%", 100 * baselineTop1)).", ""]
        let c = cells
        lines.append("| " + c[0].joined(separator: " | ") + " |")
        lines.append("|" + c[0].map { _ in "---" }.joined(separator: "|") + "|")
        for row in c.dropFirst() { lines.append("| " + row.joined(separator: " | ") + " |") }
        lines.append("")
        lines.append("![accuracy against footprint and \(mixed ? "bits per weight" : neuron ? "column reduction" : "kernel reduction")](sweep.svg)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Two panels: top-1 against footprint (MiB), and top-1 against kernel or column reduction; one line per mode
    /// (and sparsity), coloured by mode, dashed by sparsity.
    func svg() -> String {
        let width = 1040.0, height = 360.0, panel = 400.0, margin = 50.0
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
        let series = rows.map(\.series).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let modes = rows.map(\.mode).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        let dashes = ["", "6 3", "2 2", "8 3 2 3", "1 3"]
        let sparsities = rows.compactMap(\.sparsity).reduce(into: [Double]()) { if !$0.contains($1) { $0.append($1) } }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        func panelSVG(x0: Double, title: String, xs: (SweepRow) -> Double, xLabel: String, format: (Double) -> String) {
            let values = rows.map(xs)
            let xMin = min(values.min() ?? 0, 0), xMax = max(values.max() ?? 1, xMin + 1e-9)
            let plotW = panel - margin, plotH = height - 2 * margin
            func px(_ v: Double) -> Double { x0 + margin + (v - xMin) / (xMax - xMin) * (plotW - 10) }
            func py(_ v: Double) -> Double { margin + (1 - v) * plotH }
            s += "<text x=\"\(x0 + margin)\" y=\"20\" font-weight=\"bold\">\(title)</text>\n"
            s += "<line x1=\"\(x0 + margin)\" y1=\"\(py(0))\" x2=\"\(x0 + panel)\" y2=\"\(py(0))\" stroke=\"black\"/>\n"
            s += "<line x1=\"\(x0 + margin)\" y1=\"\(py(0))\" x2=\"\(x0 + margin)\" y2=\"\(py(1))\" stroke=\"black\"/>\n"
            for tick in stride(from: 0.0, through: 1.0, by: 0.2) {
                s += "<text x=\"\(x0 + 10)\" y=\"\(py(tick) + 4)\">\(Int(tick * 100))%</text>\n"
                s += "<line x1=\"\(x0 + margin)\" y1=\"\(py(tick))\" x2=\"\(x0 + panel)\" y2=\"\(py(tick))\" stroke=\"#ddd\"/>\n"
            }
            for t in 0...4 {
                let v = xMin + (xMax - xMin) * Double(t) / 4
                s += "<text x=\"\(px(v) - 15)\" y=\"\(py(0) + 16)\">\(format(v))</text>\n"
            }
            s += "<text x=\"\(x0 + margin + plotW / 2 - 40)\" y=\"\(height - 8)\">\(xLabel)</text>\n"
            s += "<line x1=\"\(x0 + margin)\" y1=\"\(py(baselineTop1))\" x2=\"\(x0 + panel)\" y2=\"\(py(baselineTop1))\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n"
            for name in series {
                let points = rows.filter { $0.series == name }.sorted { xs($0) < xs($1) }
                guard let first = points.first else { continue }
                let colour = colours[(modes.firstIndex(of: first.mode) ?? 0) % colours.count]
                let dash = dashes[(sparsities.firstIndex(of: first.sparsity ?? 0) ?? 0) % dashes.count]
                let path = points.map { "\(px(xs($0))),\(py($0.top1))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\" stroke-dasharray=\"\(dash)\" points=\"\(path)\"/>\n"
                for p in points { s += "<circle cx=\"\(px(xs(p)))\" cy=\"\(py(p.top1))\" r=\"3\" fill=\"\(colour)\"/>\n" }
            }
        }
        panelSVG(x0: 0, title: "top-1 vs footprint", xs: { Double($0.footprintBytes) / 1_048_576 }, xLabel: "footprint (MiB)",
                 format: { String(format: "%.1f", $0) })
        if mixed {
            panelSVG(x0: panel + 50, title: "top-1 vs bits per weight (whole model)", xs: { $0.modelBitsPerWeight }, xLabel: "bits per weight",
                     format: { String(format: "%.1f", $0) })
        } else {
            let kind = neuron ? "column" : "kernel"
            panelSVG(x0: panel + 50, title: "top-1 vs \(kind) reduction", xs: { $0.reduction }, xLabel: "\(kind) reduction",
                     format: { String(format: "%.0f%%", 100 * $0) })
        }
        // Legend: colour per mode, dash per sparsity.
        var y = margin
        for (i, mode) in modes.enumerated() {
            s += "<line x1=\"910\" y1=\"\(y - 4)\" x2=\"940\" y2=\"\(y - 4)\" stroke=\"\(colours[i % colours.count])\" stroke-width=\"2\"/>\n"
            s += "<text x=\"946\" y=\"\(y)\">\(mode)</text>\n"
            y += 16
        }
        if neuron {
            y += 8
            for (i, sparsity) in sparsities.enumerated() {
                s += "<line x1=\"910\" y1=\"\(y - 4)\" x2=\"940\" y2=\"\(y - 4)\" stroke=\"black\" stroke-width=\"2\" stroke-dasharray=\"\(dashes[i % dashes.count])\"/>\n"
                s += "<text x=\"946\" y=\"\(y)\">sparsity \(sparsity)</text>\n"
                y += 16
            }
        }
        s += "</svg>\n"
        return s
    }
}
