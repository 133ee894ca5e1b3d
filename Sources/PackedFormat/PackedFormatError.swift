/// Why a packed model file could not be read or written: one line a user can act on.
public enum PackedFormatError: Error, Equatable, CustomStringConvertible {
    /// The file does not start with the packed format's magic bytes.
    case notPacked(path: String)
    case unsupportedVersion(path: String, version: UInt32)
    /// A length, offset or count points past the end of the file (a truncated or cut file).
    case truncated(path: String, detail: String)
    /// A checksum differs or a field holds a value the format does not allow.
    case corrupt(path: String, detail: String)
    case unreadable(path: String, reason: String)
    /// The graph cannot be written in the packed format.
    case unwritable(detail: String)

    public var description: String {
        switch self {
        case .notPacked(let path): "\(path) is not a WeightCluster packed model (no WCPK magic)"
        case .unsupportedVersion(let path, let version):
            "\(path) is a packed model of format version \(version); this build reads version \(PackedModelFile.version)"
        case .truncated(let path, let detail): "\(path) is truncated: \(detail)"
        case .corrupt(let path, let detail): "\(path) is corrupt: \(detail)"
        case .unreadable(let path, let reason): "cannot read \(path): \(reason)"
        case .unwritable(let detail): "cannot write a packed model: \(detail)"
        }
    }
}
