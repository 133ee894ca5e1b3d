import Foundation

struct SweepRow: Codable {
    var mode: String
    var scope: String
    var kernelReduction: Double
    var clusters: Int
    var kernels: Int
    var footprintBytes: Int
    var denseBytes: Int
    var compressionRatio: Double
    var top1: Double
    var deltaTop1: Double
    var clusteringSeconds: Double
    var inertia: Double

    enum CodingKeys: String, CodingKey {
        case mode, scope, clusters, kernels, top1, inertia
        case kernelReduction = "kernel_reduction", footprintBytes = "footprint_bytes", denseBytes = "dense_bytes"
        case compressionRatio = "compression_ratio", deltaTop1 = "delta_top1", clusteringSeconds = "clustering_seconds"
    }
}

/// One sweep's rows as a terminal table, CSV, JSON, Markdown and an SVG chart.
struct SweepReport: Codable {
    var model: String
    var images: Int
    var baselineTop1: Double
    var rows: [SweepRow]

    enum CodingKeys: String, CodingKey { case model, images, rows; case baselineTop1 = "baseline_top1" }

    private var cells: [[String]] {
        [["mode", "K", "kernel reduction", "footprint", "ratio", "top-1", "Δtop-1", "clustering s"]] + rows.map { r in
            [r.mode, "\(r.clusters)", String(format: "%.2f%%", 100 * r.kernelReduction), Terminal.bytes(r.footprintBytes),
             String(format: "%.2f", r.compressionRatio), String(format: "%.2f%%", 100 * r.top1),
             String(format: "%+.2f", 100 * r.deltaTop1), String(format: "%.1f", r.clusteringSeconds)]
        }
    }

    func table() -> String {
        "baseline top-1 \(String(format: "%.2f%%", 100 * baselineTop1)) on \(images) images\n" + Terminal.table(cells)
    }

    func csv() -> String {
        (["mode,scope,clusters,kernels,kernel_reduction,footprint_bytes,dense_bytes,compression_ratio,top1,delta_top1,clustering_seconds,inertia"]
            + rows.map { r in
                "\(r.mode),\(r.scope),\(r.clusters),\(r.kernels),\(r.kernelReduction),\(r.footprintBytes),\(r.denseBytes),\(r.compressionRatio),\(r.top1),\(r.deltaTop1),\(r.clusteringSeconds),\(r.inertia)"
            }).joined(separator: "\n") + "\n"
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }

    func markdown() -> String {
        var lines = ["# Kernel-clustering sweep", "", "Model `\(model)`, \(images) test images, baseline top-1 \(String(format: "%.2f%%", 100 * baselineTop1)).", ""]
        let c = cells
        lines.append("| " + c[0].joined(separator: " | ") + " |")
        lines.append("|" + c[0].map { _ in "---" }.joined(separator: "|") + "|")
        for row in c.dropFirst() { lines.append("| " + row.joined(separator: " | ") + " |") }
        lines.append("")
        lines.append("![accuracy against footprint and kernel reduction](sweep.svg)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Two panels: top-1 against footprint (MiB), and top-1 against kernel reduction; one line per mode.
    func svg() -> String {
        let width = 900.0, height = 360.0, panel = 400.0, margin = 50.0
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
        let modes = Array(Set(rows.map(\.mode))).sorted()
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
            for (i, mode) in modes.enumerated() {
                let points = rows.filter { $0.mode == mode }.sorted { xs($0) < xs($1) }
                let path = points.map { "\(px(xs($0))),\(py($0.top1))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colours[i % colours.count])\" stroke-width=\"2\" points=\"\(path)\"/>\n"
                for p in points { s += "<circle cx=\"\(px(xs(p)))\" cy=\"\(py(p.top1))\" r=\"3\" fill=\"\(colours[i % colours.count])\"/>\n" }
                s += "<text x=\"\(x0 + margin + 10)\" y=\"\(height - margin - 10 - Double(modes.count - 1 - i) * 16)\" fill=\"\(colours[i % colours.count])\">\(mode)</text>\n"
            }
        }
        panelSVG(x0: 0, title: "top-1 vs footprint", xs: { Double($0.footprintBytes) / 1_048_576 }, xLabel: "footprint (MiB)",
                 format: { String(format: "%.1f", $0) })
        panelSVG(x0: panel + 50, title: "top-1 vs kernel reduction", xs: { $0.kernelReduction }, xLabel: "kernel reduction",
                 format: { String(format: "%.0f%%", 100 * $0) })
        s += "</svg>\n"
        return s
    }
}
