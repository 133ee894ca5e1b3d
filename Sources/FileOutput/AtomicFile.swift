import Foundation

public enum FileOutputError: Error, CustomStringConvertible {
    case cannotWrite(path: String, reason: String)
    case sameAsInput(path: String)

    public var description: String {
        switch self {
        case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
        case .sameAsInput(let path): "output path \(path) is the input file; choose another output path (the input is never modified)"
        }
    }
}

/// Writes `data` to a temporary file beside `path` and renames it into place only when complete,
/// so a reader never sees a half-written file and a failed run leaves nothing behind.
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let temporary = url.deletingLastPathComponent()
        .appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
    do {
        try data.write(to: temporary)
        // rename(2) replaces an existing file atomically.
        guard rename(temporary.path, url.path) == 0 else {
            throw FileOutputError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
    } catch let error as FileOutputError {
        try? FileManager.default.removeItem(at: temporary)
        throw error
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw FileOutputError.cannotWrite(path: path, reason: (error as NSError).localizedDescription)
    }
}

/// Throws when `output` names the same file as `input` (after resolving links and relative paths).
public func ensureDistinct(output: String, input: String) throws {
    let a = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
    let b = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path
    if a == b { throw FileOutputError.sameAsInput(path: output) }
}
