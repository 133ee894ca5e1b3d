import FileOutput
import Foundation

/// External tensor data, read under the rule onnxruntime applies: the `location` is a relative path that
/// resolves (after symlinks) to a regular file inside the model's folder; `offset` and `length` are
/// non-negative decimal integers inside that file; exactly the bytes the tensor's shape needs are read.
/// Every refusal of the location is the same message, so a model cannot learn whether some other file exists.
enum ExternalData {
    static func read(tensor: String, entries: [String: String], byteCount: Int, baseDirectory: URL?) throws -> Data {
        guard let location = entries["location"], !location.isEmpty else {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "external data without a location")
        }
        let refused = ONNXError.externalDataRefused(tensor: tensor, location: location)
        guard let baseDirectory else { throw refused }
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.hasPrefix("/"), !location.contains("\0"), !components.contains(where: { $0 == ".." }) else {
            throw refused
        }
        let offset = try number(entries["offset"], key: "offset", tensor: tensor) ?? 0
        let length = try number(entries["length"], key: "length", tensor: tensor)
        if let length, length != byteCount {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "external data length \(length) does not match the \(byteCount) bytes its shape needs")
        }
        // Both paths with symlinks resolved; the file must lie strictly inside the folder.
        guard let folder = realPath(baseDirectory.path), let file = realPath(folder + "/" + location),
              file.hasPrefix(folder == "/" ? "/" : folder + "/"), file != folder else {
            throw refused
        }
        let opened: (fd: Int32, size: Int)
        do {
            opened = try RegularFile.open(file, noFollow: true)
        } catch {
            throw refused
        }
        defer { close(opened.fd) }
        let (end, overflow) = offset.addingReportingOverflow(byteCount)
        guard !overflow, end <= opened.size else {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "external data at offset \(offset) needs \(byteCount) bytes, past the end of '\(location)' (\(opened.size) bytes)")
        }
        do {
            return try RegularFile.read(opened.fd, offset: offset, count: byteCount)
        } catch {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "cannot read external data '\(location)': \(error)")
        }
    }

    /// A non-negative decimal integer, or nil when absent.
    private static func number(_ text: String?, key: String, tensor: String) throws -> Int? {
        guard let text else { return nil }
        guard !text.isEmpty, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = Int(text) else {
            throw ONNXError.invalidTensor(tensor: tensor, reason: "external data \(key) '\(text.prefix(40))' is not a non-negative integer")
        }
        return value
    }

    private static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
