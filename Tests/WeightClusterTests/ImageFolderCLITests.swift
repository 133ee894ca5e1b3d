import Foundation
import Testing

/// `evaluate --data PHOTOS`: the image-folder flags end to end, and bad input as one-line errors.
@Suite(.serialized) struct ImageFolderCLITests {
    static let folder = Fixtures.path("images/folder")
    static let model = Fixtures.path("images/tiny_rgb.onnx")
    static let imageNet = ["--mean", "0.485,0.456,0.406", "--std", "0.229,0.224,0.225"]

    func expectOneLineError(_ arguments: [String], containing text: String) throws {
        try CLITests().expectOneLineError(arguments, containing: text)
    }

    func folderCopy() throws -> URL {
        let dir = try CLI.temporaryDirectory().appendingPathComponent("photos")
        try FileManager.default.copyItem(atPath: ImageFolderCLITests.folder, toPath: dir.path)
        return dir
    }

    @Test func evaluatesAnImageFolder() throws {
        let result = try CLI.run(["evaluate", ImageFolderCLITests.model, "--data", ImageFolderCLITests.folder, "--resize", "10", "--crop", "8"]
                                 + ImageFolderCLITests.imageNet + ["--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["images"] as? Int == 5)
        #expect((object["per_class"] as? [Any])?.count == 3)  // Zebra, cat, dog
        let mapped = try CLI.run(["evaluate", ImageFolderCLITests.model, "--data", ImageFolderCLITests.folder, "--resize", "8", "--crop", "8",
                                  "--channel-order", "bgr", "--class-map", Fixtures.path("images/folder-classes.txt")])
        #expect(mapped.status == 0 && mapped.stdout.contains("images: 5"), "\(mapped.stderr)")
        #expect(mapped.stdout.contains("2: -  3: "))  // no image of class 2 ("unused"); Zebra is class 3
    }

    /// A file that is not an image by extension is not read (as torchvision), and one warning line says so.
    @Test func nonImageFilesAreIgnoredWithOneWarning() throws {
        let dir = try folderCopy()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let notes = dir.appendingPathComponent("dog/notes.txt")
        try Data("not a photo".utf8).write(to: notes)
        let result = try CLI.run(["evaluate", ImageFolderCLITests.model, "--data", dir.path, "--resize", "8", "--crop", "8", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(object["images"] as? Int == 5)
        #expect(result.stderr.split(separator: "\n").count == 1)
        #expect(result.stderr.contains("warning: 1 file in the class folders of \(dir.path) is not .jpg/.jpeg/.png and is ignored (first: \(notes.path))"),
                "\(result.stderr)")
    }

    @Test func flagsAreInTheHelp() throws {
        let help = try CLI.run(["evaluate", "--help"]).stdout
        for flag in ["--resize", "--crop", "--channel-order", "--layout", "--class-map", "one per channel", "nothing is skipped"] {
            #expect(help.contains(flag), "\(flag)")
        }
    }

    @Test func badInputIsOneLine() throws {
        let run = ["evaluate", ImageFolderCLITests.model, "--data", ImageFolderCLITests.folder]
        try expectOneLineError(run + ["--resize", "8", "--crop", "9"], containing: "--crop 9 is larger than --resize 8")
        try expectOneLineError(run + ["--crop", "9"], containing: "smaller than --crop 9")
        try expectOneLineError(run, containing: "pass --resize and --crop to give every image one size")
        try expectOneLineError(run + ["--resize", "8", "--crop", "8", "--mean", "0.1,0.2"], containing: "--mean has 2 values but the images have 3 channels")
        try expectOneLineError(run + ["--mean", "0.1,x"], containing: "comma-separated list of numbers")
        try expectOneLineError(["evaluate", "--data", "/nonexistent/fmnist", "--resize", "8"], containing: "apply to image folders")
        try expectOneLineError(run + ["--resize", "8", "--crop", "8", "--layout", "nhwc"], containing: "expects shape [N, 3, 8, 8], got [5, 8, 8, 3]")
        // The bundled model reads one channel; photos are always RGB.
        try expectOneLineError(["evaluate", "--data", ImageFolderCLITests.folder, "--resize", "32", "--crop", "32"],
                               containing: "expects shape [N, 1, 32, 32], got [5, 3, 32, 32]")
    }

    @Test func corruptImageAndEmptyClassAreErrorsNamingThePath() throws {
        let dir = try folderCopy()
        defer { try? FileManager.default.removeItem(at: dir.deletingLastPathComponent()) }
        let run = ["evaluate", ImageFolderCLITests.model, "--data", dir.path, "--resize", "8", "--crop", "8"]
        let bad = dir.appendingPathComponent("dog/b.png").path
        try FileManager.default.copyItem(atPath: Fixtures.path("images/bad/truncated.png"), toPath: bad)
        try expectOneLineError(run, containing: "cannot decode image \(bad): corrupt or truncated PNG")
        try FileManager.default.removeItem(atPath: bad)
        try FileManager.default.createDirectory(atPath: dir.appendingPathComponent("empty").path, withIntermediateDirectories: true)
        try expectOneLineError(run, containing: "\(dir.path)/empty: class folder has no .jpg/.jpeg/.png files")
    }
}
