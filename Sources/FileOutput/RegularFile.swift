import Foundation

/// Why an input file could not be read; callers wrap it in their own error with the file's role.
public enum RegularFileError: Error, Equatable, CustomStringConvertible {
    case notFound
    case notRegular
    case tooLarge(size: Int, limit: Int)
    case unreadable(reason: String)

    public var description: String {
        switch self {
        case .notFound: "no such file"
        case .notRegular: "not a regular file (a folder, device, FIFO or socket)"
        case .tooLarge(let size, let limit): "\(size) bytes is more than the \(limit) bytes accepted"
        case .unreadable(let reason): reason
        }
    }
}

/// Input files are read only when they are regular files: a FIFO is never waited on (opened non-blocking and
/// refused), a device or folder is refused before any read, and at most `limit` bytes are accepted.
public enum RegularFile {
    /// Opens `path` for reading (following links, as a user's path may be one) and checks it is a regular file.
    /// The caller closes the descriptor.
    public static func open(_ path: String, noFollow: Bool = false) throws(RegularFileError) -> (fd: Int32, size: Int) {
        let flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | (noFollow ? O_NOFOLLOW : 0)
        let fd = Foundation.open(path, flags)
        guard fd >= 0 else {
            throw errno == ENOENT || errno == ENOTDIR ? .notFound : errno == ELOOP ? .notRegular
                : .unreadable(reason: String(cString: strerror(errno)))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw .unreadable(reason: reason)
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .notRegular
        }
        return (fd, Int(info.st_size))
    }

    /// The whole file memory-mapped read-only (pages are read when touched and may be dropped under memory pressure),
    /// when it is a regular file of 1 to `limit` bytes. The mapping lives as long as the returned bytes.
    public static func mapped(_ path: String, limit: Int) throws(RegularFileError) -> Data {
        let (fd, size) = try open(path)
        defer { close(fd) }
        guard size <= limit else { throw .tooLarge(size: size, limit: limit) }
        guard size > 0 else { return Data() }
        guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw .unreadable(reason: String(cString: strerror(errno)))
        }
        return Data(bytesNoCopy: address, count: size, deallocator: .custom { pointer, count in munmap(pointer, count) })
    }

    /// The first `count` bytes of a regular file (fewer when it is shorter); nil when it is not a readable regular file.
    /// Never blocks on a FIFO or a device.
    public static func prefix(_ path: String, count: Int) -> Data? {
        guard let (fd, size) = try? open(path) else { return nil }
        defer { close(fd) }
        return try? read(fd, offset: 0, count: min(size, count))
    }

    /// The whole file, when it is a regular file of at most `limit` bytes.
    public static func read(_ path: String, limit: Int) throws(RegularFileError) -> Data {
        let (fd, size) = try open(path)
        defer { close(fd) }
        guard size <= limit else { throw .tooLarge(size: size, limit: limit) }
        return try read(fd, offset: 0, count: size)
    }

    /// Exactly `count` bytes at `offset` of an open file (fewer is an error).
    public static func read(_ fd: Int32, offset: Int, count: Int) throws(RegularFileError) -> Data {
        var data = Data(count: count)
        var done = 0
        var failure: RegularFileError?
        data.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .unreadable(reason: String(cString: strerror(errno)))
                    return
                }
                if n == 0 { failure = .unreadable(reason: "the file ends after \(offset + done) bytes"); return }
                done += n
            }
        }
        if let failure { throw failure }
        return data
    }
}
