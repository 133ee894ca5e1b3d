import Compute
import Datasets
import Foundation
import Testing

/// JPEG/PNG decoding, torchvision's Resize/CenterCrop/Normalize, class order and bad input. Expected pixels were
/// computed with PIL (Scripts/generate-image-fixtures.py) and are stored beside the images.
@Suite struct ImageFolderTests {
    static let images = Fixtures.path("images")
    static let folder = Fixtures.path("images/folder")

    func expected(_ name: String) throws -> (height: Int, width: Int, pixels: [UInt8]) {
        guard case .uint8(let t) = try NPYFile.read("\(ImageFolderTests.images)/\(name).npy"), t.rank == 3, t.shape[2] == 3 else {
            throw DatasetError.mismatch("fixture \(name).npy is not H×W×3 bytes")
        }
        return (t.shape[0], t.shape[1], t.scalars)
    }

    func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wc-images-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A copy of the fixture folder, to break in one way.
    func folderCopy() throws -> URL {
        let dir = try temporaryDirectory().appendingPathComponent("photos")
        try FileManager.default.copyItem(atPath: ImageFolderTests.folder, toPath: dir.path)
        return dir
    }

    @Test(arguments: ["rgb.png", "rgb.jpg", "gray.png", "rgba.png", "palette.png"])
    func decodesAsPILConvertsToRGB(_ name: String) throws {
        let image = try RGBImage.read("\(ImageFolderTests.images)/\(name)")
        let pil = try expected(name.replacingOccurrences(of: ".", with: "_"))
        #expect(image.height == pil.height && image.width == pil.width)
        #expect(image.pixels == pil.pixels)
    }

    @Test func decodedPixelsRecordedFromPIL() throws {
        let jpeg = try RGBImage.read("\(ImageFolderTests.images)/rgb.jpg")
        func pixel(_ image: RGBImage, _ y: Int, _ x: Int) -> [UInt8] { Array(image.pixels[(y * image.width + x) * 3..<(y * image.width + x) * 3 + 3]) }
        #expect(jpeg.width == 16 && jpeg.height == 12)
        #expect(pixel(jpeg, 0, 0) == [1, 0, 161] && pixel(jpeg, 5, 7) == [119, 112, 40] && pixel(jpeg, 11, 15) == [252, 236, 35])
        let png = try RGBImage.read("\(ImageFolderTests.images)/rgb.png")
        #expect(pixel(png, 0, 0) == [0, 0, 132] && pixel(png, 5, 7) == [118, 118, 34] && pixel(png, 11, 15) == [255, 241, 35])
        // Grey is copied to R, G and B.
        #expect(pixel(try RGBImage.read("\(ImageFolderTests.images)/gray.png"), 3, 4) == [121, 121, 121])
    }

    /// torchvision Resize(7) shrinks 16×12 to 9×7 (antialiased), Resize(20) enlarges it to 26×20, CenterCrop(5).
    @Test func resizeAndCropMatchPIL() throws {
        let image = try RGBImage.read("\(ImageFolderTests.images)/rgb.png")
        let small = image.resized(shorterSide: 7)
        let pil7 = try expected("rgb_resize7")
        #expect(small.width == 9 && small.height == 7 && small.pixels == pil7.pixels)
        let large = image.resized(shorterSide: 20), pil20 = try expected("rgb_resize20")
        #expect(large.width == 26 && large.height == 20 && large.pixels == pil20.pixels)
        let cropped = try #require(small.centerCropped(5)), pilCrop = try expected("rgb_resize7_crop5")
        #expect(cropped.width == 5 && cropped.height == 5 && cropped.pixels == pilCrop.pixels)
        #expect(small.centerCropped(8) == nil)
        #expect(RGBImage.sizeResized(width: 500, height: 375, shorterSide: 256) == (341, 256))
        #expect(RGBImage.sizeResized(width: 300, height: 451, shorterSide: 256) == (256, 384))
    }

    /// The crop offset is int(round((size − crop) / 2)), and Python rounds 1.5 and 2.5 to 2.
    @Test func centerCropRoundsHalvesToEven() {
        for (width, left) in [(8, 2), (10, 2), (9, 2), (5, 0)] {
            let image = RGBImage(width: width, height: 5, pixels: (0..<(5 * width)).flatMap { i in [UInt8(i % width), 0, 0] })
            #expect(image.centerCropped(5)?.pixels[0] == UInt8(left))
        }
    }

    @Test func normalisesPerChannel() throws {
        // One image of 3 channels × 1 × 2 pixels.
        let p = Preprocessing(mean: [0, 0.5, 1], std: [1, 0.5, 0.25])
        let set = try ImageDataset.preprocessed(bytes: [0, 255, 0, 255, 0, 255], shape: [1, 3, 1, 2], labels: [0], preprocessing: p)
        #expect(set.images.shape == [1, 3, 1, 2])
        #expect(set.images.scalars == [0, 1, -1, 1, -4, 0])
        let one = try ImageDataset.preprocessed(bytes: [0, 255, 0, 255, 0, 255], shape: [1, 3, 1, 2], labels: [0],
                                                preprocessing: Preprocessing(mean: [0.5], std: [0.5]))
        #expect(one.images.scalars == [-1, 1, -1, 1, -1, 1])
        let error = #expect(throws: DatasetError.self) {
            try ImageDataset.preprocessed(bytes: [0, 0, 0], shape: [1, 3, 1, 1], labels: [0], preprocessing: Preprocessing(mean: [0.1, 0.2], std: [1]))
        }
        #expect(error?.description.contains("--mean has 2 values but the images have 3 channels") == true)
    }

    /// Classes sort by code point ("Zebra" before "cat"), files as os.walk finds them; other and hidden files are ignored.
    @Test func classesInTorchvisionOrder() throws {
        let folder = try ImageFolder(directory: ImageFolderTests.folder)
        #expect(folder.classNames == ["Zebra", "cat", "dog"])
        let relative = folder.files.map { String($0.path.dropFirst(ImageFolderTests.folder.count + 1)) }
        #expect(relative == ["Zebra/gray.png", "Zebra/more/b.png", "cat/1.png", "cat/2.JPG", "dog/a.jpeg"])
        #expect(folder.files.map(\.label) == [0, 0, 1, 1, 2])
    }

    @Test func classMapGivesTheModelsOrder() throws {
        let folder = try ImageFolder(directory: ImageFolderTests.folder, classMap: "\(ImageFolderTests.images)/folder-classes.txt")
        #expect(folder.classNames == ["dog", "cat", "unused", "Zebra"])
        #expect(folder.files.map(\.label) == [3, 3, 1, 1, 0])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "dog\ncat\n".write(to: dir.appendingPathComponent("missing.txt"), atomically: true, encoding: .utf8)
        let missing = #expect(throws: DatasetError.self) { try ImageFolder(directory: ImageFolderTests.folder, classMap: dir.appendingPathComponent("missing.txt").path) }
        #expect(missing?.description.contains("no line 'Zebra'") == true)
        try "dog\ncat\ndog\nZebra\n".write(to: dir.appendingPathComponent("twice.txt"), atomically: true, encoding: .utf8)
        let twice = #expect(throws: DatasetError.self) { try ImageFolder(directory: ImageFolderTests.folder, classMap: dir.appendingPathComponent("twice.txt").path) }
        #expect(twice?.description.contains("'dog' twice") == true)
    }

    @Test func loadsAsBytesResizedCroppedAndNormalised() throws {
        let source = DatasetSource(argument: ImageFolderTests.folder)
        #expect(source == .imageFolder(directory: ImageFolderTests.folder, classMap: nil))
        let p = Preprocessing(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 8, crop: 6)
        let set = try source.load(preprocessing: p)
        #expect(set.images.shape == [5, 3, 6, 6] && set.labels == [0, 0, 1, 1, 2])
        // The grey image's three planes are equal before normalisation.
        let x = set.batch(0..<1).scalars, area = 36
        for i in 0..<area {
            let grey = x[i] * 0.229 + 0.485
            #expect(abs(x[area + i] * 0.224 + 0.456 - grey) < 1e-5 && abs(x[2 * area + i] * 0.225 + 0.406 - grey) < 1e-5)
        }
        // The first pixel of cat/1.png, by hand: resized and cropped with RGBImage, then normalised.
        let cat = try #require(try RGBImage.read("\(ImageFolderTests.folder)/cat/1.png").resized(shorterSide: 8).centerCropped(6))
        let y = set.batch(2..<3).scalars
        #expect(abs(y[0] - (Float(cat.pixels[0]) / 255 - 0.485) / 0.229) < 1e-5)
        #expect(abs(y[area] - (Float(cat.pixels[1]) / 255 - 0.456) / 0.224) < 1e-5)
        // BGR puts blue first.
        var bgr = p
        bgr.channelOrder = .bgr
        bgr.mean = [0]
        bgr.std = [1]
        let b = try source.load(preprocessing: bgr).batch(2..<3).scalars
        #expect(abs(b[0] - Float(cat.pixels[2]) / 255) < 1e-6 && abs(b[2 * area] - Float(cat.pixels[0]) / 255) < 1e-6)
    }

    /// Channels last gives the same values as channels first, transposed (padding included).
    @Test func channelsLastIsATranspose() throws {
        let source = DatasetSource(argument: ImageFolderTests.folder)
        var p = Preprocessing(pad: 1, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 7, crop: 5)
        let first = try source.load(preprocessing: p)
        p.layout = .nhwc
        let last = try source.load(preprocessing: p)
        #expect(first.images.shape == [5, 3, 7, 7] && last.images.shape == [5, 7, 7, 3])
        let (a, b) = (first.rows([4, 1]).scalars, last.rows([4, 1]).scalars)
        for n in 0..<2 { for c in 0..<3 { for i in 0..<49 { #expect(a[(n * 3 + c) * 49 + i] == b[(n * 49 + i) * 3 + c]) } } }
        #expect(last.subset([3]).images.scalars == last.rows([3]).scalars)
    }

    /// A limit decodes only the first images: a corrupt file after them is never read.
    @Test func limitDecodesOnlyThePrefix() throws {
        let dir = try folderCopy()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try FileManager.default.copyItem(atPath: "\(ImageFolderTests.images)/bad/truncated.jpg", toPath: dir.appendingPathComponent("dog/b.jpg").path)
        let p = Preprocessing(mean: [0], std: [1], resize: 8, crop: 8)
        let set = try DatasetSource(argument: dir.path).load(preprocessing: p, limit: 3)
        #expect(set.count == 3 && set.labels == [0, 0, 1])
        #expect(throws: DatasetError.self) { try DatasetSource(argument: dir.path).load(preprocessing: p) }
    }

    @Test func idxFolderIsStillIDX() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("extra"), withIntermediateDirectories: true)
        try Data([0, 0, 8, 1, 0, 0, 0, 0]).write(to: dir.appendingPathComponent("t10k-labels-idx1-ubyte"))
        #expect(DatasetSource(argument: dir.path) == .idx(directory: dir.path))
    }

    // MARK: Bad input: each one error naming the file.

    @Test(arguments: [("truncated.jpg", "corrupt or truncated JPEG"), ("truncated.png", "corrupt or truncated PNG"),
                      ("corrupt.jpg", "corrupt or truncated JPEG"), ("text.jpg", "not a JPEG or PNG file"),
                      ("huge.jpg", "65000×65000 pixels × 3 channels is more than the"), ("huge.png", "65000×65000 pixels × 3 channels is more than the")])
    func badImageIsAnErrorNamingTheFile(_ name: String, _ reason: String) throws {
        let path = "\(ImageFolderTests.images)/bad/\(name)"
        let error = #expect(throws: DatasetError.self) { try RGBImage.read(path) }
        let message = error?.description ?? ""
        #expect(message.hasPrefix("cannot decode image \(path): ") && message.contains(reason) && message.contains("not skipped"))
        #expect(!message.contains("\n"))
    }

    @Test func corruptImageInAFolderStopsTheLoad() throws {
        let dir = try folderCopy()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let bad = dir.appendingPathComponent("dog/b.jpg")
        try FileManager.default.copyItem(atPath: "\(ImageFolderTests.images)/bad/truncated.jpg", toPath: bad.path)
        let error = #expect(throws: DatasetError.self) { try DatasetSource(argument: dir.path).load(preprocessing: Preprocessing(mean: [0], std: [1], resize: 8, crop: 8)) }
        #expect(error?.description.contains(bad.path) == true)
    }

    @Test func emptyClassFolderIsAnError() throws {
        let dir = try folderCopy()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("empty"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: dir.appendingPathComponent("empty/readme.txt"))
        let error = #expect(throws: DatasetError.self) { try ImageFolder(directory: dir.path) }
        #expect(error?.description == "\(dir.path)/empty: class folder has no .jpg/.jpeg/.png files (other files are ignored); add images or remove the folder")
    }

    @Test func sizesMustAgreeAndFitTheCrop() throws {
        let source = DatasetSource(argument: ImageFolderTests.folder)
        let mixed = #expect(throws: DatasetError.self) { try source.load(preprocessing: Preprocessing(mean: [0], std: [1])) }
        #expect(mixed?.description.contains("pass --resize and --crop") == true)
        let small = #expect(throws: DatasetError.self) { try source.load(preprocessing: Preprocessing(mean: [0], std: [1], crop: 9)) }
        #expect(small?.description.contains("smaller than --crop 9") == true)
        let larger = #expect(throws: DatasetError.self) { try source.load(preprocessing: Preprocessing(mean: [0], std: [1], resize: 8, crop: 9)) }
        #expect(larger?.description.contains("--crop 9 is larger than --resize 8") == true)
        #expect(throws: DatasetError.self) { try source.load(split: .train) }
    }
}
