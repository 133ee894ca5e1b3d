import Foundation

/// A folder of labelled photos in torchvision's `ImageFolder` layout: one sub-folder per class, holding JPEG and PNG
/// files (found by extension — .jpg, .jpeg, .png in any case — in the class folder and its sub-folders; other files
/// are ignored, as torchvision ignores them, and so are names starting with a dot).
///
/// A class's index is the position of its folder's name among the sorted names (torchvision's rule: by code point),
/// unless a class map says otherwise: a text file with one folder name per line, line 1 being class 0 (the model's
/// output order). A map may name classes that have no folder; a folder the map does not name is an error.
public struct ImageFolder: Sendable {
    public let directory: String
    /// Class folder names by class index (the class map's lines, or the sorted folder names).
    public let classNames: [String]
    /// Every image file and its class index, class by class.
    public private(set) var files: [(path: String, label: Int)]

    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

    /// Lists the classes and their images. An empty class folder, or one the class map leaves out, is an error.
    public init(directory: String, classMap: String? = nil) throws {
        self.directory = directory
        let folders = try ImageFolder.classFolders(in: directory)
        guard !folders.isEmpty else {
            throw DatasetError.imageFolder(path: directory, reason: "has no class folders; an image folder holds one sub-folder of .jpg/.jpeg/.png files per class")
        }
        let names = try classMap.map { try ImageFolder.readClassMap($0) } ?? folders
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
        var files: [(String, Int)] = []
        for folder in folders {
            guard let label = index[folder] else {
                throw DatasetError.imageFolder(path: classMap ?? directory, reason: "the class map has no line '\(folder)' for the class folder of that name; add it, or remove the folder")
            }
            let path = (directory as NSString).appendingPathComponent(folder)
            let images = ImageFolder.imageFiles(in: path)
            guard !images.isEmpty else {
                throw DatasetError.imageFolder(path: path, reason: "class folder has no .jpg/.jpeg/.png files (other files are ignored); add images or remove the folder")
            }
            files += images.map { ($0, label) }
        }
        self.classNames = names
        self.files = files
    }

    /// The first `n` images only (classes unchanged).
    public func prefix(_ n: Int) -> ImageFolder {
        var folder = self
        folder.files = Array(files.prefix(n))
        return folder
    }

    /// Whether `directory` looks like an image folder: it has sub-folders and no IDX files (so it is not a
    /// Fashion-MNIST folder).
    public static func isImageFolder(_ directory: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        guard !entries.contains(where: { $0.contains("-idx") || $0.contains(".idx") }) else { return false }
        return (try? classFolders(in: directory))?.isEmpty == false
    }

    /// The class folders (sub-folders, followed if they are links; hidden ones skipped), sorted by code point.
    static func classFolders(in directory: String) throws -> [String] {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw DatasetError.unreadable(path: directory, reason: "cannot list the folder")
        }
        return entries.filter { name in
            var isDirectory: ObjCBool = false
            let path = (directory as NSString).appendingPathComponent(name)
            return !name.hasPrefix(".") && FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        }.sorted(by: codePointOrder)
    }

    /// Files in the class folders of `directory` (and their sub-folders) that are not images by extension and so are
    /// not read; names starting with a dot are not counted.
    public static func ignoredFiles(in directory: String) -> [String] {
        ((try? classFolders(in: directory)) ?? []).flatMap { walk((directory as NSString).appendingPathComponent($0)).others }
    }

    /// Image files under `folder` as torchvision's `os.walk` finds them: a folder's files sorted, then its
    /// sub-folders one by one (sorted; links to folders are not followed, so there are no cycles).
    static func imageFiles(in folder: String) -> [String] { walk(folder).images }

    /// The image files under `folder`, in `os.walk` order, and the other files (names starting with a dot skipped).
    private static func walk(_ folder: String) -> (images: [String], others: [String]) {
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted(by: codePointOrder)
        var images: [String] = [], others: [String] = [], subfolders: [String] = []
        for name in entries {
            let path = (folder as NSString).appendingPathComponent(name)
            guard let type = try? FileManager.default.attributesOfItem(atPath: path)[.type] as? FileAttributeType else { continue }
            if type == .typeDirectory {
                subfolders.append(path)
            } else if imageExtensions.contains((name as NSString).pathExtension.lowercased()) {
                images.append(path)
            } else {
                others.append(path)
            }
        }
        for sub in subfolders.map(walk) {
            images += sub.images
            others += sub.others
        }
        return (images, others)
    }

    /// A class map: one class folder name per line, in the model's output order (blank lines ignored, a name's
    /// surrounding spaces trimmed).
    public static func readClassMap(_ path: String) throws -> [String] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw DatasetError.notFound(path: path, hint: "--class-map must be a text file with one class folder name per line")
        }
        let names = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw DatasetError.imageFolder(path: path, reason: "the class map is empty; write one class folder name per line") }
        var seen: Set<String> = []
        for name in names where !seen.insert(name).inserted {
            throw DatasetError.imageFolder(path: path, reason: "the class map names '\(name)' twice; each line must name a different class")
        }
        return names
    }

    /// Python's string order (by Unicode code point), which torchvision sorts class folders with.
    static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }
}
