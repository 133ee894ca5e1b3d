import Foundation

extension ImageFolder {
    /// Decodes every image, resizes and crops it (`preprocessing.resize`, `.crop`) and keeps it as bytes (3 × H × W,
    /// in `preprocessing.channelOrder`); the images are normalised batch by batch as they are used. Every image must
    /// end up the same size. A file that does not decode is an error (never skipped).
    public func load(preprocessing p: Preprocessing, progress: ((Int, Int) -> Void)? = nil) throws -> ImageDataset {
        if let resize = p.resize, let crop = p.crop, crop > resize {
            throw DatasetError.mismatch("--crop \(crop) is larger than --resize \(resize): the centre crop must fit inside the resized image")
        }
        var bytes: [UInt8] = []
        var size: (width: Int, height: Int, path: String)?
        for (i, file) in files.enumerated() {
            var image = try RGBImage.read(file.path)
            if let side = p.resize { image = image.resized(shorterSide: side) }
            if let crop = p.crop {
                guard let cropped = image.centerCropped(crop) else {
                    throw DatasetError.imageFolder(path: file.path, reason: "is \(image.width)×\(image.height)\(p.resize == nil ? "" : " after --resize \(p.resize!)"), smaller than --crop \(crop)")
                }
                image = cropped
            }
            if let size, (size.width, size.height) != (image.width, image.height) {
                throw DatasetError.imageFolder(path: file.path, reason: "is \(image.width)×\(image.height) but \(size.path) is \(size.width)×\(size.height); pass --resize and --crop to give every image one size")
            }
            if size == nil {
                size = (image.width, image.height, file.path)
                bytes.reserveCapacity(files.count * 3 * image.width * image.height)
            }
            bytes += image.planes(p.channelOrder)
            progress?(i + 1, files.count)
        }
        return try ImageDataset.preprocessed(bytes: bytes, shape: [files.count, 3, size?.height ?? 0, size?.width ?? 0],
                                             labels: files.map(\.label), preprocessing: p)
    }
}
