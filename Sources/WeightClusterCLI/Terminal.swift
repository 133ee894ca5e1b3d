import Foundation

/// Output helpers: JSON, progress on a terminal, aligned tables.
enum Terminal {
    static var isInteractive: Bool { isatty(STDERR_FILENO) != 0 }

    /// A one-line progress bar on stderr, only when stderr is a terminal.
    static func progress(_ label: String, _ done: Int, _ total: Int) {
        guard isInteractive else { return }
        let width = 30
        let filled = total > 0 ? width * done / total : width
        let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) \(bar) \(done)/\(total)".utf8))
        if done >= total { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
    }

    /// A status line on stderr, rewritten in place on a terminal; elsewhere only the final one is printed.
    static func status(_ text: String, done: Bool) {
        if isInteractive {
            FileHandle.standardError.write(Data("\r\u{1B}[2K\(text)\(done ? "\n" : "")".utf8))
        } else if done {
            FileHandle.standardError.write(Data("\(text)\n".utf8))
        }
    }

    static func json(_ object: [String: Any]) throws -> String {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        return String(decoding: data, as: UTF8.self)
    }

    static func table(_ rows: [[String]]) -> String {
        guard let first = rows.first else { return "" }
        let widths = (0..<first.count).map { c in rows.map { $0.indices.contains(c) ? $0[c].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.2f %@", value, units[unit])
    }

    static func percent(_ x: Double) -> String { String(format: "%.2f%%", 100 * x) }
}
