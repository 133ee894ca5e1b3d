/// Errors reading datasets and arrays.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    case notFound(path: String, hint: String)
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    /// An image file that cannot be decoded; fatal, so that an accuracy is never measured on fewer images than given.
    case undecodable(path: String, reason: String)
    /// An image folder that cannot be used as it is (an empty class folder, a class missing from the class map, …).
    case imageFolder(path: String, reason: String)
    case mismatch(String)

    public var description: String {
        switch self {
        case .notFound(let path, let hint): "dataset not found at \(path); \(hint)"
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .malformed(let path, let reason): "\(path) is malformed: \(reason)"
        case .undecodable(let path, let reason): "cannot decode image \(path): \(reason); remove or replace the file (bad images are not skipped)"
        case .imageFolder(let path, let reason): "\(path): \(reason)"
        case .mismatch(let message): message
        }
    }
}
