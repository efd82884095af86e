import DroplineSupport
import Foundation
import SystemFiles

/// One file as `dropline image info` reports it.
public struct ImageRecord: Sendable, Codable, Equatable {
    /// `ok`, `junk`, or an `ImagingError.Kind` raw value.
    public var outcome: String
    public var path: String
    public var format: String?
    public var width: Int?
    public var height: Int?
    /// Channels as stored in the file.
    public var channels: Int?
    public var bitDepth: Int?
    public var colorModel: String?
    /// EXIF orientation 1 to 8.
    public var orientation: Int?
    public var reason: String?
    public var remedy: String?
    public var warnings: [String]?

    enum CodingKeys: String, CodingKey {
        case path, outcome, format, width, height, channels
        case bitDepth = "bit_depth", colorModel = "color_model"
        case orientation, reason, remedy, warnings
    }
}

/// Classifies files: junk, a usable image (fully decoded to prove it), or a specific failure.
public enum ImageInspector {
    /// Expands folders (recursively, sorted) and inspects every file. `progress` is called per file.
    public static func inspect(paths: [String], options: DecodeOptions = DecodeOptions(),
                               progress: (@Sendable (Int, Int) -> Void)? = nil) -> [ImageRecord] {
        let files = expand(paths)
        var records = [ImageRecord?](repeating: nil, count: files.count)
        let lock = NSLock()
        nonisolated(unsafe) var done = 0
        records.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let out = buffer
            Parallel.forEach(files.count) { i in
                let record = inspect(file: files[i].path, relative: files[i].relative, options: options)
                out[i] = record
                lock.lock()
                done += 1
                let count = done
                lock.unlock()
                progress?(count, files.count)
            }
        }
        return records.map { $0! }
    }

    /// Inspects one file. `relative` is its path below the folder given by the user (for junk rules).
    public static func inspect(file path: String, relative: String? = nil, options: DecodeOptions = DecodeOptions()) -> ImageRecord {
        var record = ImageRecord(outcome: "ok", path: path)
        if let junk = DropFolderJunk.reason(for: relative ?? (path as NSString).lastPathComponent) {
            record.outcome = "junk"
            record.reason = junk
            return record
        }
        var validation = options
        validation.minimumSize = Size(width: 1, height: 1)  // decode at 1/8 scale: proves the data, fast
        validation.applyOrientation = false
        do {
            let decoded = try ImageDecoder.decode(file: path, options: validation)
            fill(&record, with: decoded.info)
            if !decoded.warnings.isEmpty { record.warnings = decoded.warnings }
        } catch {
            record.outcome = error.kind.rawValue
            record.format = error.format?.rawValue
            record.reason = error.reason
            record.remedy = error.remedy
            if let info = try? ImageDecoder.info(file: path, options: DecodeOptions.unlimited) { fill(&record, with: info) }
        }
        return record
    }

    static func fill(_ record: inout ImageRecord, with info: ImageInfo) {
        record.format = info.format.rawValue
        record.width = info.width
        record.height = info.height
        record.channels = info.channels
        record.bitDepth = info.bitDepth
        record.colorModel = info.colorModel
        record.orientation = info.orientation
    }

    /// A file found under a path the user gave, with its path relative to that folder.
    public struct FileEntry: Sendable {
        public let path: String
        public let relative: String
    }

    /// The files under `paths` a dataset or a batch uses: `expand` without drop-folder junk and
    /// without hidden names at any depth.
    public static func expandSkippingJunk(_ paths: [String]) -> [FileEntry] {
        expand(paths).filter { entry in
            DropFolderJunk.reason(for: entry.relative) == nil && !entry.relative.split(separator: "/").contains { $0.hasPrefix(".") }
        }
    }

    /// The sub-folders of `folder` that can be class folders (real folders, not links; not hidden,
    /// not junk), sorted.
    public static func classFolders(in folder: String) -> [String] {
        FileSystem.names(in: folder).filter { name in
            !name.hasPrefix(".") && DropFolderJunk.reason(for: name + "/x") == nil && FileSystem.isRealDirectory(folder + "/" + name)
        }
    }

    /// Every entry under `paths` except folders (folders walked recursively, entries sorted by name):
    /// regular files, and also links, FIFOs, sockets and devices, which reading then refuses with
    /// their reason (`ImagingError.Kind.notRegular`), so they are reported rather than silently
    /// missing. Nothing inside a folder is followed through a link (`FileSystem.walk`); a folder named
    /// here may itself be a link (the user chose it).
    public static func expand(_ paths: [String]) -> [FileEntry] {
        var result: [FileEntry] = []
        for path in paths {
            let type = FileSystem.entryType(path)
            var isFolder = type == .directory
            if case .symbolicLink = type, let target = FileSystem.resolved(path) { isFolder = FileSystem.isRealDirectory(target) }
            guard isFolder else {
                result.append(FileEntry(path: path, relative: (path as NSString).lastPathComponent))
                continue
            }
            let base = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
            for entry in FileSystem.walk(base) {
                result.append(FileEntry(path: base + "/" + entry.relative, relative: entry.relative))
            }
        }
        return result
    }
}

extension DecodeOptions {
    /// No pixel limit: for reading headers only.
    static var unlimited: DecodeOptions {
        var options = DecodeOptions()
        options.maxPixels = .max
        return options
    }
}

/// Labelled images as files, not decoded: a class-folder layout (`<folder>/<class>/<images>`), its
/// classes, and each image with its class. The one labelled-dataset type under both the decoded
/// datasets (`Modeling.ImageFolderDataset`) and the dataset files (`Datasets.LabelledDataset`, one
/// per split).
public struct LabelledFiles: Sendable {
    public let folder: String
    /// Class names, in label order.
    public let classes: [String]
    /// Every image with its class, in class order, then name order.
    public let files: [(label: String, entry: ImageInspector.FileEntry)]

    /// The layout of `folder`; `classes` (in that order) instead of its class folders when given.
    /// Class folders are real folders (never links), not hidden, not junk.
    public init(folder: String, classes: [String]? = nil) {
        self.folder = folder
        let classes = classes ?? ImageInspector.classFolders(in: folder)
        self.classes = classes
        files = classes.flatMap { label in
            FileSystem.isRealDirectory(folder + "/" + label) ? ImageInspector.expandSkippingJunk([folder + "/" + label]).map { (label, $0) } : []
        }
    }
}
