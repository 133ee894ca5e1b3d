/// Errors reading datasets and arrays.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
    case notFound(path: String, hint: String)
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)
    case mismatch(String)

    public var description: String {
        switch self {
        case .notFound(let path, let hint): "dataset not found at \(path); \(hint)"
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .malformed(let path, let reason): "\(path) is malformed: \(reason)"
        case .mismatch(let message): message
        }
    }
}
