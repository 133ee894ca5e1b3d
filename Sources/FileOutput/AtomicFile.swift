import Foundation

public enum FileOutputError: Error, CustomStringConvertible {
    case cannotWrite(path: String, reason: String)
    case sameAsInput(path: String)
    case notADirectory(path: String)

    public var description: String {
        switch self {
        case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
        case .sameAsInput(let path): "output path \(path) is the input file; choose another output path (the input is never modified)"
        case .notADirectory(let path): "cannot write into \(path): it exists and is not a folder; choose another --out folder"
        }
    }
}

/// Writes `data` to a fresh temporary file beside `path` and renames it into place only when complete,
/// so a reader never sees a half-written file and a failed run leaves nothing behind.
///
/// The temporary file is made by `mkstemp` (O_CREAT|O_EXCL with a random name) in the target's folder, so a
/// file or symlink planted at a predictable name is never opened or written through; `rename(2)` then
/// replaces the entry at `path` itself (a symlink there is replaced, not followed).
public func writeAtomically(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let name = url.lastPathComponent
    guard !name.isEmpty, name != ".", name != ".." else {
        throw FileOutputError.cannotWrite(path: path, reason: "not a file name")
    }
    let folder = url.deletingLastPathComponent().path
    var template = Array((folder as NSString).appendingPathComponent(".\(name).XXXXXX").utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { throw FileOutputError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
    let temporary = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    var closed = false
    defer {
        if !closed { close(fd) }
    }
    do {
        // mkstemp creates the file 0600; outputs are ordinary files (0644).
        guard fchmod(fd, 0o644) == 0 else { throw FileOutputError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileOutputError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
                }
                offset += n
            }
        }
        closed = true
        guard close(fd) == 0 else { throw FileOutputError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
        // rename(2) replaces an existing file atomically.
        guard rename(temporary, path) == 0 else {
            let reason = errno == EISDIR ? "it is a folder" : String(cString: strerror(errno))
            throw FileOutputError.cannotWrite(path: path, reason: reason)
        }
    } catch {
        unlink(temporary)
        throw error
    }
}

/// Creates the folder `path` (and its parents) for outputs; an existing folder is fine, anything else at
/// that path is one clear error.
public func createOutputDirectory(_ path: String) throws {
    var isDirectory: ObjCBool = false
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
        guard isDirectory.boolValue else { throw FileOutputError.notADirectory(path: path) }
        return
    }
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw FileOutputError.cannotWrite(path: path, reason: "cannot create the folder (a parent is missing, not a folder, or not writable)")
    }
}

/// Throws when `output` names the same file as `input` (after resolving links and relative paths).
public func ensureDistinct(output: String, input: String) throws {
    let a = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
    let b = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path
    if a == b { throw FileOutputError.sameAsInput(path: output) }
}
