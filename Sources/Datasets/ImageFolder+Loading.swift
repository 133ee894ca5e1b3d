import Compute
import Foundation

extension ImageFolder {
    /// Decodes every image, resizes and crops it (`preprocessing.resize`, `.crop`) and keeps it as bytes (3 × H × W,
    /// in `preprocessing.channelOrder`); the images are normalised batch by batch as they are used. Every image must
    /// end up the same size. A file that does not decode is an error (never skipped). A few images per core are
    /// decoded at a time, so memory holds only those at full size.
    public func load(preprocessing p: Preprocessing) throws -> ImageDataset {
        if let resize = p.resize, let crop = p.crop, crop > resize {
            throw DatasetError.mismatch("--crop \(crop) is larger than --resize \(resize): the centre crop must fit inside the resized image")
        }
        var bytes: [UInt8] = []
        var size: (width: Int, height: Int, path: String)?
        let group = 4 * ComputeThreads.count
        for start in stride(from: 0, to: files.count, by: group) {
            let range = start..<min(files.count, start + group)
            // In file order, so the error reported is the first bad file's whatever the thread count.
            for (i, result) in zip(range, prepared(range, p)) {
                let image = try result.get()
                if let size, (size.width, size.height) != (image.width, image.height) {
                    throw DatasetError.imageFolder(path: files[i].path, reason: "is \(image.width)×\(image.height) but \(size.path) is \(size.width)×\(size.height); pass --resize and --crop to give every image one size")
                }
                if size == nil {
                    size = (image.width, image.height, files[i].path)
                    bytes.reserveCapacity(files.count * 3 * image.width * image.height)
                }
                bytes += image.planes(p.channelOrder)
            }
        }
        return try ImageDataset.preprocessed(bytes: bytes, shape: [files.count, 3, size?.height ?? 0, size?.width ?? 0],
                                             labels: files.map(\.label), preprocessing: p)
    }

    /// Files `range` decoded, resized and cropped, over all cores.
    private func prepared(_ range: Range<Int>, _ p: Preprocessing) -> [Result<RGBImage, any Error>] {
        var results = [Result<RGBImage, any Error>](repeating: .failure(CancellationError()), count: range.count)
        results.withUnsafeMutableBufferPointer { slots in
            // Each worker writes its own slots.
            nonisolated(unsafe) let slots = slots
            parallelChunks(range.count) { chunk in
                for j in chunk { slots[j] = Result { try prepared(files[range.lowerBound + j].path, p) } }
            }
        }
        return results
    }

    private func prepared(_ path: String, _ p: Preprocessing) throws -> RGBImage {
        var image = try RGBImage.read(path)
        if let side = p.resize { image = image.resized(shorterSide: side) }
        if let crop = p.crop {
            guard let cropped = image.centerCropped(crop) else {
                throw DatasetError.imageFolder(path: path, reason: "is \(image.width)×\(image.height)\(p.resize.map { " after --resize \($0)" } ?? ""), smaller than --crop \(crop)")
            }
            image = cropped
        }
        return image
    }
}
