import Compute
import Foundation

/// Where images and labels come from: Fashion-MNIST IDX files, a pair of .npy files, or a folder of photos.
public enum DatasetSource: Sendable, Equatable {
    /// A folder holding MNIST-style IDX files (raw or .gz).
    case idx(directory: String)
    /// images.npy ([N,H,W] or [N,C,H,W], uint8 or float) and labels.npy (integers).
    case npy(images: String, labels: String)
    /// One sub-folder of JPEG/PNG files per class (torchvision's `ImageFolder`), and optionally a class map.
    case imageFolder(directory: String, classMap: String?)

    public static let defaultFashionMNIST = "/usr/share/datasets/fashion-mnist"
    static let installHint = "install it with `sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or pass --data DIR (a folder with the IDX files) or --data images.npy,labels.npy"

    /// Parses the `--data` argument: nil → the default Fashion-MNIST folder; a folder with sub-folders and no IDX
    /// files → an image folder (read with `classMap`, if given).
    public init(argument: String?, classMap: String? = nil) {
        guard let argument, !argument.isEmpty else {
            self = .idx(directory: DatasetSource.defaultFashionMNIST)
            return
        }
        let parts = argument.split(separator: ",").map(String.init)
        if parts.count == 2 {
            self = .npy(images: parts[0], labels: parts[1])
        } else if ImageFolder.isImageFolder(argument) {
            self = .imageFolder(directory: argument, classMap: classMap)
        } else {
            self = .idx(directory: argument)
        }
    }

    public var isImageFolder: Bool {
        if case .imageFolder = self { return true }
        return false
    }

    public enum Split: String, Sendable { case train, test }

    /// The images of `split`, or only the first `limit` of them (an image folder then decodes only those).
    public func load(split: Split = .test, preprocessing: Preprocessing = Preprocessing(), limit: Int? = nil) throws -> ImageDataset {
        if case .imageFolder(let directory, let classMap) = self {
            guard split == .test else {
                throw DatasetError.imageFolder(path: directory, reason: "an image folder has no training split; training and calibration need IDX or .npy data")
            }
            return try ImageFolder(directory: directory, classMap: classMap).prefix(limit ?? .max).load(preprocessing: preprocessing)
        }
        let all = try loadAll(split: split, preprocessing: preprocessing)
        return limit.map { all.prefix($0) } ?? all
    }

    private func loadAll(split: Split, preprocessing: Preprocessing) throws -> ImageDataset {
        switch self {
        case .idx(let directory):
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw DatasetError.notFound(path: directory, hint: DatasetSource.installHint)
            }
            let prefix = split == .test ? "t10k" : "train"
            let images = try IDXFile.read(try DatasetSource.find("\(prefix)-images-idx3-ubyte", in: directory))
            let labels = try IDXFile.read(try DatasetSource.find("\(prefix)-labels-idx1-ubyte", in: directory))
            return try ImageDataset.preprocessed(bytes: images.bytes, shape: images.shape,
                                                 labels: labels.bytes.map { Int($0) }, preprocessing: preprocessing)
        case .npy(let imagesPath, let labelsPath):
            let labelArray = try NPYFile.read(labelsPath)
            guard labelArray.shape.count == 1 else {
                throw DatasetError.malformed(path: labelsPath, reason: "labels must be a 1-D array, found shape \(labelArray.shape)")
            }
            let labels: [Int]
            switch labelArray {
            case .int64(let t): labels = t.scalars.map { Int($0) }
            case .uint8(let t): labels = t.scalars.map { Int($0) }
            case .float: throw DatasetError.malformed(path: labelsPath, reason: "labels must be integers, found floats")
            }
            switch try NPYFile.read(imagesPath) {
            case .uint8(let t):
                return try ImageDataset.preprocessed(bytes: t.scalars, shape: t.shape, labels: labels,
                                                     preprocessing: preprocessing)
            case .float(let t):
                return try ImageDataset.preprocessed(pixels: t.scalars, shape: t.shape, labels: labels,
                                                     preprocessing: preprocessing)
            case .int64:
                throw DatasetError.malformed(path: imagesPath, reason: "images must be uint8 or float")
            }
        case .imageFolder:
            preconditionFailure("image folders are loaded by load(split:preprocessing:limit:)")
        }
    }

    static func find(_ base: String, in directory: String) throws -> String {
        for name in [base + ".gz", base, base.replacingOccurrences(of: "-idx", with: ".idx") + ".gz"] {
            let path = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        throw DatasetError.notFound(path: (directory as NSString).appendingPathComponent(base + ".gz"), hint: installHint)
    }
}
